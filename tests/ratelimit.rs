//! End-to-end rate limiting: exact 429 counts with the IETF fields, independent clients, shadow
//! mode, check-all-then-consume across policies, and limits shared by two gateway processes
//! through a real Redis, including Redis failing and coming back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;

fn config(backend: std::net::SocketAddr, rate_limits: &str) -> String {
    format!(
        r#"{GATEWAY_HEAD}
trusted_proxies: [127.0.0.1/32]
upstreams:
  app: {{ backends: ["{backend}"] }}
routes:
  - {{ name: strict, path_prefix: /strict, upstream: app }}
  - {{ name: app, upstream: app }}
rate_limits:
{rate_limits}"#
    )
}

async fn get(gw: &TestGateway, path: &str, client_ip: &str) -> reqwest::Response {
    client()
        .get(gw.url(path))
        .header("X-Forwarded-For", client_ip)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_limit_gets_exactly_the_expected_429s_with_headers() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  policies:\n    - { name: per-ip, rate: 5, per: 10s, key: [client_ip] }\n",
    ));
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = get(&gw, "/", "203.0.113.1").await;
        let status = r.status().as_u16();
        statuses.push(status);
        assert_eq!(r.headers()["ratelimit-policy"], "\"per-ip\";q=5;w=10");
        let rl = r.headers()["ratelimit"].to_str().unwrap().to_string();
        if status == 200 {
            assert!(
                rl.starts_with(&format!("\"per-ip\";r={};t=", 4 - i)),
                "{rl}"
            );
        } else {
            assert_eq!(status, 429);
            // The next request is admitted one emission interval (10s / 5) after the last one.
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=2).contains(&retry), "Retry-After {retry}");
            assert!(rl.starts_with("\"per-ip\";r=0;t="), "{rl}");
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let p: serde_json::Value = r.json().await.unwrap();
            assert_eq!(p["status"], 429);
        }
    }
    assert_eq!(statuses, vec![200, 200, 200, 200, 200, 429, 429, 429]);
    assert_eq!(be.count(), 5);
    gw.wait_metric(
        r#"portcullis_ratelimit_limited_total{policy="per-ip"}"#,
        3.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="rate_limited",route="app"}"#,
        3.0,
    )
    .await;
    gw.wait_metric(r#"portcullis_ratelimit_keys{policy="per-ip"}"#, 1.0)
        .await;

    // Another client is independent.
    assert_eq!(get(&gw, "/", "203.0.113.2").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_by_one_policy_does_not_use_up_another() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  policies:\n    - { name: strict-route, rate: 2, per: 60s, key: [client_ip], scope: { routes: [strict] } }\n    - { name: per-ip, rate: 4, per: 60s, key: [client_ip] }\n",
    ));
    let mut s = Vec::new();
    for _ in 0..5 {
        s.push(get(&gw, "/strict", "198.51.100.9").await.status().as_u16());
    }
    assert_eq!(s, vec![200, 200, 429, 429, 429]);
    // Three refusals by the strict policy took nothing from per-ip: two requests remain there.
    let mut s = Vec::new();
    for _ in 0..3 {
        s.push(get(&gw, "/other", "198.51.100.9").await.status().as_u16());
    }
    assert_eq!(s, vec![200, 200, 429]);
}

/// A limit scoped to a path prefix counts the spellings of that path some backend reads as it:
/// segment parameters (`/login;x`, servlet containers), escaped unreserved characters
/// (`/%6Cogin`, any server), other case (`/LOGIN`, Express, ASP.NET Core, IIS) and escaped
/// slashes (`/x%2F..%2Flogin`, WSGI servers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_scoped_limit_counts_every_spelling_of_the_path() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  policies:\n    - { name: login, rate: 2, per: 60s, key: [client_ip], scope: { path_prefixes: [/login] } }\n",
    ));
    let send = |target: &str| {
        let req = format!(
            "POST {target} HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.100.20\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let resp = raw_request(gw.addr(), req.as_bytes(), Duration::from_secs(5));
        resp.split(' ').nth(1).unwrap_or("").to_string()
    };
    let statuses: Vec<String> = [
        "/login",
        "/LOGIN",
        "/login;jsessionid=A1",
        "/%6Cogin",
        "/login;x/",
        "/%6c%6Fgin",
        "/login.json",
        "/Login",
        "/x%2F..%2Flogin",
        "/x\\..\\login",
    ]
    .iter()
    .map(|t| send(t))
    .collect();
    assert_eq!(
        statuses,
        ["200", "200", "429", "429", "429", "429", "429", "429", "429", "429"]
    );
    // Other paths are outside the scope.
    assert_eq!(send("/logout"), "200");
}

