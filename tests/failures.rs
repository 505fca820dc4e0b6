//! Failures around the gateway: a backend that resets its connections, an access log that cannot
//! be written, a client that hangs up. The gateway answers what it can, counts the failure and
//! keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn config(backend: SocketAddr, access_log: &str) -> String {
    format!(
        "server: {{ threads: 2 }}\nlisteners:\n  - {{ name: main, address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0 }}\naccess_log: {{ path: \"{access_log}\" }}\nreload: {{ watch: false }}\nupstreams:\n  app: {{ backends: [\"{backend}\"], read_timeout: 2s }}\nroutes:\n  - {{ name: app, upstream: app }}\n"
    )
}

/// A backend on raw sockets. `/reset-early`: reads the request and resets the connection.
/// `/reset-mid`: sends a head announcing 1000 bytes and 10 of them, then resets. Anything else:
/// a complete `200 ok`. Counts the connections it accepted and those still open.
struct ResettingBackend {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
}

impl ResettingBackend {
    async fn start() -> ResettingBackend {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let o = o.clone();
                o.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        // One request per read loop: keep-alive connections serve several.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => {
                                    o.fetch_sub(1, Ordering::SeqCst);
                                    return;
                                }
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&buf).into_owned();
                        buf.clear();
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        if path == "/reset-early" || path == "/reset-mid" {
                            if path == "/reset-mid" {
                                let _ = s
                                    .write_all(
                                        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789",
                                    )
                                    .await;
                                let _ = s.flush().await;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            let _ = s.set_zero_linger();
                            drop(s);
                            o.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                        if s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .await
                            .is_err()
                        {
                            o.fetch_sub(1, Ordering::SeqCst);
                            return;
                        }
                    }
                });
            }
        });
        ResettingBackend { addr, open }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_resetting_before_or_during_its_response_is_contained() {
    let be = ResettingBackend::start().await;
    let gw = TestGateway::start(&config(be.addr, "access.log"));
    let cl = client();

    // Reset before any byte of the response: the gateway answers 502 itself. A GET is retried
    // once on a fresh connection, which resets too.
    for _ in 0..5 {
        let r = cl.get(gw.url("/reset-early")).send().await.unwrap();
        assert_eq!(r.status(), 502);
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        // The gateway does not reuse this connection, and says so.
        assert_eq!(r.headers()["connection"], "close");
    }

    // Reset after the head went out: the client sees the response cut short (its length
    // announced, never delivered), not a response that looks complete.
    for _ in 0..5 {
        let r = cl.get(gw.url("/reset-mid")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.bytes().await.is_err(),
            "a truncated body read as complete"
        );
    }

    // Everything else is served meanwhile and after.
    for _ in 0..5 {
        let r = cl.get(gw.url("/fine")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "ok");
    }
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="upstream_error",route="app"}"#,
        5.0,
    )
    .await;
    // Every reset is counted as an upstream error, whatever kind the socket reported.
    let text = gw.metrics().await;
    let upstream_errors = metric_sum(
        &text,
        "portcullis_upstream_errors_total",
        r#"upstream="app""#,
    );
    assert!(upstream_errors >= 10.0, "{text}");
    // Nothing is left hanging: no request in flight, and the backend holds no connection but
    // the pooled keep-alive ones (at most one per concurrent request here).
    gw.wait_metric("portcullis_http_requests_in_flight", 0.0)
        .await;
    assert!(
        be.open.load(Ordering::SeqCst) <= 2,
        "{}",
        be.open.load(Ordering::SeqCst)
    );
    let log = gw.access_log();
    let cut: Vec<_> = log.iter().filter(|l| l["path"] == "/reset-mid").collect();
    assert_eq!(cut.len(), 5);
    assert!(
        cut.iter().all(|l| l["upstream_error"].is_string()),
        "a cut-short response is logged with its upstream error: {cut:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_access_log_is_counted_and_requests_are_served() {
    let be = Backend::start("app");
    // /dev/full: every write fails with ENOSPC, as on a full disk.
    let full = TestGateway::start(&config(be.addr, "/dev/full"));
    // A directory: the log cannot even be opened.
    let dir = tempfile::tempdir().unwrap();
    let unopenable = TestGateway::start(&config(be.addr, dir.path().to_str().unwrap()));
    for gw in [&full, &unopenable] {
        for _ in 0..20 {
            let r = client().get(gw.url("/x")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        gw.running.state.access_log.flush();
        eventually(Duration::from_secs(5), "lost lines counted", || async {
            gw.metric(r#"portcullis_access_log_errors_total{reason="write_error"}"#)
                .await
                >= 20.0
        })
        .await;
    }
    assert_eq!(be.count(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_is_a_499_in_the_access_log_and_no_error_line() {
    let slow = Backend::start("slow");
    slow.set_delay(Duration::from_millis(600));
    let dead = dead_addr();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    let log_path = dir.path().join("access.log");
    write_atomically(
        &cfg,
        &format!(
            "server: {{ threads: 2 }}\nlisteners:\n  - {{ name: main, address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0 }}\naccess_log: {{ path: \"{}\" }}\nreload: {{ watch: false }}\nupstreams:\n  slow: {{ backends: [\"{}\"] }}\n  dead: {{ backends: [\"{dead}\"] }}\nroutes:\n  - {{ name: slow, upstream: slow, path_prefix: /slow }}\n  - {{ name: dead, upstream: dead, path_prefix: /dead }}\n",
            log_path.display(),
            slow.addr
        ),
    );
    let p = Process::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &["main", "admin"],
    );

    // The client asks, then hangs up while the backend is still working on the answer.
    let mut s = tokio::net::TcpStream::connect(p.addr("main"))
        .await
        .unwrap();
    s.write_all(b"GET /slow/report HTTP/1.1\r\nHost: app.test\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    drop(s);
    // A backend that refuses connections: a failure that does need someone's attention.
    let resp = client()
        .get(format!("http://{}/dead/x", p.addr("main")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);

    eventually(
        Duration::from_secs(10),
        "the dropped request is logged as 499",
        || async {
            std::fs::read_to_string(&log_path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .any(|v| v["path"] == "/slow/report" && v["status"] == 499)
        },
    )
    .await;
    // Log lines reach the test through a pipe and a reader thread: wait for the one that must
    // come, and give a line that must not come as long to turn up.
    eventually(
        Duration::from_secs(10),
        "the refused backend connection is an error line",
        || async {
            p.stderr()
                .lines()
                .any(|l| l.contains("ERROR") && l.contains("/dead/x"))
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stderr = p.stderr();
    assert!(
        !stderr.lines().any(|l| l.contains("/slow/report")),
        "a client hanging up is not an error line:\n{stderr}"
    );
}
