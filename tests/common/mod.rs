//! Test harness: an in-test HTTP backend, a gateway started in-process on ephemeral ports from a
//! YAML config, the real binary, and small helpers to wait for conditions and read metrics.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use portcullis::server::{prepare, Launch, RunningGateway};
use portcullis::state::ConfigSource;

/// A request as the backend saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    /// All values of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        let vals: Vec<&str> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        if vals.is_empty() {
            None
        } else {
            Some(vals.join(", "))
        }
    }
}

/// Shared, adjustable behaviour of a backend.
pub struct BackendState {
    pub name: String,
    pub seen: Mutex<Vec<Seen>>,
    pub count: AtomicUsize,
    /// Delay before answering (not for /healthz), in milliseconds.
    pub delay_ms: AtomicU64,
    /// Status answered on /healthz.
    pub health_status: AtomicU16,
    /// Extra response headers.
    pub response_headers: Mutex<Vec<(String, String)>>,
}

/// An HTTP/1.1 + HTTP/2 backend on 127.0.0.1:0, answering 200 with `{"backend": name, ...}`.
pub struct Backend {
    pub addr: SocketAddr,
    pub state: Arc<BackendState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Self::start_with(name, None)
    }

    /// A backend that speaks HTTPS with the given certificate.
    pub fn start_tls(name: &str, pem: &Pem) -> Backend {
        use tokio_rustls::rustls;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.cert.as_bytes())
            .map(|c| c.unwrap())
            .collect();
        let key = rustls_pemfile::private_key(&mut pem.key.as_bytes())
            .unwrap()
            .unwrap();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        Self::start_with(
            name,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
    }

    fn start_with(name: &str, tls: Option<tokio_rustls::TlsAcceptor>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(BackendState {
            name: name.to_string(),
            seen: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            delay_ms: AtomicU64::new(0),
            health_status: AtomicU16::new(200),
            response_headers: Mutex::new(Vec::new()),
        });
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        _ = &mut rx => break,
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let st = st.clone();
                            let tls = tls.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| handle(st.clone(), req));
                                let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
                                match tls {
                                    Some(acceptor) => {
                                        if let Ok(s) = acceptor.accept(stream).await {
                                            let _ = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(s), svc).await;
                                        }
                                    }
                                    None => {
                                        let _ = builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), svc).await;
                                    }
                                }
                            });
                        }
                    }
                }
            });
        });
        Backend {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Seen {
        self.seen().last().cloned().expect("backend saw no request")
    }

    pub fn set_delay(&self, d: Duration) {
        self.state
            .delay_ms
            .store(d.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn set_health(&self, status: u16) {
        self.state.health_status.store(status, Ordering::SeqCst);
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn handle(
    st: Arc<BackendState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    if parts.uri.path() == "/healthz" {
        let status = st.health_status.load(Ordering::SeqCst);
        return Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"health")))
            .unwrap());
    }
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts.uri.to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    st.seen.lock().unwrap().push(seen);
    st.count.fetch_add(1, Ordering::SeqCst);
    let delay = st.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut resp = Response::builder()
        .status(200)
        .header("content-type", "application/json");
    for (k, v) in st.response_headers.lock().unwrap().iter() {
        resp = resp.header(k.as_str(), v.as_str());
    }
    let body = format!(
        "{{\"backend\":\"{}\",\"path\":\"{}\"}}",
        st.name,
        parts.uri.path()
    );
    Ok(resp.body(Full::new(Bytes::from(body))).unwrap())
}

/// An address on which nothing listens (connections are refused).
pub fn dead_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A gateway running in this process with its config in a temporary directory.
pub struct TestGateway {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub running: RunningGateway,
}