/// A limit scoped to a method also counts requests sent with another method that name it as
/// an override (`X-HTTP-Method-Override`, `_method` in the query), which Express, Rails,
/// Laravel and Symfony route as the method named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_scoped_limit_counts_requests_that_name_the_method_as_an_override() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  policies:\n    - { name: deletes, rate: 2, per: 60s, key: [client_ip], scope: { methods: [DELETE] } }\n",
    ));
    let send = |method: &str, target: &str, header: &str| {
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.100.21\r\n{header}Content-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let resp = raw_request(gw.addr(), req.as_bytes(), Duration::from_secs(5));
        resp.split(' ').nth(1).unwrap_or("").to_string()
    };
    let statuses = [
        send("DELETE", "/items/1", ""),
        send("POST", "/items/1", "X-HTTP-Method-Override: DELETE\r\n"),
        send("POST", "/items/1?_method=delete", ""),
        send("POST", "/items/1", "X-Method-Override: delete\r\n"),
        send("POST", "/items/1", "X-HTTP-Method: DELETE\r\n"),
    ];
    assert_eq!(statuses, ["200", "200", "429", "429", "429"]);
    // Requests that name no method of the scope are not counted, nor overrides on a GET,
    // which frameworks honour only on a POST.
    assert_eq!(send("GET", "/items/1", "X-HTTP-Method: DELETE\r\n"), "200");
    assert_eq!(send("POST", "/items/1", ""), "200");
    assert_eq!(send("POST", "/items/1?_method=PUT", ""), "200");
}

/// A `_method` in a body the WAF read counts too, once: a request that names the method in a
/// header and again in its body is counted one time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_scoped_limit_counts_a_method_named_in_the_body_once() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  policies:\n    - { name: deletes, rate: 2, per: 60s, key: [client_ip], scope: { methods: [DELETE] } }\nwaf: { rules: [builtin] }\n",
    ));
    let send = |headers: &str, body: &str| {
        let req = format!(
            "POST /items/1 HTTP/1.1\r\nHost: app\r\nX-Forwarded-For: 198.51.100.22\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let resp = raw_request(gw.addr(), req.as_bytes(), Duration::from_secs(5));
        resp.split(' ').nth(1).unwrap_or("").to_string()
    };
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    // Not counted: no method of the scope.
    assert_eq!(send(form, "_method=PUT&id=1"), "200");
    assert_eq!(send(form, "_method=PUT&id=1"), "200");
    assert_eq!(send(form, "_method=PUT&id=1"), "200");
    let statuses = [
        send(form, "_method=DELETE&id=1"),
        send(
            &format!("{form}X-HTTP-Method-Override: DELETE\r\n"),
            "_method=delete&id=1",
        ),
        send(
            "Content-Type: multipart/form-data; boundary=XB\r\n",
            "--XB\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\nDELETE\r\n--XB--\r\n",
        ),
    ];
    assert_eq!(statuses, ["200", "200", "429"]);
    assert_eq!(be.count(), 5, "the refused request reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_mode_counts_but_never_refuses() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  policies:\n    - { name: trial, rate: 1, per: 60s, key: [client_ip], mode: shadow }\n",
    ));
    for _ in 0..5 {
        let r = get(&gw, "/", "192.0.2.50").await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("ratelimit").is_none(),
            "shadow policies are not advertised"
        );
    }
    assert_eq!(be.count(), 5);
    gw.wait_metric(
        r#"portcullis_ratelimit_shadow_limited_total{policy="trial"}"#,
        4.0,
    )
    .await;
    assert_eq!(
        gw.metric(r#"portcullis_ratelimit_limited_total{policy="trial"}"#)
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_keys_and_legacy_headers() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(
        be.addr,
        "  legacy_headers: true\n  policies:\n    - { name: tenant, rate: 2, per: 60s, key: [\"header:x-tenant\"] }\n",
    ));
    let cl = client();
    let send = |tenant: Option<&'static str>| {
        let mut r = cl.get(gw.url("/"));
        if let Some(t) = tenant {
            r = r.header("X-Tenant", t);
        }
        r.send()
    };
    let r = send(Some("acme")).await.unwrap();
    assert_eq!(r.headers()["x-ratelimit-limit"], "2");
    assert_eq!(r.headers()["x-ratelimit-remaining"], "1");
    assert_eq!(send(Some("acme")).await.unwrap().status(), 200);
    assert_eq!(send(Some("acme")).await.unwrap().status(), 429);
    assert_eq!(send(Some("globex")).await.unwrap().status(), 200);
    // Without the header the policy does not apply.
    for _ in 0..3 {
        assert_eq!(send(None).await.unwrap().status(), 200);
    }
}

fn redis_config(backend: std::net::SocketAddr, redis: &str, on_error: &str) -> String {
    format!(
        r#"server: {{ threads: 1 }}
listeners:
  - {{ name: main, address: 127.0.0.1:0 }}
admin: {{ address: 127.0.0.1:0 }}
access_log: {{ path: off }}
reload: {{ watch: false }}
upstreams:
  app: {{ backends: ["{backend}"] }}
routes:
  - {{ name: app, upstream: app }}
rate_limits:
  redis: {{ url: "{redis}", timeout: 200ms, on_redis_error: {on_error} }}
  policies:
    - {{ name: fleet, rate: 20, per: 60s, key: [route] }}
"#
    )
}

fn spawn_gateway(dir: &tempfile::TempDir, name: &str, yaml: &str) -> Process {
    let cfg = dir.path().join(name);
    std::fs::write(&cfg, yaml).unwrap();
    Process::spawn(
        &["run", "--config", cfg.to_str().unwrap()],
        &["main", "admin"],
    )
}

