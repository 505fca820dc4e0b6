//! Configuration in three tiers: the file types users write ([`file`]), validation with
//! located errors ([`source`], [`compile`]), and the compiled [`RuntimeConfig`] the request path
//! reads. A `RuntimeConfig` is built once per (re)load and swapped in whole.

pub mod auth;
pub mod compile;
pub mod file;
pub mod ratelimit;
mod routes;
pub mod source;
pub mod tls;
pub mod units;
mod upstream;
pub mod waf;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use indexmap::IndexMap;

pub use compile::{compile, load};
pub use source::{Diagnostic, Diagnostics};

use crate::ipset::IpSet;
use crate::route::RouteTable;
use crate::stage::Pipeline;
use crate::upstream::UpstreamGroup;

/// A listener as compiled from config.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// Name for logs and metrics.
    pub name: String,
    /// Address to bind.
    pub addr: SocketAddr,
    /// TLS termination (certificates reload without restart).
    pub tls: Option<Arc<crate::tls::TlsSpec>>,
    /// Redirect to HTTPS (plain listeners).
    pub redirect: Option<tls::RedirectSpec>,
}

impl PartialEq for ListenerSpec {
    /// Equal when a restart would bind the same sockets the same way (certificates excluded:
    /// they are replaced without restart).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.addr == other.addr
            && self.tls.is_some() == other.tls.is_some()
            && self
                .tls
                .as_ref()
                .map(|t| (t.http2, t.client_auth.as_ref().map(|c| c.required)))
                == other
                    .tls
                    .as_ref()
                    .map(|t| (t.http2, t.client_auth.as_ref().map(|c| c.required)))
            && self.redirect == other.redirect
    }
}

/// Where access-log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    /// Standard output.
    Stdout,
    /// Nowhere.
    Off,
    /// Appended to a file.
    File(PathBuf),
}

/// The compiled configuration: everything a request needs, looked up, never parsed.
pub struct RuntimeConfig {
    /// The main config file.
    pub file: PathBuf,
    /// Every file this config was read from, watched for changes.
    pub sources: Vec<PathBuf>,
    /// Process settings (take effect at start only).
    pub server: file::ServerFile,
    /// Listeners (take effect at start only).
    pub listeners: Vec<ListenerSpec>,
    /// Admin listener address (takes effect at start only).
    pub admin: Option<SocketAddr>,
    /// Bearer token the admin endpoints require (reloadable).
    pub admin_token: Option<Arc<str>>,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: IpSet,
    /// Bounds on one request.
    pub limits: file::LimitsFile,
    /// Access-log destination.
    pub access_log: AccessLogTarget,
    /// Reload behaviour.
    pub reload: file::ReloadFile,
    /// Upstream groups by name.
    pub upstreams: IndexMap<String, Arc<UpstreamGroup>>,
    /// Routes.
    pub routes: RouteTable,
    /// The request stages, in order.
    pub pipeline: Pipeline,
    /// The compiled WAF, when a `waf:` section is present.
    pub waf: Option<Arc<crate::waf::Waf>>,
    /// Rate-limit policies, when a `rate_limits:` section is present.
    pub rate_limits: Option<Arc<crate::ratelimit::RateLimits>>,
    /// API keys, when an `api_keys:` section is present.
    pub api_keys: Option<Arc<crate::auth::ApiKeys>>,
    /// When this config was compiled.
    pub loaded_at: SystemTime,
}

impl std::fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("file", &self.file)
            .field("listeners", &self.listeners)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}
