//! `upstreams:`, `routes:` and `api_keys:`.

use serde::Deserialize;

use super::{default_prefix, yes, RouteWafFile};
use crate::config::units::HumanDuration;

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