/// Two gateway processes sharing `redis`: one failing open (`allow`), one failing closed (`deny`).
fn open_and_closed(
    dir: &tempfile::TempDir,
    backend: &Backend,
    redis: &RedisServer,
) -> (Process, Process) {
    let open = spawn_gateway(
        dir,
        "open.yaml",
        &redis_config(backend.addr, &redis.url(), "allow"),
    );
    let closed = spawn_gateway(
        dir,
        "closed.yaml",
        &redis_config(backend.addr, &redis.url(), "deny"),
    );
    (open, closed)
}

/// Requests admitted because Redis could not answer.
async fn allowed_on_error(p: &Process) -> f64 {
    metric_value(
        &p.metrics().await,
        r#"portcullis_ratelimit_redis_errors_total{action="allowed"}"#,
    )
    .unwrap_or(0.0)
}

async fn status_of(p: &Process) -> u16 {
    client()
        .get(format!("http://{}/", p.addr("main")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_share_one_limit_through_redis() {
    let redis = RedisServer::start();
    let be = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let yaml = redis_config(be.addr, &redis.url(), "allow");
    let a = spawn_gateway(&dir, "a.yaml", &yaml);
    let b = spawn_gateway(&dir, "b.yaml", &yaml);
    let mut admitted = 0;
    for i in 0..60 {
        let p = if i % 2 == 0 { &a } else { &b };
        let s = status_of(p).await;
        assert!(s == 200 || s == 429, "unexpected status {s}");
        admitted += usize::from(s == 200);
    }
    // The configured total for the fleet is 20 (±10%), not 20 per process.
    assert!((18..=22).contains(&admitted), "admitted {admitted}");
    assert_eq!(be.count(), admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failing_and_returning_follows_on_redis_error() {
    let mut redis = RedisServer::start();
    let be = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let (open, closed) = open_and_closed(&dir, &be, &redis);
    // Use up the shared budget.
    for _ in 0..20 {
        assert_eq!(status_of(&open).await, 200);
    }
    assert_eq!(status_of(&open).await, 429);
    assert_eq!(status_of(&closed).await, 429);

    redis.stop();
    for _ in 0..5 {
        assert_eq!(status_of(&open).await, 200, "fail open while Redis is down");
        assert_eq!(
            status_of(&closed).await,
            429,
            "fail closed while Redis is down (no 5xx)"
        );
    }
    let text = open.metrics().await;
    assert!(
        metric_value(
            &text,
            r#"portcullis_ratelimit_redis_errors_total{action="allowed"}"#
        )
        .unwrap_or(0.0)
            >= 5.0,
        "{text}"
    );

    redis.restart();
    // Both gateways reconnect by themselves: fail-closed admits again, fail-open stops counting errors.
    eventually(
        Duration::from_secs(10),
        "fail-closed gateway uses Redis again",
        || async { status_of(&closed).await == 200 },
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "fail-open gateway uses Redis again",
        || async {
            let before = allowed_on_error(&open).await;
            status_of(&open).await;
            allowed_on_error(&open).await == before
        },
    )
    .await;
    // Start from a fresh shared budget of 20 and check it holds across both again.
    redis.command("FLUSHALL");
    let mut admitted = 0;
    for i in 0..40 {
        let p = if i % 2 == 0 { &open } else { &closed };
        admitted += usize::from(status_of(p).await == 200);
    }
    assert!(
        (18..=22).contains(&admitted),
        "admitted {admitted} after Redis came back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_a_timeout_that_follows_on_redis_error() {
    let redis = RedisServer::start();
    let be = Backend::start("app");
    let dir = tempfile::tempdir().unwrap();
    let (open, closed) = open_and_closed(&dir, &be, &redis);
    assert_eq!(status_of(&open).await, 200);
    assert_eq!(status_of(&closed).await, 200);

    // Redis stops answering but keeps its connections: each check waits out the 200 ms
    // `timeout`, then the policy decides. Nothing waits on Redis longer, nothing is a 5xx.
    redis.pause();
    let started = Instant::now();
    for _ in 0..5 {
        assert_eq!(status_of(&open).await, 200, "fail open while Redis stalls");
        assert_eq!(
            status_of(&closed).await,
            429,
            "fail closed while Redis stalls"
        );
    }
    let stalled_for = started.elapsed();
    redis.resume();
    assert!(
        stalled_for < Duration::from_secs(6),
        "10 requests against a stalled Redis took {stalled_for:?}"
    );
    for (p, action) in [(&open, "allowed"), (&closed, "denied")] {
        let text = p.metrics().await;
        let n = metric_value(
            &text,
            &format!(r#"portcullis_ratelimit_redis_errors_total{{action="{action}"}}"#),
        )
        .unwrap_or(0.0);
        assert!(n >= 5.0, "{action}: {n}\n{text}");
    }
    // Once Redis answers again, so does the shared limit.
    eventually(
        Duration::from_secs(10),
        "fail-closed gateway uses Redis again",
        || async { status_of(&closed).await == 200 },
    )
    .await;
    assert!(be.count() >= 7);
}
