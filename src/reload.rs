//! Reloading: re-read, validate and compile the config and every file it references, then swap
//! it in atomically. In-flight requests finish on the config they started with. An invalid
//! change is refused, logged with its locations and counted, and the previous config keeps
//! serving.
//!
//! Triggers are SIGHUP and a change in the content of any source file, found by polling (which
//! also works for editors that replace files and for symlink swaps).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use crate::config::{Diagnostics, RuntimeConfig};
use crate::state::{unix_now, GatewayState};

/// Reloads the config of `state`; `trigger` says why, for the log.
pub fn reload(state: &GatewayState, trigger: &str) -> Result<(), Diagnostics> {
    let current = state.config.load_full();
    match state.source.load(Some(&current)) {
        Ok(new) => {
            warn_about_restart_only_changes(&current, &new);
            state.access_log.retarget(&new.access_log);
            state.update_tls(&new);
            state.config.store(Arc::new(new));
            state.metrics.backend_up.reset();
            state
                .metrics
                .config_reloads
                .with_label_values(&["success"])
                .inc();
            state.metrics.config_last_success.set(unix_now());
            log::info!("config reloaded ({trigger})");
            Ok(())
        }
        Err(diags) => {
            // Logged before it is counted: whoever sees the count can find the reason.
            log::error!(
                "config reload ({trigger}) refused, the previous config keeps serving; {} problem(s):\n{diags}",
                diags.len()
            );
            state
                .metrics
                .config_reloads
                .with_label_values(&["failure"])
                .inc();
            Err(diags)
        }
    }
}

fn warn_about_restart_only_changes(old: &RuntimeConfig, new: &RuntimeConfig) {
    if old.listeners != new.listeners {
        log::warn!(
            "listener changes take effect only after a restart or graceful upgrade; still listening on the previous addresses"
        );
    }
    if old.admin != new.admin {
        log::warn!("admin listener changes take effect only after a restart or graceful upgrade");
    }
    if old.server != new.server {
        log::warn!("server settings take effect only after a restart or graceful upgrade");
    }
}

/// A hash of the contents of `paths` (directories: their YAML files, sorted by name).
pub fn fingerprint(paths: &[impl AsRef<Path>]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in paths {
        hash_path(p.as_ref(), &mut h);
    }
    h.finish()
}

fn hash_path(p: &Path, h: &mut DefaultHasher) {
    p.hash(h);
    if p.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(p)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        entries.sort();
        for e in entries {
            if e.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                hash_path(&e, h);
            }
        }
    } else {
        match std::fs::read(p) {
            Ok(bytes) => bytes.hash(h),
            Err(_) => "<unreadable>".hash(h),
        }
    }
}
