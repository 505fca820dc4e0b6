//! Assembles a gateway process on Pingora: the proxy service on every listener, the admin
//! service, the maintenance loop; and runs it, either as the process (`portcullis run`) or in a
//! background thread (tests, embedding).
//!
//! Listeners on port 0 are bound here, before Pingora starts, so the chosen ports are known
//! (printed at start, returned to embedders); their sockets are handed to Pingora through its
//! listening-fd table, the same table that graceful upgrades pass to the next process.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::{
    ListenFds, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch,
};
use pingora::services::Service;

use crate::admin::AdminApp;
use crate::config::Diagnostics;
use crate::maintenance::Maintenance;
use crate::metrics::Metrics;
use crate::proxy::GatewayProxy;
use crate::state::{ConfigSource, GatewayState};

/// How to start a gateway.
pub struct Launch {
    /// Where the config comes from.
    pub source: ConfigSource,
    /// Take the listening sockets over from a running instance (graceful upgrade).
    pub upgrade: bool,
    /// Detach into the background.
    pub daemon: bool,
    /// Reload on SIGHUP (leave off when embedding in another program).
    pub sighup: bool,
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config has problems.
    #[error("{0}")]
    Config(Diagnostics),
    /// A TLS listener could not be set up.
    #[error("listener {listener}: {message}")]
    Tls {
        /// The listener.
        listener: String,
        /// What failed.
        message: String,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A gateway ready to run: config loaded, ephemeral ports bound, services assembled.
pub struct Prepared {
    server: Server,
    /// Shared state (config, metrics, access log).
    pub state: Arc<GatewayState>,
    /// Listener names and the addresses they are bound to.
    pub listeners: Vec<(String, SocketAddr)>,
    /// The admin listener's address.
    pub admin: Option<SocketAddr>,
}

/// Loads the config and assembles the Pingora server.
pub fn prepare(launch: Launch) -> Result<Prepared, StartError> {
    prepare_with(launch, Vec::new())
}

/// Like [`prepare`], with extra Pingora services run in the same server (e.g. the demo backend).
pub fn prepare_with(
    launch: Launch,
    extra: Vec<Box<dyn pingora::services::ServiceWithDependents>>,
) -> Result<Prepared, StartError> {
    let cfg = launch.source.load(None).map_err(StartError::Config)?;
    let metrics = Arc::new(Metrics::new());

    let mut conf = ServerConf {
        threads: cfg.server.threads,
        upgrade_sock: cfg.server.upgrade_sock.to_string_lossy().into_owned(),
        pid_file: cfg.server.pid_file.to_string_lossy().into_owned(),
        // Pingora's grace period is a fixed wait before it stops its runtimes (cancelling what
        // still runs); it is the upper bound here. The maintenance service ends the process
        // earlier, as soon as the drain is over (see `Maintenance`).
        grace_period_seconds: Some(
            (cfg.server.grace_period.0 + cfg.server.graceful_shutdown_timeout.0).as_secs() + 1,
        ),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: cfg.server.upstream_keepalive_pool_size,
        daemon: launch.daemon,
        ..ServerConf::default()
    };
    conf.work_stealing = cfg.server.work_stealing;
    let opt = Opt {
        upgrade: launch.upgrade,
        daemon: launch.daemon,
        nocapture: false,
        test: false,
        conf: None,
    };
    let listener_specs = cfg.listeners.clone();
    let admin_addr = cfg.admin;
    if let Some(a) = admin_addr.filter(|a| !a.ip().is_loopback()) {
        if cfg.admin_token.is_none() {
            log::warn!(
                "the admin listener on {a} is reachable beyond this host and has no admin.token_file: anyone who can reach it reads the metrics"
            );
        }
    }
    let grace = cfg.server.grace_period.0;
    let state = Arc::new(GatewayState::new(launch.source, cfg, metrics));

    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();

    let mut proxy = pingora::services::listening::Service::new(
        "portcullis".to_string(),
        crate::proxy::conn::GuardedApp::new(
            grace,
            pingora::proxy::http_proxy(&server.configuration, GatewayProxy::new(state.clone())),
            state.clone(),
        ),
    );
    let mut prebound = Vec::new();
    let mut listeners = Vec::new();
    let mut tls_objects = Vec::new();
    for l in &listener_specs {
        let addr = bind_if_ephemeral(l.addr, &mut prebound)?;
        match &l.tls {
            Some(spec) => {
                let tls_err = |message: String| StartError::Tls {
                    listener: l.name.clone(),
                    message,
                };
                let t = crate::tls::ListenerTls::new(&l.name, spec, state.metrics.clone())
                    .map_err(tls_err)?;
                let settings = t.settings(spec).map_err(tls_err)?;
                proxy.add_tls_with_settings(&addr.to_string(), None, settings);
                tls_objects.push(t);
            }
            None => proxy.add_tcp(&addr.to_string()),
        }
        listeners.push((l.name.clone(), addr));
    }
    let _ = state
        .bound
        .set(listeners.iter().map(|(n, a)| (*a, n.clone())).collect());
    let _ = state.tls.set(tls_objects);
    server.add_service(Prebound {
        inner: proxy,
        sockets: prebound,
    });

    let admin = match admin_addr {
        Some(a) => {
            let mut prebound = Vec::new();
            let addr = bind_if_ephemeral(a, &mut prebound)?;
            let mut svc = pingora::services::listening::Service::new(
                "portcullis-admin".to_string(),
                AdminApp::new(state.clone()),
            );
            svc.add_tcp(&addr.to_string());
            svc.threads = Some(1);
            server.add_service(Prebound {
                inner: svc,
                sockets: prebound,
            });
            Some(addr)
        }
        None => None,
    };
    server.add_service(pingora::services::background::background_service(
        "portcullis-maintenance",
        Maintenance::new(state.clone(), launch.sighup),
    ));
    for s in extra {
        server.add_boxed_service(s);
    }
    Ok(Prepared {
        server,
        state,
        listeners,
        admin,
    })
}

fn bind_if_ephemeral(
    addr: SocketAddr,
    out: &mut Vec<(String, TcpListener)>,
) -> Result<SocketAddr, StartError> {
    if addr.port() != 0 {
        return Ok(addr);
    }
    let l = TcpListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    let bound = l
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| StartError::Bind { addr, source })?;
    out.push((bound.to_string(), l));
    Ok(bound)
}

impl Prepared {
    /// Runs until a shutdown signal (SIGTERM graceful, SIGINT fast, SIGQUIT graceful upgrade).
    pub fn run(self) {
        self.run_with(RunArgs::default());
    }

