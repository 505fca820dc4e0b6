//! The shape of `gateway.yaml` as users write it: plain serde types, unknown fields refused.
//!
//! Sections and list items are wrapped in [`Parsed`] so that one broken route does not hide the
//! problems of the next; [`super::compile`] turns these into runtime types.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

use super::source::Parsed;
use super::units::{ByteSize, HumanDuration};

/// The whole `gateway.yaml`.
#[derive(Debug, Deserialize, Default)]
pub struct GatewayFile {
    /// Process settings (threads, graceful upgrade socket, ...).
    #[serde(default)]
    pub server: Parsed<ServerFile>,
    /// Where clients connect.
    #[serde(default)]
    pub listeners: Parsed<Vec<Parsed<ListenerFile>>>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    #[serde(default)]
    pub admin: Parsed<Option<AdminFile>>,
    /// Peers whose `X-Forwarded-For` / `X-Request-Id` are believed (CIDRs or addresses).
    #[serde(default)]
    pub trusted_proxies: Parsed<Vec<String>>,
    /// The JSON access log.
    #[serde(default)]
    pub access_log: Parsed<AccessLogFile>,
    /// How changes to the files are picked up.
    #[serde(default)]
    pub reload: Parsed<ReloadFile>,
    /// Named groups of backends.
    #[serde(default)]
    pub upstreams: Parsed<IndexMap<String, Parsed<UpstreamFile>>>,
    /// Host + path-prefix routes, longest prefix wins.
    #[serde(default)]
    pub routes: Parsed<Vec<Parsed<RouteFile>>>,
    /// The WAF: rules, mode, paranoia, threshold, body inspection, exclusions.
    #[serde(default)]
    pub waf: Parsed<Option<WafFile>>,
    /// Rate-limit policies and the optional shared (Redis) backend.
    #[serde(default)]
    pub rate_limits: Parsed<Option<RateLimitsFile>>,
    /// API keys: the keys file and where requests carry the key.
    #[serde(default)]
    pub api_keys: Parsed<Option<ApiKeysFile>>,
    /// Bounds on one request: URI, headers, query arguments, body, slow clients.
    #[serde(default)]
    pub limits: Parsed<LimitsFile>,
    /// Anything else at the top level: each key is reported as an unknown field.
    #[serde(flatten)]
    pub unknown: IndexMap<String, serde_yaml::Value>,
}

/// `server:` — settings that apply to the process; changing them needs a restart.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    /// Worker threads for the proxy service.
    pub threads: usize,
    /// Unix socket used to hand listening sockets to a new process during a graceful upgrade.
    pub upgrade_sock: PathBuf,
    /// PID file (used with `--daemon`).
    pub pid_file: PathBuf,
    /// After SIGTERM or a graceful upgrade: how long open keep-alive connections are still
    /// served (each response then carries `Connection: close`) before idle ones are closed.
    pub grace_period: HumanDuration,
    /// After SIGTERM or a graceful upgrade: the longest wait for in-flight requests; the process
    /// exits as soon as none is left (and `grace_period` has passed).
    pub graceful_shutdown_timeout: HumanDuration,
    /// Idle upstream connections kept for reuse, across all backends.
    pub upstream_keepalive_pool_size: usize,
    /// Let idle worker threads take tasks from busy ones (one shared runtime) instead of one
    /// runtime per thread.
    pub work_stealing: bool,
}

impl Default for ServerFile {
    fn default() -> Self {
        ServerFile {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            upgrade_sock: PathBuf::from("/tmp/portcullis_upgrade.sock"),
            pid_file: PathBuf::from("/tmp/portcullis.pid"),
            grace_period: HumanDuration(std::time::Duration::from_secs(1)),
            graceful_shutdown_timeout: HumanDuration(std::time::Duration::from_secs(10)),
            upstream_keepalive_pool_size: 256,
            work_stealing: true,
        }
    }
}

