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
            ready: AtomicBool::new(false),
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
