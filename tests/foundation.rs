//! End-to-end tests of the foundation: routing, header handling, upstream failures, health
//! checks, reload and metrics — a real gateway on loopback in front of real backends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

fn base(extra: &str) -> String {
    format!(
        "server:\n  threads: 1\nlisteners:\n  - name: main\n    address: 127.0.0.1:0\nadmin:\n  address: 127.0.0.1:0\naccess_log:\n  path: access.log\nreload:\n  poll_interval: 50ms\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_longest_prefix_and_404s_the_rest() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let c = Backend::start("c");
    let gw = TestGateway::start(&base(&format!(
        r#"
upstreams:
  a: {{ backends: ["{a}"] }}
  b: {{ backends: ["{b}"] }}
  c: {{ backends: ["{c}"] }}
routes:
  - {{ name: root, hosts: [localhost], path_prefix: /, upstream: a }}
  - {{ name: api, hosts: [localhost], path_prefix: /api, upstream: b }}
  - {{ name: api-v2, hosts: [localhost], path_prefix: /api/v2/, upstream: c }}
  - {{ name: wild, hosts: ["*.example.com"], path_prefix: /, upstream: c }}
"#,
        a = a.addr,
        b = b.addr,
        c = c.addr
    )));
    let cl = client();
    let get = |host: &'static str, path: &'static str| {
        let cl = cl.clone();
        let url = gw.url(path);
        async move {
            let r = cl.get(url).header("Host", host).send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            (status, body)
        }
    };
    let backend_of = |body: &str| -> String {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["backend"].as_str().unwrap().to_string()
    };
    assert_eq!(backend_of(&get("localhost", "/").await.1), "a");
    assert_eq!(
        backend_of(&get("localhost", "/apix").await.1),
        "a",
        "prefixes match whole segments"
    );
    assert_eq!(backend_of(&get("localhost", "/api").await.1), "b");
    assert_eq!(backend_of(&get("localhost", "/api/v1/x").await.1), "b");
    assert_eq!(backend_of(&get("localhost", "/api/v2/x?q=1").await.1), "c");
    assert_eq!(backend_of(&get("LocalHost:8080", "/api/v2").await.1), "c");
    assert_eq!(
        backend_of(&get("shop.example.com", "/anything").await.1),
        "c"
    );
    // Dot segments cannot escape a route: /api/v2/../../x is /x.
    let (_, body) = get("localhost", "/api/v2/%2e%2e/../x").await;
    assert_eq!(backend_of(&body), "a");
    assert_eq!(
        c.seen().iter().filter(|s| s.target.contains("..")).count(),
        0
    );

    let (status, body) = get("unknown.test", "/").await;
    assert_eq!(status, 404);
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["status"], 404);
    assert!(problem["request_id"].as_str().unwrap().len() >= 16);
    let r = cl
        .get(gw.url("/"))
        .header("Host", "unknown.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="no_route",route="none"}"#,
        2.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let be = Backend::start("be");
    let gw = TestGateway::start(&base(&format!(
        "upstreams:\n  u: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, upstream: u }}\n",
        be.addr
    )));
    // Claims about the client, the host, the scheme or the URL that backends believe.
    let claims = [
        ("Forwarded", "for=6.6.6.6;host=evil.example;proto=https"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Forwarded-Ssl", "on"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Client-IP", "6.6.6.6"),
        ("True-Client-IP", "6.6.6.6"),
        ("CF-Connecting-IP", "6.6.6.6"),
        ("X-Original-URL", "/admin/secret"),
        ("X-Rewrite-URL", "/admin/secret"),
    ];
    let mut req = client()
        .get(gw.url("/x"))
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Forwarded-Proto", "https")
        .header("X-Request-Id", "client-chosen-id")
        .header("X-Custom", "kept");
    for (name, value) in claims {
        req = req.header(name, value);
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(rid, "client-chosen-id");
    let seen = be.last();
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(seen.header("x-real-ip").as_deref(), Some("127.0.0.1"));
    for (name, _) in claims {
        if name != "X-Real-IP" {
            assert_eq!(seen.header(name), None, "{name} was passed on");
        }
    }
    assert_eq!(seen.header("x-custom").as_deref(), Some("kept"));
    assert_eq!(seen.header("x-request-id"), Some(rid.clone()));
    let line = gw.log_line(&rid).await;
    assert_eq!(line["client_ip"], "127.0.0.1");
    assert_eq!(line["route"], "r");
    assert_eq!(line["status"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended() {
    let be = Backend::start("be");
    let gw = TestGateway::start(&base(&format!(
        "trusted_proxies: [127.0.0.0/8, 10.0.0.0/8]\nupstreams:\n  u: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, upstream: u }}\n",
        be.addr
    )));
    let r = client()
        .get(gw.url("/x"))
        .header("X-Forwarded-For", "203.0.113.7, 10.1.2.3")
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-Host", "shop.example")
        .header("X-Request-Id", "lb-1234")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "lb-1234");
    let seen = be.last();
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("shop.example")
    );
    assert_eq!(seen.header("x-real-ip").as_deref(), Some("203.0.113.7"));
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 10.1.2.3, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(seen.header("x-request-id").as_deref(), Some("lb-1234"));
    let line = gw.log_line("lb-1234").await;
    assert_eq!(
        line["client_ip"], "203.0.113.7",
        "the right-most untrusted address is the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let be = Backend::start("be");
    be.state.response_headers.lock().unwrap().extend([
        ("x-internal".to_string(), "secret".to_string()),
        ("connection".to_string(), "x-internal".to_string()),
        ("keep-alive".to_string(), "timeout=5".to_string()),
        ("x-visible".to_string(), "yes".to_string()),
    ]);
    let gw = TestGateway::start(&base(&format!(
        "upstreams:\n  u: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, upstream: u }}\n",
        be.addr
    )));
    let req = "GET /h HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, X-Drop-Me\r\nX-Drop-Me: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\nTE: gzip\r\nX-Keep-Me: 2\r\n\r\n";
    let resp = raw_request(gw.addr(), req.as_bytes(), Duration::from_secs(5));
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let seen = be.last();
    for h in ["x-drop-me", "keep-alive", "proxy-authorization", "te"] {
        assert!(
            seen.header(h).is_none(),
            "{h} reached the backend: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-keep-me").as_deref(), Some("2"));
    let lower = resp.to_ascii_lowercase();
    assert!(!lower.contains("x-internal"), "{resp}");
    assert!(!lower.contains("keep-alive: timeout"), "{resp}");
    assert!(lower.contains("x-visible: yes"), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_down_is_a_counted_502() {
    let dead = dead_addr();
    let gw = TestGateway::start(&base(&format!(
        "upstreams:\n  gone: {{ backends: [\"{dead}\"] }}\nroutes:\n  - {{ name: r, upstream: gone }}\n"
    )));
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["status"], 502);
    assert_eq!(p["request_id"], rid.as_str());
    gw.wait_metric(
        r#"portcullis_upstream_errors_total{kind="connect_refused",upstream="gone"}"#,
        1.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_requests_total{method="GET",route="r",status_class="5xx"}"#,
        1.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="upstream_error",route="r"}"#,
        1.0,
    )
    .await;
    let line = gw.log_line(&rid).await;
    assert_eq!(line["upstream_error"], "connect_refused");
    assert_eq!(line["status"], 502);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connect_failure_is_retried_on_the_next_backend() {
    let be = Backend::start("alive");
    let dead = dead_addr();
    let gw = TestGateway::start(&base(&format!(
        "upstreams:\n  u: {{ backends: [\"{dead}\", \"{}\"] }}\nroutes:\n  - {{ name: r, upstream: u }}\n",
        be.addr
    )));
    for _ in 0..6 {
        let r = client().get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(be.count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_backend_is_a_counted_504() {
    let be = Backend::start("slow");
    be.set_delay(Duration::from_secs(3));
    let gw = TestGateway::start(&base(&format!(
        "upstreams:\n  slow: {{ backends: [\"{}\"], read_timeout: 300ms }}\nroutes:\n  - {{ name: r, upstream: slow }}\n",
        be.addr
    )));
    let r = client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 504);
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["title"], "Gateway Timeout");
    gw.wait_metric(
        r#"portcullis_upstream_errors_total{kind="timeout",upstream="slow"}"#,
        1.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="upstream_timeout",route="r"}"#,
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_take_a_backend_out_and_put_it_back() {
    let good = Backend::start("good");
    let flaky = Backend::start("flaky");
    let gw = TestGateway::start(&base(&format!(
        r#"
upstreams:
  u:
    backends: ["{}", "{}"]
    health_check: {{ type: http, path: /healthz, interval: 50ms, timeout: 500ms, healthy_after: 1, unhealthy_after: 1 }}
routes:
  - {{ name: r, upstream: u }}
"#,
        good.addr, flaky.addr
    )));
    let up = |addr: std::net::SocketAddr| {
        format!(r#"portcullis_upstream_backend_up{{backend="{addr}",upstream="u"}}"#)
    };
    eventually(Duration::from_secs(5), "both backends up", || async {
        gw.metric(&up(good.addr)).await == 1.0 && gw.metric(&up(flaky.addr)).await == 1.0
    })
    .await;

    flaky.set_health(500);
    eventually(Duration::from_secs(5), "flaky taken out", || async {
        gw.metric(&up(flaky.addr)).await == 0.0
    })
    .await;
    let before = flaky.count();
    for _ in 0..10 {
        assert_eq!(
            client().get(gw.url("/")).send().await.unwrap().status(),
            200
        );
    }
    assert_eq!(
        flaky.count(),
        before,
        "a backend out of rotation got traffic"
    );

    flaky.set_health(200);
    eventually(Duration::from_secs(5), "flaky back", || async {
        gw.metric(&up(flaky.addr)).await == 1.0
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            client().get(gw.url("/")).send().await.unwrap().status(),
            200
        );
    }
    assert!(
        flaky.count() >= before + 4,
        "round robin should send about half to flaky again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_reload_serves_new_routes_and_an_invalid_one_keeps_the_old() {
    let a = Backend::start("a");
    let b = Backend::start("b");
    let v1 = base(&format!(
        "upstreams:\n  a: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, upstream: a }}\n",
        a.addr
    ));
    let gw = TestGateway::start(&v1);
    let cl = client();
    assert_eq!(cl.get(gw.url("/new")).send().await.unwrap().status(), 200);
    assert_eq!(a.count(), 1);

    let v2 = base(&format!(
        "upstreams:\n  a: {{ backends: [\"{}\"] }}\n  b: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, upstream: a }}\n  - {{ name: new, path_prefix: /new, upstream: b }}\n",
        a.addr, b.addr
    ));
    gw.write_config(&v2);
    eventually(Duration::from_secs(5), "reload succeeded", || async {
        gw.metric(r#"portcullis_config_reloads_total{result="success"}"#)
            .await
            == 1.0
    })
    .await;
    assert_eq!(cl.get(gw.url("/new")).send().await.unwrap().status(), 200);
    assert_eq!(b.count(), 1, "the new route goes to b");

    // Broken: unknown upstream and a typo'd field. Refused; v2 keeps serving.
    let broken = v2
        .replace("upstream: b", "upstream: nope")
        .replace("path_prefix: /new", "path_prefx: /new");
    gw.write_config(&broken);
    eventually(Duration::from_secs(5), "reload refused", || async {
        gw.metric(r#"portcullis_config_reloads_total{result="failure"}"#)
            .await
            == 1.0
    })
    .await;
    assert_eq!(cl.get(gw.url("/new")).send().await.unwrap().status(), 200);
    assert_eq!(b.count(), 2, "the previous config still routes /new to b");
    assert!(
        gw.metric("portcullis_config_last_reload_success_timestamp_seconds")
            .await
            > 1.7e9
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_was_sent() {
    let be = Backend::start("be");
    let gw = TestGateway::start(&base(&format!(
        "upstreams:\n  u: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: r, hosts: [localhost], upstream: u }}\n",
        be.addr
    )));
    let cl = client();
    for _ in 0..7 {
        cl.get(gw.url("/"))
            .header("Host", "localhost")
            .send()
            .await
            .unwrap();
    }
    for _ in 0..3 {
        cl.post(gw.url("/"))
            .header("Host", "localhost")
            .body("x")
            .send()
            .await
            .unwrap();
    }
    for _ in 0..2 {
        cl.get(gw.url("/"))
            .header("Host", "other")
            .send()
            .await
            .unwrap();
    }
    gw.wait_metric(
        r#"portcullis_http_requests_total{method="GET",route="r",status_class="2xx"}"#,
        7.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_requests_total{method="POST",route="r",status_class="2xx"}"#,
        3.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_requests_total{method="GET",route="none",status_class="4xx"}"#,
        2.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_request_duration_seconds_count{route="r"}"#,
        10.0,
    )
    .await;
    let text = gw.metrics().await;
    assert_eq!(
        metric_value(&text, r#"portcullis_build_info{version="0.1.0"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&text, "portcullis_http_requests_in_flight"),
        Some(0.0)
    );
    // Health endpoints.
    assert_eq!(
        cl.get(gw.admin_url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        cl.get(gw.admin_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
