//! The background loop of a gateway process: reloads on SIGHUP or file change, runs due health
//! checks, keeps the backend gauges current and flips readiness at start and shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::reload::{fingerprint, reload};
use crate::state::GatewayState;

/// How often the loop wakes up.
const TICK: Duration = Duration::from_millis(50);
/// How often idle rate-limit keys are swept and the key gauges refreshed.
const SWEEP: Duration = Duration::from_secs(1);

/// The maintenance background service.
pub struct Maintenance {
    state: Arc<GatewayState>,
    sighup: bool,
}

impl Maintenance {
    /// `sighup`: the gateway owns its process: reload on SIGHUP, and end the process once a
    /// graceful shutdown has drained (off for gateways embedded in another process, e.g. tests).
    pub fn new(state: Arc<GatewayState>, sighup: bool) -> Maintenance {
        Maintenance { state, sighup }
    }

    /// After the listeners stopped: waits until `grace_period` has passed and no request is in
    /// flight (at most `graceful_shutdown_timeout` longer), then ends the process. Pingora
    /// itself would wait out its whole grace period, then cancel whatever still runs.
    async fn drain_and_exit(&self) {
        let server = self.state.config.load().server.clone();
        let started = Instant::now();
        let deadline = started + server.grace_period.0 + server.graceful_shutdown_timeout.0;
        loop {
            let in_flight = self.state.metrics.in_flight.get();
            let now = Instant::now();
            if in_flight <= 0 && now >= started + server.grace_period.0 {
                log::info!("graceful shutdown: drained in {:?}", started.elapsed());
                break;
            }
            if now >= deadline {
                log::warn!(
                    "graceful shutdown: {in_flight} requests still in flight after server.graceful_shutdown_timeout; exiting"
                );
                break;
            }
            tokio::time::sleep(TICK).await;
        }
        self.state.access_log.flush();
        std::process::exit(0);
    }

    fn maintain_rate_limits(&self) {
        let cfg = self.state.config.load();
        let Some(rl) = &cfg.rate_limits else {
            return;
        };
        for p in &rl.policies {
            p.sweep();
            let m = &self.state.metrics;
            m.ratelimit_keys
                .with_label_values(&[&p.spec.name])
                .set(p.keys() as i64);
            let ev = p.take_new_evictions();
            if ev > 0 {
                m.ratelimit_evictions
                    .with_label_values(&[&p.spec.name])
                    .inc_by(ev);
            }
        }
    }

    fn refresh_backend_gauges(&self) {
        let cfg = self.state.config.load();
        for g in cfg.upstreams.values() {
            for addr in &g.spec.backends {
                self.state
                    .metrics
                    .backend_up
                    .with_label_values(&[&*g.name, addr.to_string().as_str()])
                    .set(i64::from(g.is_healthy(*addr)));
            }
        }
    }
}

async fn next_hangup(sig: &mut Option<tokio::signal::unix::Signal>) {
    match sig {
        Some(s) => {
            if s.recv().await.is_none() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

#[async_trait]
impl BackgroundService for Maintenance {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hup = if self.sighup {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
                Ok(s) => Some(s),
                Err(e) => {
                    log::error!("cannot listen for SIGHUP, reload on signal is off: {e}");
                    None
                }
            }
        } else {
            None
        };
        let mut seen = fingerprint(&self.state.config.load().sources);
        let mut next_poll = Instant::now();
        let mut next_sweep = Instant::now();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.state.set_ready(true);
        loop {
            tokio::select! {
                _ = shutdown.changed() => {
                    self.state.set_ready(false);
                    self.state.access_log.flush();
                    if self.sighup {
                        self.drain_and_exit().await;
                    }
                    return;
                }
                _ = next_hangup(&mut hup) => {
                    let _ = reload(&self.state, "SIGHUP");
                    seen = fingerprint(&self.state.config.load().sources);
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let cfg = self.state.config.load_full();
                    if cfg.reload.watch && now >= next_poll {
                        next_poll = now + cfg.reload.poll_interval.0;
                        let current = fingerprint(&cfg.sources);
                        if current != seen {
                            // A refused change is remembered too: it is retried on the next edit.
                            seen = match reload(&self.state, "file change") {
                                Ok(()) => fingerprint(&self.state.config.load().sources),
                                Err(_) => current,
                            };
                        }
                    }
                    for g in cfg.upstreams.values() {
                        if g.claim_health_check(now) {
                            let g = g.clone();
                            tokio::spawn(async move { g.run_health_check().await });
                        }
                    }
                    self.refresh_backend_gauges();
                    if now >= next_sweep {
                        next_sweep = now + SWEEP;
                        self.maintain_rate_limits();
                    }
                }
            }
        }
    }
}