/// One entry of `listeners:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// Name used in logs and metrics.
    pub name: String,
    /// `IP:port` to bind; port 0 picks a free port (printed at start).
    pub address: String,
    /// Terminate TLS on this listener.
    #[serde(default)]
    pub tls: Option<ListenerTlsFile>,
    /// Answer plain-HTTP requests with a 308 redirect to HTTPS.
    #[serde(default)]
    pub redirect_https: Option<RedirectFile>,
}

/// `listeners[].tls:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenerTlsFile {
    /// Certificate and key files; the names served come from each certificate, the first one
    /// is the default for clients without (a known) SNI.
    pub certificates: Vec<CertFile>,
    /// Offer HTTP/2 through ALPN (`h2`, then `http/1.1`).
    #[serde(default = "yes")]
    pub http2: bool,
    /// Client certificates (mTLS).
    #[serde(default)]
    pub client_auth: Option<ClientAuthFile>,
}

/// A certificate and its key (PEM files, relative to this file), or a self-signed
/// certificate made at load time for development.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    /// Certificate chain.
    #[serde(default)]
    pub cert: Option<String>,
    /// Private key.
    #[serde(default)]
    pub key: Option<String>,
    /// Names for a self-signed certificate generated in memory (development only).
    #[serde(default)]
    pub self_signed: Option<Vec<String>>,
}

/// `tls.client_auth:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthFile {
    /// `required` (no valid certificate, no handshake) or `optional`.
    pub mode: ClientAuthMode,
    /// CA bundle (PEM) client certificates must chain to.
    pub ca: String,
    /// Header carrying the verified subject to the backend.
    #[serde(default = "default_subject_header")]
    pub subject_header: String,
}

/// mTLS modes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// Handshake fails without a valid certificate.
    Required,
    /// A certificate is verified if the client offers one.
    Optional,
}

fn default_subject_header() -> String {
    "X-Client-Cert-Subject".into()
}

/// `listeners[].redirect_https:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedirectFile {
    /// Port of the HTTPS listener (omitted from the URL when 443).
    #[serde(default = "https_port")]
    pub port: u16,
    /// Paths served over plain HTTP anyway (e.g. ACME challenges).
    #[serde(default = "default_redirect_exceptions")]
    pub except_path_prefixes: Vec<String>,
}

fn https_port() -> u16 {
    443
}
fn default_redirect_exceptions() -> Vec<String> {
    vec!["/.well-known/acme-challenge".into()]
}

/// `admin:` — the listener for metrics and health endpoints.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// `IP:port` to bind (default `127.0.0.1:9901`); keep it on loopback or a private network.
    #[serde(default = "default_admin_address")]
    pub address: String,
    /// A file holding a token that every admin request must present as
    /// `Authorization: Bearer <token>` (Prometheus: `authorization.credentials_file`).
    #[serde(default)]
    pub token_file: Option<String>,
}

fn default_admin_address() -> String {
    "127.0.0.1:9901".into()
}

/// `limits:` — what one request may be; beyond it the gateway answers itself (414, 431, 400,
/// 413) and the backend never sees the request.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    /// Longest request target (path and query), in bytes.
    pub max_uri_length: ByteSize,
    /// Most header fields.
    pub max_header_count: usize,
    /// Largest header section (names and values), in bytes.
    pub max_header_bytes: ByteSize,
    /// Most query arguments.
    pub max_query_args: usize,
    /// Largest request body, declared or streamed.
    pub max_body_size: ByteSize,
    /// Longest wait for the next piece of a request body.
    pub client_body_timeout: HumanDuration,
    /// Longest time a client may take to send a whole request head (request line and headers),
    /// from its first byte; slower clients get 408 and the connection is closed.
    pub client_header_timeout: HumanDuration,
    /// Deepest JSON (or XML) nesting the WAF inspects; deeper bodies follow the route's
    /// `waf.on_body_limit`.
    pub max_json_depth: usize,
    /// Most multipart parts the WAF inspects.
    pub max_multipart_parts: usize,
    /// Most arguments of one body the WAF inspects (form fields, JSON values and keys, XML
    /// elements).
    pub max_body_args: usize,
}

