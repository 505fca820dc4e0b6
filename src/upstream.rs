//! Upstream groups: backends chosen round robin, skipping those that active health checks took
//! out; timeouts for the connection to them.
//!
//! Selection and health state come from Pingora's load balancer. Health checks are driven by one
//! background loop ([`crate::server`]) that asks each group of the current config whether a check
//! is due, so groups added by a reload are checked without any task to start or stop.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::lb::discovery::Static;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;

use crate::config::file::HealthCheckKind;

/// Compiled health-check settings of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSpec {
    /// HTTP or TCP.
    pub kind: HealthCheckKind,
    /// Path for HTTP checks.
    pub path: String,
    /// Host header for HTTP checks.
    pub host: String,
    /// Time between checks.
    pub interval: Duration,
    /// Time allowed per check.
    pub timeout: Duration,
    /// Consecutive successes to put a backend back.
    pub healthy_after: usize,
    /// Consecutive failures to take a backend out.
    pub unhealthy_after: usize,
}

/// TLS towards the backends of a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Server name sent (SNI) and verified.
    pub sni: String,
    /// DER certificates of a CA bundle to verify against (default: system roots).
    pub ca: Option<Vec<Vec<u8>>>,
    /// Verify certificate and name.
    pub verify: bool,
}

/// Everything that defines a group; two equal specs can share one group (and its health state).
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    /// Backend socket addresses (resolved when the config was loaded).
    pub backends: Vec<SocketAddr>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Write timeout.
    pub write_timeout: Duration,
    /// Active health check, if any.
    pub health: Option<HealthSpec>,
    /// TLS to the backends, if any.
    pub tls: Option<UpstreamTls>,
}

/// A named group of backends.
pub struct UpstreamGroup {
    /// Name from the config, used as the `upstream` metric label.
    pub name: Arc<str>,
    /// What the group was built from.
    pub spec: UpstreamSpec,
    lb: LoadBalancer<RoundRobin>,
    ca: Option<Arc<pingora::protocols::tls::CaType>>,
    pool_key: u64,
    next_check: Mutex<Instant>,
    checking: AtomicBool,
}

impl std::fmt::Debug for UpstreamGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamGroup")
            .field("name", &self.name)
            .field("spec", &self.spec)
            .finish()
    }
}

impl UpstreamGroup {
    /// Builds a group; every backend starts healthy.
    pub fn new(name: &str, spec: UpstreamSpec) -> UpstreamGroup {
        let backends: std::collections::BTreeSet<Backend> = spec
            .backends
            .iter()
            .map(|addr| Backend {
                addr: pingora::protocols::l4::socket::SocketAddr::Inet(*addr),
                weight: 1,
                ext: Default::default(),
            })
            .collect();
        let discovery = Static::new(backends);
        let mut backends = Backends::new(discovery);
        let ca = spec
            .tls
            .as_ref()
            .and_then(|t| t.ca.as_ref())
            .map(|ders| ca_list(ders));
        if let Some(h) = &spec.health {
            backends.set_health_check(health_check(h, spec.tls.as_ref(), ca.clone()));
        }
        let lb = LoadBalancer::<RoundRobin>::from_backends(backends);
        // Static discovery never waits; run the first update to fill the selector.
        let _ = futures_now(lb.update());
        let pool_key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            name.hash(&mut h);
            spec.tls.hash(&mut h);
            h.finish()
        };
        UpstreamGroup {
            name: name.into(),
            spec,
            lb,
            ca,
            pool_key,
            next_check: Mutex::new(Instant::now()),
            checking: AtomicBool::new(false),
        }
    }

    /// The next healthy backend, round robin; `None` when every backend is down.
    pub fn select(&self) -> Option<SocketAddr> {
        let b = self.lb.select(b"", self.spec.backends.len().max(1) * 2)?;
        match b.addr {
            pingora::protocols::l4::socket::SocketAddr::Inet(a) => Some(a),
            _ => None,
        }
    }

    /// A Pingora peer for `addr` with this group's timeouts.
    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = match &self.spec.tls {
            Some(t) => {
                let mut p = HttpPeer::new(addr, true, t.sni.clone());
                p.options.verify_cert = t.verify;
                p.options.verify_hostname = t.verify;
                p.options.ca = self.ca.clone();
                p
            }
            None => HttpPeer::new(addr, false, String::new()),
        };
        // Pingora pools connections by address, SNI and verification flags, not by CA bundle;
        // a per-group key keeps a connection verified for one group from serving another.
        peer.group_key = self.pool_key;
        peer.options.connection_timeout = Some(self.spec.connect_timeout);
        peer.options.total_connection_timeout = Some(self.spec.connect_timeout);
        peer.options.read_timeout = Some(self.spec.read_timeout);
        peer.options.write_timeout = Some(self.spec.write_timeout);
        peer
    }

    /// Whether `addr` is currently in rotation.
    pub fn is_healthy(&self, addr: SocketAddr) -> bool {
        let b = Backend {
            addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
            weight: 1,
            ext: Default::default(),
        };
        self.lb.backends().ready(&b)
    }

    /// Claims the next health-check pass if the group has checks, one is due and none is
    /// running; the caller must then call [`UpstreamGroup::run_health_check`].
    pub fn claim_health_check(&self, now: Instant) -> bool {
        let Some(h) = &self.spec.health else {
            return false;
        };
        let mut next = match self.next_check.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if now < *next || self.checking.swap(true, Ordering::AcqRel) {
            return false;
        }
        *next = now + h.interval;
        true
    }

    /// Runs one health-check pass over every backend, in parallel.
    pub async fn run_health_check(&self) {
        self.lb.backends().run_health_check(true).await;
        self.checking.store(false, Ordering::Release);
    }
}

