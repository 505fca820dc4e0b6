//! Hostile input against the running gateway: request smuggling, oversized requests, invalid
//! bytes and slow clients. Each is refused with a 4xx (problem+json when the gateway itself
//! answers), never reaches the backend, and leaves other connections alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

fn config(backend: &Backend, extra: &str) -> String {
    format!(
        "server: {{ threads: 2 }}\nlisteners:\n  - {{ name: main, address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0 }}\naccess_log: {{ path: access.log }}\nreload: {{ watch: false }}\nlimits: {{ max_body_size: 1KiB, client_body_timeout: 300ms, max_header_count: 50, max_header_bytes: 16KiB, max_uri_length: 4KiB, max_query_args: 100, client_header_timeout: 1s }}\nupstreams:\n  app: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: app, upstream: app }}\n{extra}",
        backend.addr
    )
}

/// Sends `bytes` on a fresh connection and reads until the gateway closes it or `wait` passes.
fn exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let _ = s.write_all(bytes);
    let deadline = Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn status(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {resp:?}"))
}

/// How many status lines (`HTTP/1.1 NNN `) the bytes hold.
fn answers(resp: &str) -> usize {
    resp.match_indices("HTTP/1.1 ")
        .filter(|(i, _)| {
            let code = resp.as_bytes().get(i + 9..i + 13).unwrap_or_default();
            code.len() == 4 && code[..3].iter().all(u8::is_ascii_digit) && code[3] == b' '
        })
        .count()
}

fn is_problem(resp: &str) -> bool {
    resp.to_ascii_lowercase()
        .contains("content-type: application/problem+json")
}

