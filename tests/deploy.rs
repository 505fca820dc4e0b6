//! Deployment: the admin listener's bearer token and loopback default, the shipped Prometheus
//! alert rules, and a real Prometheus server scraping a running gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use portcullis::state::ConfigSource;

const TOKEN: &str = "admin-token-0123456789abcdef";

fn gateway_yaml(backend: &Backend) -> String {
    format!(
        "server: {{ threads: 1 }}\nlisteners:\n  - {{ name: main, address: 127.0.0.1:0 }}\nadmin: {{ address: 127.0.0.1:0, token_file: admin.token }}\naccess_log: {{ path: off }}\nreload: {{ poll_interval: 50ms }}\nupstreams:\n  app: {{ backends: [\"{}\"] }}\nroutes:\n  - {{ name: app, upstream: app }}\n",
        backend.addr
    )
}

fn start_with_token(backend: &Backend, token: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), format!("{token}\n")).unwrap();
    TestGateway::start_in(dir, &gateway_yaml(backend))
}

async fn admin_get(gw: &TestGateway, path: &str, auth: Option<&str>) -> reqwest::Response {
    let mut req = client().get(gw.admin_url(path));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    req.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_every_endpoint() {
    let backend = Backend::start("app");
    let gw = start_with_token(&backend, TOKEN);
    for path in ["/metrics", "/healthz", "/readyz", "/other"] {
        for auth in [
            None,
            Some("Bearer wrong-token-0123456789abcdef".to_string()),
            Some(format!("Basic {TOKEN}")),
            Some(format!("Bearer {TOKEN}x")),
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        ] {
            let r = admin_get(&gw, path, auth.as_deref()).await;
            assert_eq!(r.status(), 401, "{path} with {auth:?}");
            assert_eq!(
                r.headers()["www-authenticate"],
                "Bearer realm=\"portcullis-admin\""
            );
            assert_eq!(r.headers()["content-type"], "application/problem+json");
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["status"], 401);
        }
    }
    let good = format!("Bearer {TOKEN}");
    let r = admin_get(&gw, "/metrics", Some(&good)).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("portcullis_build_info"));
    // The scheme is case-insensitive (RFC 9110), the token is not.
    let r = admin_get(&gw, "/healthz", Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(r.status(), 200);
    let r = admin_get(
        &gw,
        "/healthz",
        Some(&format!("Bearer {}", TOKEN.to_uppercase())),
    )
    .await;
    assert_eq!(r.status(), 401);
    // The proxy listener is not affected by the admin token.
    let r = client().get(gw.url("/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_rotates_on_reload_and_a_bad_one_is_refused() {
    let backend = Backend::start("app");
    let gw = start_with_token(&backend, TOKEN);
    let new = "rotated-token-fedcba9876543210";
    write_atomically(&gw.path("admin.token"), new);
    eventually(Duration::from_secs(10), "the new token is accepted", || {
        let gw = &gw;
        async move {
            admin_get(gw, "/healthz", Some(&format!("Bearer {new}")))
                .await
                .status()
                == 200
        }
    })
    .await;
    assert_eq!(
        admin_get(&gw, "/healthz", Some(&format!("Bearer {TOKEN}")))
            .await
            .status(),
        401
    );
    // Too short: refused, the rotated token keeps working.
    let failures = r#"portcullis_config_reloads_total{result="failure"}"#;
    write_atomically(&gw.path("admin.token"), "short");
    eventually(
        Duration::from_secs(10),
        "the short token is refused",
        || {
            let gw = &gw;
            async move {
                let text = admin_get(gw, "/metrics", Some(&format!("Bearer {new}")))
                    .await
                    .text()
                    .await
                    .unwrap();
                metric_value(&text, failures).unwrap_or(0.0) >= 1.0
            }
        },
    )
    .await;
    assert_eq!(
        admin_get(&gw, "/healthz", Some(&format!("Bearer {new}")))
            .await
            .status(),
        200
    );
    assert_eq!(
        admin_get(&gw, "/healthz", Some("Bearer short"))
            .await
            .status(),
        401
    );
}

#[test]
fn admin_listens_on_loopback_unless_told_otherwise() {
    let yaml = "listeners:\n  - { name: main, address: 127.0.0.1:0 }\nadmin: {}\nupstreams:\n  app: { backends: [\"127.0.0.1:9\"] }\nroutes:\n  - { name: app, upstream: app }\n";
    let cfg = ConfigSource::Inline {
        name: "gateway.yaml".into(),
        text: yaml.into(),
    }
    .load(None)
    .unwrap();
    let admin = cfg.admin.unwrap();
    assert!(admin.ip().is_loopback(), "{admin}");
    assert_eq!(admin.port(), 9901);
    assert!(cfg.admin_token.is_none());
}

#[test]
fn shipped_alert_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(repo().join("deploy/alerts.yml"))
        .output()
        .expect("promtool is installed (.ci/run installs Debian's prometheus package)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts Prometheus with the shipped scrape config and alert rules, pointed at `admin`.
fn start_prometheus(admin: std::net::SocketAddr) -> Prometheus {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), TOKEN).unwrap();
    std::fs::copy(
        repo().join("deploy/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    let shipped = std::fs::read_to_string(repo().join("deploy/prometheus.yml")).unwrap();
    for needle in [
        "scrape_interval: 15s",
        "/etc/prometheus/portcullis-admin.token",
        "127.0.0.1:9901",
    ] {
        assert!(
            shipped.contains(needle),
            "deploy/prometheus.yml changed: {needle}"
        );
    }
    let conf = shipped
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace(
            "/etc/prometheus/portcullis-admin.token",
            &dir.path().join("admin.token").to_string_lossy(),
        )
        .replace("127.0.0.1:9901", &admin.to_string());
    let conf_path = dir.path().join("prometheus.yml");
    std::fs::write(&conf_path, conf).unwrap();
    let check = Command::new("promtool")
        .args(["check", "config"])
        .arg(&conf_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", conf_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus is installed (.ci/run installs Debian's prometheus package)");
    Prometheus {
        child,
        port,
        _dir: dir,
    }
}

async fn query(prom: &Prometheus, q: &str) -> Option<serde_json::Value> {
    let r = client()
        .get(format!("http://127.0.0.1:{}/api/v1/query", prom.port))
        .query(&[("query", q)])
        .send()
        .await
        .ok()?;
    let v: serde_json::Value = r.json().await.ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_gateway_with_the_shipped_config() {
    let backend = Backend::start("app");
    let gw = start_with_token(&backend, TOKEN);
    for _ in 0..3 {
        let r = client().get(gw.url("/hello")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let prom = start_prometheus(gw.running.admin.unwrap());
    eventually(
        Duration::from_secs(60),
        "Prometheus has scraped portcullis_http_requests_total",
        || {
            let prom = &prom;
            async move {
                let r = query(
                    prom,
                    r#"sum(portcullis_http_requests_total{job="portcullis",route="app",status_class="2xx"})"#,
                )
                .await;
                r.and_then(|r| r[0]["value"][1].as_str().map(str::to_string))
                    .is_some_and(|v| v.parse::<f64>().unwrap_or(0.0) >= 3.0)
            }
        },
    )
    .await;
    let up = query(&prom, r#"up{job="portcullis"}"#).await.unwrap();
    assert_eq!(up[0]["value"][1], "1", "{up}");
    // The alert rules were loaded and evaluate against the scraped series.
    let rules: serde_json::Value = client()
        .get(format!("http://127.0.0.1:{}/api/v1/rules", prom.port))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = rules["data"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(names.contains(&"PortcullisHighErrorRate"), "{names:?}");
    assert!(
        names.contains(&"PortcullisCertificateExpiresSoon"),
        "{names:?}"
    );
}
