//! The shape of `gateway.yaml` as users write it: plain serde types, unknown fields refused.
//!
//! Sections and list items are wrapped in [`Parsed`] so that one broken route does not hide the
//! problems of the next; [`super::compile`] turns these into runtime types.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

use super::source::Parsed;
use super::units::{ByteSize, HumanDuration};

mod ratelimit;
mod upstream;
mod waf;

pub use ratelimit::*;
pub use upstream::*;
pub use waf::*;

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

fn yes() -> bool {
    true
}

fn default_prefix() -> String {
    "/".into()
}
