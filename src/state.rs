//! The state one gateway process shares between its services: the current compiled config
//! (swapped atomically on reload), metrics and the access log.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::access_log::AccessLog;
use crate::config::{self, Diagnostics, RuntimeConfig};
use crate::metrics::Metrics;

/// Where the config comes from.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A `gateway.yaml` on disk.
    File(PathBuf),
    /// Config text generated in memory (`portcullis proxy`); `name` stands in for the file name.
    Inline {
        /// Name used in diagnostics.
        name: PathBuf,
        /// YAML text.
        text: String,
    },
}

impl ConfigSource {
    /// Loads and compiles the config, reusing what it can from `previous`.
    pub fn load(&self, previous: Option<&RuntimeConfig>) -> Result<RuntimeConfig, Diagnostics> {
        match self {
            ConfigSource::File(p) => config::load(p, previous),
            ConfigSource::Inline { name, text } => {
                let doc = config::source::SourceDoc::parse(name.clone(), text)
                    .map_err(|d| Diagnostics(vec![*d]))?;
                config::compile(&doc, previous)
            }
        }
    }
}

/// Shared by the proxy, the admin listener and the maintenance loop.
pub struct GatewayState {
    /// The config requests are served with; a request keeps the one it started with.
    pub config: ArcSwap<RuntimeConfig>,
    /// Where reloads read from.
    pub source: ConfigSource,
    /// Every metric family.
    pub metrics: Arc<Metrics>,
    /// The access-log writer.
    pub access_log: AccessLog,
    /// Bound listener addresses and their names (set once the listeners are bound).
    pub bound: std::sync::OnceLock<Vec<(std::net::SocketAddr, String)>>,
    /// TLS objects of the TLS listeners, by name (they outlive reloads).
    pub tls: std::sync::OnceLock<Vec<Arc<crate::tls::ListenerTls>>>,
    ready: AtomicBool,
}

impl GatewayState {
    /// Wraps a freshly loaded config.
    pub fn new(source: ConfigSource, cfg: RuntimeConfig, metrics: Arc<Metrics>) -> GatewayState {
        let access_log = AccessLog::start(cfg.access_log.clone(), metrics.clone());
        metrics.config_last_success.set(unix_now());
        GatewayState {
            config: ArcSwap::from_pointee(cfg),
            source,
            metrics,
            access_log,
            bound: std::sync::OnceLock::new(),
            tls: std::sync::OnceLock::new(),
            ready: AtomicBool::new(false),
        }
    }

    /// The name of the listener that accepted a connection on local address `local`.
    pub fn listener_name(&self, local: Option<std::net::SocketAddr>) -> Option<&str> {
        let local = local?;
        let bound = self.bound.get()?;
        bound
            .iter()
            .find(|(a, _)| *a == local)
            .or_else(|| {
                bound
                    .iter()
                    .find(|(a, _)| a.ip().is_unspecified() && a.port() == local.port())
            })
            .map(|(_, n)| n.as_str())
    }

    /// Gives the TLS listeners the certificates of a newly loaded config.
    pub fn update_tls(&self, cfg: &RuntimeConfig) {
        let Some(list) = self.tls.get() else { return };
        for t in list {
            match cfg.listeners.iter().find(|l| l.name == t.name).and_then(|l| l.tls.as_ref()) {
                Some(spec) => t.update(spec),
                None => log::warn!("listener {} lost its TLS settings; keeping the current certificates until restart", t.name),
            }
        }
    }

    /// Marks the gateway ready (listeners up) or not (shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