impl Default for LimitsFile {
    fn default() -> Self {
        LimitsFile {
            max_uri_length: ByteSize(8 * 1024),
            max_header_count: 100,
            max_header_bytes: ByteSize(64 * 1024),
            max_query_args: 512,
            max_body_size: ByteSize(64 * 1024 * 1024),
            client_body_timeout: HumanDuration(std::time::Duration::from_secs(30)),
            client_header_timeout: HumanDuration(std::time::Duration::from_secs(15)),
            max_json_depth: 64,
            max_multipart_parts: 256,
            max_body_args: 10_000,
        }
    }
}

/// `access_log:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogFile {
    /// `stdout`, `off`, or a file path (relative paths are relative to the config file).
    pub path: String,
}

impl Default for AccessLogFile {
    fn default() -> Self {
        AccessLogFile {
            path: "stdout".into(),
        }
    }
}

/// `reload:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadFile {
    /// Watch the config and every file it references, reloading on change.
    pub watch: bool,
    /// How often the files are checked for changes.
    pub poll_interval: HumanDuration,
}

impl Default for ReloadFile {
    fn default() -> Self {
        ReloadFile {
            watch: true,
            poll_interval: HumanDuration(std::time::Duration::from_secs(1)),
        }
    }
}

/// One entry of `upstreams:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamFile {
    /// Backend addresses, `host:port`.
    pub backends: Vec<String>,
    /// Time allowed to establish a connection to a backend.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Time allowed between reads from the backend (response headers and body).
    #[serde(default = "default_read_timeout")]
    pub read_timeout: HumanDuration,
    /// Time allowed for each write to the backend.
    #[serde(default = "default_read_timeout")]
    pub write_timeout: HumanDuration,
    /// Active health checking; without it every backend is always considered up.
    #[serde(default)]
    pub health_check: Option<HealthCheckFile>,
    /// Connect to the backends with TLS.
    #[serde(default)]
    pub tls: Option<UpstreamTlsFile>,
}

/// `upstreams.<name>.tls:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    /// Server name sent and verified (default: the host of the first backend).
    #[serde(default)]
    pub sni: Option<String>,
    /// CA bundle (PEM) to verify the backends against (default: the system roots).
    #[serde(default)]
    pub ca: Option<String>,
    /// Verify the backend certificate and name (turning this off is for testing only).
    #[serde(default = "yes")]
    pub verify: bool,
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}

fn default_read_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(30))
}

/// `upstreams.<name>.health_check:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    /// `http` (a GET that must answer 2xx) or `tcp` (a connection must open).
    #[serde(rename = "type", default = "default_check_kind")]
    pub kind: HealthCheckKind,
    /// Path requested by `http` checks.
    #[serde(default = "default_check_path")]
    pub path: String,
    /// Host header sent by `http` checks.
    #[serde(default = "default_check_host")]
    pub host: String,
    /// Time between checks.
    #[serde(default = "default_check_interval")]
    pub interval: HumanDuration,
    /// Time allowed for one check.
    #[serde(default = "default_check_timeout")]
    pub timeout: HumanDuration,
    /// Consecutive successes before a down backend is put back.
    #[serde(default = "one")]
    pub healthy_after: usize,
    /// Consecutive failures before an up backend is taken out.
    #[serde(default = "two")]
    pub unhealthy_after: usize,
}

/// Kinds of active health check.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckKind {
    /// HTTP GET expecting a 2xx answer.
    Http,
    /// A TCP connection that opens.
    Tcp,
}

fn default_check_kind() -> HealthCheckKind {
    HealthCheckKind::Http
}
fn default_check_path() -> String {
    "/".into()
}
fn default_check_host() -> String {
    "localhost".into()
}
fn default_check_interval() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(5))
}
fn default_check_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}