    /// Runs until `shutdown` fires.
    pub fn run_with(self, args: RunArgs) {
        let cfg = self.state.config.load();
        for (name, addr) in &self.listeners {
            let scheme = match cfg.listeners.iter().find(|l| &l.name == name) {
                Some(l) if l.tls.is_some() => "https",
                _ => "http",
            };
            log::info!("listening {name} on {scheme}://{addr}");
        }
        if let Some(a) = self.admin {
            log::info!("listening admin on http://{a}");
        }
        self.server.run(args);
    }

    /// Runs in a background thread; the returned handle stops the gateway when dropped.
    pub fn spawn(self) -> RunningGateway {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let state = self.state.clone();
        let listeners = self.listeners.clone();
        let admin = self.admin;
        let thread = std::thread::Builder::new()
            .name("portcullis-server".into())
            .spawn(move || {
                self.run_with(RunArgs {
                    shutdown_signal: Box::new(ChannelShutdown(rx)),
                })
            })
            .ok();
        RunningGateway {
            state,
            listeners,
            admin,
            stop: tx,
            thread,
        }
    }
}

/// A gateway running in a background thread of this process.
pub struct RunningGateway {
    /// Shared state (config, metrics, access log).
    pub state: Arc<GatewayState>,
    /// Listener names and bound addresses.
    pub listeners: Vec<(String, SocketAddr)>,
    /// Admin listener address.
    pub admin: Option<SocketAddr>,
    stop: tokio::sync::watch::Sender<Option<Stop>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningGateway {
    /// The address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.listeners
            .first()
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// Stops gracefully (as SIGTERM would) and waits for the server thread.
    pub fn shutdown(mut self) {
        let _ = self.stop.send(Some(Stop::Graceful));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for RunningGateway {
    fn drop(&mut self) {
        let _ = self.stop.send(Some(Stop::Fast));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Graceful,
    Fast,
}

struct ChannelShutdown(tokio::sync::watch::Receiver<Option<Stop>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        loop {
            match *rx.borrow_and_update() {
                Some(Stop::Graceful) => return ShutdownSignal::GracefulTerminate,
                Some(Stop::Fast) => return ShutdownSignal::FastShutdown,
                None => {}
            }
            if rx.changed().await.is_err() {
                return ShutdownSignal::FastShutdown;
            }
        }
    }
}

/// A service whose listeners on port 0 were bound before the server started.
struct Prebound<S> {
    inner: S,
    sockets: Vec<(String, TcpListener)>,
}

#[async_trait]
impl<S: Service + Send + Sync> Service for Prebound<S> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        if let Some(table) = &fds {
            let mut t = table.lock();
            for (addr, sock) in self.sockets.drain(..) {
                if t.get(&addr).is_none() {
                    t.add(addr, sock.into_raw_fd());
                }
            }
        }
        self.inner
            .start_service(fds, shutdown, listeners_per_fd)
            .await
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn threads(&self) -> Option<usize> {
        self.inner.threads()
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        self.inner.listen_addresses()
    }
}