impl TestGateway {
    /// Writes `yaml` as `gateway.yaml` in a fresh directory and starts the gateway with it.
    pub fn start(yaml: &str) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, yaml)
    }

    /// Like [`TestGateway::start`] in a directory prepared by the caller (rule files, keys, ...).
    pub fn start_in(dir: tempfile::TempDir, yaml: &str) -> TestGateway {
        let config = dir.path().join("gateway.yaml");
        std::fs::write(&config, yaml).unwrap();
        let prepared = match prepare(Launch {
            source: ConfigSource::File(config.clone()),
            upgrade: false,
            daemon: false,
            sighup: false,
        }) {
            Ok(p) => p,
            Err(e) => panic!("gateway did not start:\n{e}"),
        };
        let running = prepared.spawn();
        let gw = TestGateway {
            dir,
            config,
            running,
        };
        gw.wait_ready();
        gw
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.running.state.is_ready() {
            assert!(Instant::now() < deadline, "gateway not ready after 10s");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The proxy and admin sockets were bound before start; wait until they accept.
        wait_until_connectable(self.running.addr());
        if let Some(a) = self.running.admin {
            wait_until_connectable(a);
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!(
            "http://{}{}",
            self.running.admin.expect("no admin listener"),
            path
        )
    }

    /// Replaces the config file (a reload follows when watching is on).
    pub fn write_config(&self, yaml: &str) {
        write_atomically(&self.config, yaml);
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Scrapes `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(self.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample, e.g. `portcullis_config_reloads_total{result="success"}`.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample).unwrap_or(0.0)
    }

    /// Waits until `portcullis_waf_body_limit_total` has value `want` for each
    /// `(action, limit, route, want)`.
    pub async fn wait_body_limits(&self, expected: &[(&str, &str, &str, f64)]) {
        for (action, limit, route, want) in expected {
            self.wait_metric(
                &format!(
                    r#"portcullis_waf_body_limit_total{{action="{action}",limit="{limit}",route="{route}"}}"#
                ),
                *want,
            )
            .await;
        }
    }

    /// Waits until `sample` has value `want` (counters are updated when a request is logged,
    /// which can be just after the client got its response).
    pub async fn wait_metric(&self, sample: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let last = self.metric(sample).await;
            if last == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{sample} is {last}, expected {want}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access-log line of request `id`, waiting for it to be written.
    pub async fn log_line(&self, id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .access_log()
                .into_iter()
                .find(|l| l["request_id"] == id)
            {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no access-log line for request {id}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Complete lines of the access log (the config must set `access_log.path: access.log`).
    /// A last line without its newline is still being written and is left for the next read.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.running.state.access_log.flush();
        let text = std::fs::read_to_string(self.path("access.log")).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// The value of `sample` (metric name with its exact label set, labels in exposition order).
pub fn metric_value(text: &str, sample: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == sample).then(|| value.parse().ok()).flatten()
    })
}

/// The sum of every sample of metric `name` whose labels include `label` (`key="value"`).
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .filter(|l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn wait_until_connectable(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{addr} does not accept connections"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A client that does not follow redirects or use proxies from the environment.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Polls `f` until it returns true, failing the test after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends raw bytes and reads until the server closes or `timeout` passes.
pub fn raw_request(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One response is enough when the server keeps the connection open.
                if response_complete(&out) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn response_complete(buf: &[u8]) -> bool {
    let text = String::from_utf8_lossy(buf);
    let Some(head_end) = text.find("\r\n\r\n") else {
        return false;
    };
    let head = text[..head_end].to_ascii_lowercase();
    let len = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
    });
    match len {
        Some(n) => buf.len() >= head_end + 4 + n,
        None => false,
    }
}

/// The `portcullis` binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_portcullis"))
}

/// The repository root (tests run with it as the working directory).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A `portcullis` process started with `args`; its stderr is scanned for the listening lines.
pub struct Process {
    pub child: std::process::Child,
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub stderr: Arc<Mutex<String>>,
}

impl Process {
    pub fn spawn(args: &[&str], expect_listeners: &[&str]) -> Process {
        use std::io::BufRead;
        let mut child = std::process::Command::new(bin())
            .args(args)
            .env("RUST_LOG", "portcullis=info,warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening ").nth(1) {
                    if let Some((name, url)) = rest.split_once(" on ") {
                        let url = url
                            .trim()
                            .trim_start_matches("http://")
                            .trim_start_matches("https://");
                        if let Ok(a) = url.parse::<SocketAddr>() {
                            let _ = tx.send((name.to_string(), a));
                        }
                    }
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let mut listeners = std::collections::HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while expect_listeners.iter().any(|n| !listeners.contains_key(*n)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok((n, a)) => {
                    listeners.insert(n, a);
                }
                Err(_) => panic!(
                    "portcullis {args:?} did not report listeners {expect_listeners:?}; stderr:\n{}",
                    log.lock().unwrap()
                ),
            }
        }
        for a in listeners.values() {
            wait_until_connectable(*a);
        }
        Process {
            child,
            listeners,
            stderr: log,
        }
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listeners[name]
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The text of the admin listener's `/metrics`.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("http://{}/metrics", self.addr("admin")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real `redis-server` on a free loopback port, stopped when dropped.
pub struct RedisServer {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts redis-server; the test fails (it is not skipped) when the binary is missing:
    /// `.ci/run` installs it.
    pub fn start() -> RedisServer {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut r = RedisServer {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts (again) on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis already running");
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir.path().to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is required for the distributed rate-limit tests (.ci/run installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"PING\r\n");
                let mut buf = [0u8; 16];
                s.set_read_timeout(Some(Duration::from_millis(500)))
                    .unwrap();
                if let Ok(n) = s.read(&mut buf) {
                    if buf[..n].starts_with(b"+PONG") {
                        return;
                    }
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends one inline command and returns the first line of the reply.
    pub fn command(&self, cmd: &str) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 256];
        let n = s.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// Freezes the server (SIGSTOP): connections stay open and nothing is answered, as when
    /// Redis is overloaded or the network stalls.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("redis running").id().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} {pid}");
    }

    /// Kills the server (the port is free again).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test PKI: a CA, and leaf and client certificates it signs.
pub struct Pki {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_pem: String,
}

/// A certificate and key in PEM.
pub struct Pem {
    pub cert: String,
    pub key: String,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A server certificate for `names`, valid from `from_days` to `to_days` around now.
    pub fn server(&self, names: &[&str], from_days: i64, to_days: i64) -> Pem {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::days(from_days);
        params.not_after = now + time::Duration::days(to_days);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    /// A client certificate with common name `cn`.
    pub fn client(&self, cn: &str) -> Pem {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// What a TLS handshake to the gateway produced.
pub struct Handshake {
    /// DNS names of the certificate the server presented.
    pub names: Vec<String>,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<tokio_rustls::rustls::ProtocolVersion>,
}

/// Performs a TLS handshake with `addr`, sending `sni` (None: connect by IP, no SNI).
pub async fn tls_handshake(
    addr: SocketAddr,
    sni: Option<&str>,
    ca_pem: &str,
    client: Option<&Pem>,
    alpn: &[&[u8]],
) -> Result<Handshake, String> {
    use tokio_rustls::rustls;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client {
        Some(p) => {
            let certs: Vec<_> = rustls_pemfile::certs(&mut p.cert.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = rustls_pemfile::private_key(&mut p.key.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let name = match sni {
        Some(n) => rustls::pki_types::ServerName::try_from(n.to_string()).unwrap(),
        None => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
    };
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, conn) = stream.get_ref();
    let der = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no certificate")?;
    let (names, _, _) = portcullis::tls::certs::describe(&der)?;
    Ok(Handshake {
        names,
        alpn: conn.alpn_protocol().map(|a| a.to_vec()),
        version: conn.protocol_version(),
    })
}

/// An HTTPS client trusting `ca_pem`, resolving every name in `names` to `addr`.
pub fn https_client(
    ca_pem: &str,
    names: &[&str],
    addr: SocketAddr,
    identity: Option<&Pem>,
) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap());
    for n in names {
        b = b.resolve(n, addr);
    }
    if let Some(p) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{}{}", p.cert, p.key).as_bytes()).unwrap(),
        );
    }
    b.build().unwrap()
}

/// Bytes that look like compressed image data: a fixed pseudo-random sequence (xorshift), so
/// every run sends the same bodies.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The start of most test configs: one worker thread, one plain listener and the admin
/// listener on ephemeral ports, and an access log in the gateway's directory.
pub const GATEWAY_HEAD: &str = "server: { threads: 1 }
listeners:
  - { name: main, address: 127.0.0.1:0 }
admin: { address: 127.0.0.1:0 }
access_log: { path: access.log }";