/// One entry of `routes:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Name used in logs, metrics and scopes; unique.
    pub name: String,
    /// Host names this route serves (`api.example.com`, `*.example.com`); empty = any host.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Path prefix, matched on whole segments after normalisation; longest prefix wins.
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// The upstream group requests are sent to.
    pub upstream: String,
    /// WAF settings for this route, overriding the global `waf:` ones.
    #[serde(default)]
    pub waf: Option<RouteWafFile>,
    /// `api_key` to require an API key on this route; `none` (default) otherwise.
    #[serde(default = "default_auth")]
    pub auth: AuthFile,
    /// Refuse (403) requests without a verified client certificate (mTLS listener, optional mode).
    #[serde(default)]
    pub require_client_cert: bool,
}

/// Authentication of a route.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthFile {
    /// No authentication.
    None,
    /// An API key from the keys file.
    ApiKey,
}

fn default_auth() -> AuthFile {
    AuthFile::None
}

/// `api_keys:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysFile {
    /// The keys file (digests only), relative to this file.
    pub file: String,
    /// Where the key is looked for, in order: `header:<name>`, `bearer`, `query:<name>`.
    #[serde(default = "default_key_sources")]
    pub sources: Vec<String>,
    /// Header that carries the key id to the backend.
    #[serde(default = "default_key_id_header")]
    pub key_id_header: String,
    /// Remove the key from the request before it goes upstream.
    #[serde(default = "yes")]
    pub strip: bool,
}

fn default_key_sources() -> Vec<String> {
    vec!["header:X-API-Key".into(), "bearer".into()]
}
fn default_key_id_header() -> String {
    "X-Portcullis-Key-Id".into()
}
fn yes() -> bool {
    true
}

/// `waf:` — the rules and the default policy of every route.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WafFile {
    /// Rule files or directories (relative to this file), or `builtin` for the shipped rules.
    #[serde(default = "default_rules")]
    pub rules: Vec<String>,
    /// `block`, `detect` (log and count only) or `off`.
    #[serde(default = "default_mode")]
    pub mode: WafModeFile,
    /// Paranoia level 1–4: higher runs more rules, with more false positives.
    #[serde(default = "one_u8")]
    pub paranoia: u8,
    /// Anomaly score at which a request is blocked.
    #[serde(default = "five")]
    pub threshold: u32,
    /// Largest body buffered and inspected (at most 64KiB).
    #[serde(default = "default_body_limit")]
    pub body_limit: ByteSize,
    /// `reject` (413) or `pass` (forward uninspected) for larger bodies.
    #[serde(default = "default_on_body_limit")]
    pub on_body_limit: OnBodyLimitFile,
    /// Rules silenced for some routes and/or targets.
    #[serde(default)]
    pub exclusions: Vec<ExclusionFile>,
}

/// `routes[].waf:` — overrides of the global WAF policy for one route.
#[derive(Debug, Deserialize, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteWafFile {
    /// Mode for this route.
    pub mode: Option<WafModeFile>,
    /// Paranoia level for this route.
    pub paranoia: Option<u8>,
    /// Threshold for this route.
    pub threshold: Option<u32>,
    /// Body inspection limit for this route.
    pub body_limit: Option<ByteSize>,
    /// Oversized-body handling for this route.
    pub on_body_limit: Option<OnBodyLimitFile>,
    /// Exclusions for this route (added to the global ones).
    #[serde(default)]
    pub exclusions: Vec<ExclusionFile>,
}

/// WAF modes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WafModeFile {
    /// Refuse with 403.
    Block,
    /// Log and count only.
    Detect,
    /// No inspection.
    Off,
}

/// Oversized-body handling.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnBodyLimitFile {
    /// 413.
    Reject,
    /// Forward without inspecting the body.
    Pass,
}