/// The gateway still serves an ordinary request.
async fn still_serves(gw: &TestGateway) {
    let r = client().get(gw.url("/ok")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_framing_is_refused_and_nothing_is_smuggled() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    // (name, request head + body, expected status, answered by the gateway's own stage)
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "content-length and transfer-encoding",
            [
                &b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"[..],
                smuggled,
            ]
            .concat(),
            400,
            "ambiguous_framing",
        ),
        (
            "a coding other than chunked",
            [
                &b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"[..],
                smuggled,
            ]
            .concat(),
            501,
            "unsupported_transfer_coding",
        ),
        (
            "duplicate content-length",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "invalid content-length",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 4x\r\n\r\nabcd".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "negative content-length",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nabcd".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "obfuscated transfer-encoding value",
            [
                &b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"[..],
                smuggled,
            ]
            .concat(),
            400,
            "malformed_request",
        ),
        (
            "space before the colon",
            [
                &b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"[..],
                smuggled,
            ]
            .concat(),
            400,
            "malformed_request",
        ),
        (
            "transfer-encoding twice",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "invalid chunk size",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "chunk size overflow",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "obsolete line folding",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "bare CR splitting a header value",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\rX-Injected: 1\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "control byte in a header value",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "two Host headers",
            b"GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".to_vec(),
            400,
            "malformed_request",
        ),
        (
            "HTTP/1.1 without Host",
            b"GET /a HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "missing_host",
        ),
    ];
    for (name, bytes, want, reason) in &cases {
        let resp = exchange(gw.addr(), bytes, Duration::from_secs(2));
        assert_eq!(status(&resp), *want, "{name}: {resp}");
        assert_eq!(answers(&resp), 1, "{name}: one answer only: {resp}");
        // Refusals of the HTTP parser, before any stage ran, are problem+json too.
        assert!(is_problem(&resp), "{name}: {resp}");
        assert!(
            resp.contains(&format!(":{reason}\"")),
            "{name}: reason {reason}: {resp}"
        );
        still_serves(&gw).await;
    }
    let paths: Vec<String> = backend.seen().iter().map(|s| s.target.clone()).collect();
    // Nothing after a refused head is read as a request. A head that is fine is streamed on
    // before its body turns out broken (the two bad-chunk cases): the backend sees that request
    // cut off, and nothing of what followed it.
    assert!(
        !paths.iter().any(|p| p == "/smuggled"),
        "a smuggled request reached the backend: {paths:?}"
    );
    let cut_off = paths.iter().filter(|p| *p == "/a").count();
    assert!(cut_off <= 2, "{paths:?}");
    let metrics = gw.metrics().await;
    for reason in [
        "ambiguous_framing",
        "unsupported_transfer_coding",
        "missing_host",
        "malformed_request",
    ] {
        assert!(
            metrics.contains(&format!("reason=\"{reason}\"")),
            "{reason} counted"
        );
    }
    let log = std::fs::read_to_string(gw.path("access.log")).unwrap();
    assert!(log.contains("\"refusal\":\"ambiguous_framing\""), "{log}");
    assert!(log.contains("\"refusal\":\"malformed_request\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_lf_head_is_forwarded_with_clean_framing() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    let resp = exchange(
        gw.addr(),
        b"GET /lf HTTP/1.1\nHost: a\nX-Test: 1\n\n",
        Duration::from_millis(600),
    );
    assert_eq!(status(&resp), 200, "{resp}");
    let seen = backend.last();
    assert_eq!(seen.target, "/lf");
    assert_eq!(seen.header("x-test").as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_get_their_status_and_never_reach_the_backend() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    let long_uri = format!("/{}", "a".repeat(5000));
    let many_args = format!("/q?{}", "a=1&".repeat(150));
    let many_headers: String = (0..60).map(|i| format!("X-H{i}: v\r\n")).collect();
    let big_header = format!("X-Big: {}\r\n", "v".repeat(20_000));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "uri",
            format!("GET {long_uri} HTTP/1.1\r\nHost: a\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            "query args",
            format!("GET {many_args} HTTP/1.1\r\nHost: a\r\n\r\n"),
            400,
            "too_many_args",
        ),
        (
            "header count",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "header bytes",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{big_header}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "declared body",
            format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n{}",
                "b".repeat(2000)
            ),
            413,
            "body_too_large",
        ),
    ];
    for (name, req, want, reason) in &cases {
        let resp = exchange(gw.addr(), req.as_bytes(), Duration::from_secs(2));
        assert_eq!(status(&resp), *want, "{name}: {resp}");
        assert!(is_problem(&resp), "{name}: {resp}");
        assert!(resp.contains(&format!(":{reason}\"")), "{name}: {resp}");
    }
    assert_eq!(backend.count(), 0, "nothing oversized was forwarded");

    // A chunked body is counted as it streams: over the limit, the client gets 413.
    let chunk = format!("258\r\n{}\r\n", "c".repeat(600));
    let req = format!("POST /stream HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}{chunk}0\r\n\r\n");
    let resp = exchange(gw.addr(), req.as_bytes(), Duration::from_secs(2));
    assert_eq!(status(&resp), 413, "{resp}");
    assert!(is_problem(&resp), "{resp}");
    // Within the limit it passes.
    let r = client()
        .post(gw.url("/small"))
        .body("x".repeat(1000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    still_serves(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_bytes_in_the_target_are_refused() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    for (name, target) in [
        ("invalid percent-encoding", &b"/a%zz"[..]),
        ("truncated percent-encoding", b"/a%4"),
        ("encoded NUL", b"/a%00b"),
        ("raw NUL", b"/a\x00b"),
        ("raw control byte", b"/a\x01b"),
        ("raw DEL", b"/a\x7fb"),
        ("raw overlong UTF-8 dots", b"/\xc0\xae\xc0\xae/etc/passwd"),
        ("raw invalid UTF-8", b"/a\xffb"),
    ] {
        let req = [b"GET ", target, b" HTTP/1.1\r\nHost: a\r\n\r\n"].concat();
        let resp = exchange(gw.addr(), &req, Duration::from_secs(1));
        assert_eq!(status(&resp), 400, "{name}: {resp}");
        assert!(is_problem(&resp), "{name}: {resp}");
    }
    assert_eq!(backend.count(), 0);
    still_serves(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_attacks_in_the_target_meet_the_waf() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(
        &backend,
        "waf: { rules: [builtin], paranoia: 1, mode: block }\n",
    ));
    for target in [
        "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
        "/login?next=%0d%0aSet-Cookie:%20session=attacker",
    ] {
        let resp = exchange(
            gw.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
            Duration::from_secs(1),
        );
        assert_eq!(status(&resp), 403, "{target}: {resp}");
        assert!(is_problem(&resp));
    }
    assert_eq!(backend.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_body_is_timed_out_while_others_are_served() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    let mut slow = TcpStream::connect(gw.addr()).unwrap();
    slow.write_all(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
        .unwrap();
    let started = Instant::now();
    // Others are served meanwhile.
    still_serves(&gw).await;
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    let resp = String::from_utf8_lossy(&out);
    assert_eq!(status(&resp), 408, "{resp}");
    assert!(is_problem(&resp), "{resp}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed after the body timeout, not the client's: {:?}",
        started.elapsed()
    );
    still_serves(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_sent_too_slowly_is_timed_out_while_others_are_served() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    // Slowloris: a header line every 100 ms, for up to 8 s; the head is given 1 s in all.
    let mut slow = TcpStream::connect(gw.addr()).unwrap();
    slow.write_all(b"GET /slow HTTP/1.1\r\nHost: a\r\n")
        .unwrap();
    let mut drip = slow.try_clone().unwrap();
    let dripping = std::thread::spawn(move || {
        let until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
            if drip.write_all(b"X-Drip: 1\r\n").is_err() {
                return true;
            }
        }
        false
    });
    still_serves(&gw).await;
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let _ = slow.read_to_end(&mut out);
    let resp = String::from_utf8_lossy(&out);
    assert_eq!(status(&resp), 408, "{resp}");
    assert!(is_problem(&resp), "{resp}");
    assert!(resp.contains(":header_timeout\""), "{resp}");
    assert!(
        dripping.join().unwrap(),
        "the gateway closed the connection while the client was still sending its head"
    );
    still_serves(&gw).await;
    assert!(
        !backend.seen().iter().any(|s| s.target == "/slow"),
        "an unfinished head reached the backend"
    );
    gw.wait_metric(
        "portcullis_http_refusals_total{reason=\"header_timeout\",route=\"none\"}",
        1.0,
    )
    .await;
    eventually(Duration::from_secs(5), "access-log line", || async {
        std::fs::read_to_string(gw.path("access.log"))
            .unwrap_or_default()
            .contains("\"refusal\":\"header_timeout\"")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_deadline_spares_idle_keepalive_and_closes_silent_connections() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    // A keep-alive connection idle for longer than the head deadline still serves its next
    // request: the deadline starts at the first byte of a head.
    let mut s = TcpStream::connect(gw.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let read_answer = |s: &mut TcpStream| {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && answers(&String::from_utf8_lossy(&out)) == 0 {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        // The rest of the answer (its body) follows at once.
        std::thread::sleep(Duration::from_millis(100));
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    s.write_all(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    assert_eq!(status(&read_answer(&mut s)), 200);
    std::thread::sleep(Duration::from_millis(1800));
    s.write_all(b"GET /two HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    let second = read_answer(&mut s);
    assert_eq!(status(&second), 200, "{second}");
    let paths: Vec<String> = backend.seen().iter().map(|s| s.target.clone()).collect();
    assert!(
        paths.ends_with(&["/one".into(), "/two".into()]),
        "{paths:?}"
    );

    // A connection that never sends a byte is closed after the deadline, without an answer
    // (browsers open such connections speculatively).
    let mut silent = TcpStream::connect(gw.addr()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = silent.read_to_end(&mut out);
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a silent connection was held {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_the_http_parser_refuses_get_problem_json() {
    let backend = Backend::start("app");
    let gw = TestGateway::start(&config(&backend, ""));
    for (name, bytes, want, reason) in [
        (
            "header line without a colon",
            &b"GET /a HTTP/1.1\r\nHost: a\r\nNot a header\r\n\r\n"[..],
            400,
            "malformed_request",
        ),
        (
            "garbage request line",
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            400,
            "malformed_request",
        ),
        (
            "CONNECT",
            &b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"[..],
            405,
            "method_not_allowed",
        ),
    ] {
        let resp = exchange(gw.addr(), bytes, Duration::from_secs(2));
        assert_eq!(status(&resp), want, "{name}: {resp}");
        assert_eq!(answers(&resp), 1, "{name}: {resp}");
        assert!(is_problem(&resp), "{name}: {resp}");
        assert!(resp.contains(&format!(":{reason}\"")), "{name}: {resp}");
        assert!(
            resp.to_ascii_lowercase().contains("x-request-id: "),
            "{name}: {resp}"
        );
        let (_, body) = resp.split_once("\r\n\r\n").unwrap();
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], want, "{name}");
        still_serves(&gw).await;
    }
    assert_eq!(
        backend.count(),
        3,
        "only the still_serves requests reach the backend"
    );
    gw.wait_metric(
        "portcullis_http_refusals_total{reason=\"malformed_request\",route=\"none\"}",
        2.0,
    )
    .await;
    gw.wait_metric(
        "portcullis_http_refusals_total{reason=\"method_not_allowed\",route=\"none\"}",
        1.0,
    )
    .await;
    eventually(Duration::from_secs(5), "access-log lines", || async {
        let log = std::fs::read_to_string(gw.path("access.log")).unwrap_or_default();
        log.matches("\"refusal\":\"malformed_request\"").count() == 2
            && log.contains("\"refusal\":\"method_not_allowed\"")
    })
    .await;
}