/// The CA bundle in the form Pingora's rustls connector takes (certificates were parsed when
/// the config was loaded; ones that do not parse are left out rather than trusted).
fn ca_list(ders: &[Vec<u8>]) -> Arc<pingora::protocols::tls::CaType> {
    let list: Vec<pingora::utils::tls::WrappedX509> = ders
        .iter()
        .filter(|d| x509_parser::parse_x509_certificate(d).is_ok())
        .map(|d| pingora::utils::tls::WrappedX509::new(d.clone(), pingora::utils::tls::parse_x509))
        .collect();
    Arc::from(list.into_boxed_slice())
}

fn health_check(
    h: &HealthSpec,
    tls: Option<&UpstreamTls>,
    ca: Option<Arc<pingora::protocols::tls::CaType>>,
) -> Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> {
    match h.kind {
        HealthCheckKind::Tcp => {
            let mut c = match tls {
                Some(t) => TcpHealthCheck::new_tls(&t.sni),
                None => TcpHealthCheck::new(),
            };
            c.consecutive_success = h.healthy_after;
            c.consecutive_failure = h.unhealthy_after;
            c.peer_template.options.connection_timeout = Some(h.timeout);
            c.peer_template.options.total_connection_timeout = Some(h.timeout);
            c
        }
        HealthCheckKind::Http => {
            let mut c = HttpHealthCheck::new(&h.host, tls.is_some());
            if let Some(t) = tls {
                c.peer_template.sni = t.sni.clone();
                c.peer_template.options.verify_cert = t.verify;
                c.peer_template.options.verify_hostname = t.verify;
                c.peer_template.options.ca = ca;
            }
            c.consecutive_success = h.healthy_after;
            c.consecutive_failure = h.unhealthy_after;
            c.peer_template.options.connection_timeout = Some(h.timeout);
            c.peer_template.options.total_connection_timeout = Some(h.timeout);
            c.peer_template.options.read_timeout = Some(h.timeout);
            if let Ok(req) = pingora::http::RequestHeader::build("GET", h.path.as_bytes(), None) {
                let mut req = req;
                let _ = req.insert_header("Host", h.host.as_str());
                let _ = req.insert_header("User-Agent", "portcullis-health-check");
                c.req = req;
            }
            c.validator = Some(Box::new(|resp| {
                if resp.status.is_success() {
                    Ok(())
                } else {
                    pingora::Error::e_explain(
                        pingora::ErrorType::Custom("health check status"),
                        format!("status {}", resp.status.as_u16()),
                    )
                }
            }));
            Box::new(c)
        }
    }
}

/// Polls a future once; the static discovery future completes immediately.
fn futures_now<F: std::future::Future>(f: F) -> Option<F::Output> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Some(v),
        std::task::Poll::Pending => None,
    }
}

/// Shared so routes and the health loop can both hold a group.
pub type SharedGroup = Arc<UpstreamGroup>;