/// One exclusion.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExclusionFile {
    /// Rule ids, or `tag:<tag>` / `tag:<category>`.
    pub rules: Vec<serde_yaml::Value>,
    /// Only for these targets (`args:comment`, `json:post.body`); empty = all.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Only on these routes (global exclusions only); empty = all.
    #[serde(default)]
    pub routes: Vec<String>,
}

fn default_rules() -> Vec<String> {
    vec!["builtin".into()]
}
fn default_mode() -> WafModeFile {
    WafModeFile::Block
}
fn one_u8() -> u8 {
    1
}
fn five() -> u32 {
    5
}
fn default_body_limit() -> ByteSize {
    ByteSize(64 * 1024)
}
fn default_on_body_limit() -> OnBodyLimitFile {
    OnBodyLimitFile::Reject
}

fn default_prefix() -> String {
    "/".into()
}

/// `rate_limits:`.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RateLimitsFile {
    /// Share the limits between gateway instances through Redis.
    #[serde(default)]
    pub redis: Option<RedisFile>,
    /// Also send `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Reset`.
    #[serde(default)]
    pub legacy_headers: bool,
    /// The policies.
    #[serde(default)]
    pub policies: Vec<Parsed<PolicyFile>>,
}

/// `rate_limits.redis:`.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://host:port/db`.
    pub url: String,
    /// Time allowed for one check (connection included).
    #[serde(default = "default_redis_timeout")]
    pub timeout: HumanDuration,
    /// Multiplexed connections.
    #[serde(default = "four")]
    pub pool_size: usize,
    /// `allow` (fail open) or `deny` (fail closed, 429) when Redis cannot answer.
    #[serde(default = "default_on_redis_error")]
    pub on_redis_error: OnRedisErrorFile,
    /// Prefix of every Redis key.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
}

/// Redis failure behaviour.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OnRedisErrorFile {
    /// Admit.
    Allow,
    /// Refuse with 429.
    Deny,
}

/// One rate-limit policy.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Name (metric label and name in the RateLimit fields).
    pub name: String,
    /// Requests per `per`.
    pub rate: u32,
    /// The period (default 1s).
    #[serde(default = "one_second")]
    pub per: HumanDuration,
    /// Requests admitted at once (default: `rate`).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Key parts: `client_ip`, `api_key`, `route`, `header:<name>`.
    #[serde(default = "default_policy_key")]
    pub key: Vec<String>,
    /// Which requests count (all by default).
    #[serde(default)]
    pub scope: ScopeFile,
    /// `enforce` or `shadow`.
    #[serde(default = "default_policy_mode")]
    pub mode: PolicyModeFile,
    /// Most keys tracked (idle keys are evicted first).
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Quotas for API-key tiers, by tier name.
    #[serde(default)]
    pub tiers: IndexMap<String, TierFile>,
}

/// `scope:` of a policy.
#[derive(Debug, Deserialize, Clone, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ScopeFile {
    /// Route names.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Path prefixes.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// Methods.
    #[serde(default)]
    pub methods: Vec<String>,
}

/// A tier's quota.
#[derive(Debug, Deserialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierFile {
    /// Requests per `per`.
    pub rate: u32,
    /// The period (default: the policy's).
    #[serde(default)]
    pub per: Option<HumanDuration>,
    /// Burst (default: `rate`).
    #[serde(default)]
    pub burst: Option<u32>,
}

/// Policy modes.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PolicyModeFile {
    /// Refuse with 429.
    Enforce,
    /// Count and log only.
    Shadow,
}

fn default_redis_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(50))
}
fn four() -> usize {
    4
}
fn default_on_redis_error() -> OnRedisErrorFile {
    OnRedisErrorFile::Allow
}
fn default_key_prefix() -> String {
    "portcullis".into()
}
fn one_second() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(1))
}
fn default_policy_key() -> Vec<String> {
    vec!["client_ip".into()]
}
fn default_policy_mode() -> PolicyModeFile {
    PolicyModeFile::Enforce
}
fn default_max_keys() -> usize {
    100_000
}
