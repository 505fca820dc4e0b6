//! End-to-end API keys: every key source, each refusal reason, what the backend sees, revoking
//! by editing the keys file, tiers feeding rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use portcullis::auth::keyfile::digest_text;

const GOOD: &str = "pc_test_good-key-0001";
const SCOPED: &str = "pc_test_scoped-key-0002";
const OLD: &str = "pc_test_expired-key-0003";
const OFF: &str = "pc_test_disabled-key-0004";
const GOLD: &str = "pc_test_gold-key-0005";
const WRITER: &str = "pc_test_writer-key-0006";

fn keys_yaml(extra: &str) -> String {
    format!(
        r#"keys:
  - {{ id: good, digest: "{}" }}
  - id: scoped
    digest: "{}"
    scopes: [{{ routes: [api], path_prefixes: [/api/orders], methods: [GET] }}]
  - {{ id: old, digest: "{}", expires_at: "2020-01-01T00:00:00Z" }}
  - {{ id: off, digest: "{}", disabled: true }}
  - {{ id: gold, digest: "{}", tier: gold }}
  - id: writer
    digest: "{}"
    scopes: [{{ routes: [api], methods: [GET, POST] }}]
{extra}"#,
        digest_text(GOOD),
        digest_text(SCOPED),
        digest_text(OLD),
        digest_text(OFF),
        digest_text(GOLD),
        digest_text(WRITER)
    )
}

fn gateway(be: &Backend) -> TestGateway {
    gateway_with(
        be,
        r#"rate_limits:
  policies:
    - name: per-key
      rate: 2
      per: 60s
      key: [api_key]
      tiers: { gold: { rate: 5 } }
"#,
    )
}

fn gateway_with(be: &Backend, extra: &str) -> TestGateway {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.yaml"), keys_yaml("")).unwrap();
    TestGateway::start_in(
        dir,
        &format!(
            r#"server: {{ threads: 1 }}
listeners:
  - {{ name: main, address: 127.0.0.1:0 }}
admin: {{ address: 127.0.0.1:0 }}
access_log: {{ path: access.log }}
reload: {{ poll_interval: 50ms }}
upstreams:
  app: {{ backends: ["{}"] }}
routes:
  - {{ name: api, path_prefix: /api, upstream: app, auth: api_key }}
  - {{ name: docs, path_prefix: /api/docs, upstream: app }}
  - {{ name: public, upstream: app }}
api_keys:
  file: keys.yaml
  sources: ["header:X-API-Key", bearer, "query:api_key"]
{extra}"#,
            be.addr
        ),
    )
}

async fn call(gw: &TestGateway, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut r = client().get(gw.url(path));
    if let Some(k) = key {
        r = r.header("X-API-Key", k);
    }
    r.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_checked_and_each_failure_has_its_status() {
    let be = Backend::start("app");
    let gw = gateway(&be);

    let r = call(&gw, "/api/orders", None).await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    assert_eq!(
        call(&gw, "/api/orders", Some("pc_test_wrong"))
            .await
            .status(),
        401
    );
    assert_eq!(call(&gw, "/api/orders", Some(OLD)).await.status(), 403);
    assert_eq!(call(&gw, "/api/orders", Some(OFF)).await.status(), 403);
    assert_eq!(call(&gw, "/api/orders/7", Some(SCOPED)).await.status(), 200);
    assert_eq!(
        call(&gw, "/api/users", Some(SCOPED)).await.status(),
        403,
        "path out of scope"
    );
    let r = client()
        .post(gw.url("/api/orders"))
        .header("X-API-Key", SCOPED)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "method out of scope");
    assert_eq!(
        call(&gw, "/public", None).await.status(),
        200,
        "routes without auth need no key"
    );
    assert_eq!(be.count(), 2, "refused requests never reach the backend");

    for (reason, n) in [
        ("missing", 1.0),
        ("unknown", 1.0),
        ("expired", 1.0),
        ("disabled", 1.0),
        ("scope", 2.0),
    ] {
        gw.wait_metric(
            &format!("portcullis_auth_failures_total{{reason=\"{reason}\"}}"),
            n,
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_works_and_the_backend_sees_the_id_not_the_key() {
    let be = Backend::start("app");
    let gw = gateway(&be);
    let cl = client();

    let r = cl
        .get(gw.url("/api/x"))
        .header("X-API-Key", GOLD)
        .header("X-Portcullis-Key-Id", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let seen = be.last();
    assert_eq!(
        seen.header("x-portcullis-key-id").as_deref(),
        Some("gold"),
        "a client cannot choose its key id"
    );
    assert!(seen.header("x-api-key").is_none(), "the key is stripped");

    let r = cl
        .get(gw.url("/api/x"))
        .bearer_auth(GOLD)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(be.last().header("authorization").is_none());

    let r = cl
        .get(gw.url(&format!("/api/x?a=1&api_key={GOLD}&b=2")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().target, "/api/x?a=1&b=2");

    let line = gw.log_line(&rid).await;
    assert_eq!(line["key_id"], "gold");
    let log = std::fs::read_to_string(gw.path("access.log")).unwrap();
    assert!(
        !log.contains(GOLD),
        "the access log must never contain a key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_by_editing_the_file_applies_without_restart_and_bad_files_are_refused() {
    let be = Backend::start("app");
    let gw = gateway(&be);
    assert_eq!(call(&gw, "/api/x", Some(GOOD)).await.status(), 200);

    // A file with a key in clear is refused; the old keys keep working.
    let k = portcullis::auth::secret::generate();
    write_atomically(
        &gw.path("keys.yaml"),
        &keys_yaml(&format!("  - {{ id: oops, digest: \"{k}\" }}\n")),
    );
    gw.wait_metric(r#"portcullis_config_reloads_total{result="failure"}"#, 1.0)
        .await;
    assert_eq!(call(&gw, "/api/x", Some(GOOD)).await.status(), 200);

    // Revoke "good" and add a new key.
    let revoked = keys_yaml("  - { id: newcomer, digest: \"NEW\" }\n")
        .replace(
            &format!("{{ id: good, digest: \"{}\" }}", digest_text(GOOD)),
            &format!(
                "{{ id: good, digest: \"{}\", disabled: true }}",
                digest_text(GOOD)
            ),
        )
        .replace(
            "\"NEW\"",
            &format!("\"{}\"", digest_text("pc_test_new-0006")),
        );
    write_atomically(&gw.path("keys.yaml"), &revoked);
    gw.wait_metric(r#"portcullis_config_reloads_total{result="success"}"#, 1.0)
        .await;
    assert_eq!(call(&gw, "/api/x", Some(GOOD)).await.status(), 403);
    assert_eq!(
        call(&gw, "/api/x", Some("pc_test_new-0006")).await.status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_tier_selects_its_rate_limit() {
    let be = Backend::start("app");
    let gw = gateway(&be);
    let mut plain = Vec::new();
    let mut gold = Vec::new();
    for _ in 0..6 {
        plain.push(call(&gw, "/api/x", Some(GOOD)).await.status().as_u16());
        gold.push(call(&gw, "/api/x", Some(GOLD)).await.status().as_u16());
    }
    assert_eq!(plain, vec![200, 200, 429, 429, 429, 429]);
    assert_eq!(gold, vec![200, 200, 200, 200, 200, 429]);
    let r = call(&gw, "/api/x", Some(GOLD)).await;
    assert_eq!(r.headers()["ratelimit-policy"], "\"per-key\";q=5;w=60");
}

/// Servlet containers drop `;` parameters from path segments and read `..;x` as `..`, any
/// server reads `%61` as `a`, Express and IIS route without regard to case, WSGI servers
/// route on the path with `%2F` decoded, IIS reads `\` as `/`: the route and the key's scope are
/// chosen on the path as any of these backends will read it, so none of these reaches the keyed
/// route without a key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameters_and_escapes_do_not_lead_around_a_keyed_route() {
    let be = Backend::start("app");
    let gw = gateway(&be);
    let send = |target: &str, key: Option<&str>| {
        let key = key
            .map(|k| format!("X-API-Key: {k}\r\n"))
            .unwrap_or_default();
        let req = format!("GET {target} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n{key}\r\n");
        let resp = raw_request(gw.addr(), req.as_bytes(), std::time::Duration::from_secs(5));
        resp.split(' ').nth(1).unwrap_or("").to_string()
    };
    for target in [
        "/api;x/orders",
        "/api;/orders",
        "/%61pi/orders",
        "/%61%70%69/orders",
        "/public/..;x/api/orders",
        "/public/..;jsessionid=1/api/orders",
        "/public/%2e%2e;x/api/orders",
        "/.;/api/orders",
        "/;x/api/orders",
        // Routed as Express, ASP.NET Core and IIS route: without regard to case.
        "/API/orders",
        "/Api/orders",
        // Routed as WSGI servers route, on the decoded path, and as IIS reads `\`.
        "/api%2Forders",
        "/api%2forders",
        "/public/..%2Fapi/orders",
        "/public%2F..%2Fapi%2Forders",
        "/api%5Corders",
        "/public\\..\\api\\orders",
        // Rails' optional format (`(.:format)`) and Spring's suffix patterns.
        "/api.json",
        "/API.xml",
        "/api.json/",
        // Not a way out of a keyed route into an open one with a longer prefix.
        "/api/docs.json",
    ] {
        assert_eq!(send(target, None), "401", "{target} without a key");
    }
    assert_eq!(be.count(), 0, "a request without a key reached the backend");

    // The scope of a key is judged on the same path.
    assert_eq!(send("/api;x/users", Some(SCOPED)), "403");
    assert_eq!(send("/%61pi/users", Some(SCOPED)), "403");
    assert_eq!(send("/API%2Fusers", Some(SCOPED)), "403");
    assert_eq!(send("/api/orders;x", Some(SCOPED)), "200");
    assert_eq!(send("/Api/Orders", Some(SCOPED)), "200");
    // Parameters of ordinary segments are the application's (session ids in URLs) and are
    // forwarded; dot segments and escaped unreserved characters are resolved first.
    assert_eq!(send("/api;jsessionid=A1/orders", Some(GOOD)), "200");
    assert_eq!(send("/public/..;x/api/%6Frders", Some(GOOD)), "200");
    let targets: Vec<String> = be.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        targets,
        [
            "/api/orders;x",
            "/Api/Orders",
            "/api;jsessionid=A1/orders",
            "/api/orders"
        ]
    );
    // What the backend receives keeps its case and its escaped slashes.
    assert_eq!(send("/API%2Forders", Some(GOLD)), "200");
    assert_eq!(be.seen().last().unwrap().target, "/API%2Forders");
    // The open route with the longer prefix serves its own paths without a key.
    assert_eq!(send("/api/docs", None), "200");
    assert_eq!(send("/api/docs/intro.html", None), "200");
}

/// Express, Rails, Laravel, Symfony, Spring and ASP.NET Core let a request name another method
/// (a header, or `_method` in the query or the body) and route it as that method: a key's
/// method scopes must allow every method a request names, the body's included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_override_must_be_in_the_keys_scope_too() {
    // Without the WAF the body is read for its `_method`; with it, the WAF's reading is used.
    for waf in ["", "waf: { rules: [builtin], paranoia: 1, mode: block }\n"] {
        let be = Backend::start("app");
        let gw = gateway_with(&be, waf);
        let send = |method: &str, target: &str, key: &str, headers: &str, body: &str| {
            let req = format!(
                "{method} {target} HTTP/1.1\r\nHost: app\r\nConnection: close\r\nX-API-Key: {key}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let resp = raw_request(gw.addr(), req.as_bytes(), std::time::Duration::from_secs(5));
            resp.split(' ').nth(1).unwrap_or("").to_string()
        };
        let form = "Content-Type: application/x-www-form-urlencoded\r\n";
        let multipart = "Content-Type: multipart/form-data; boundary=XB\r\n";
        let json = "Content-Type: application/json\r\n";
        let part = |name: &str, value: &str| {
            format!(
                "--XB\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n--XB--\r\n"
            )
        };

        // A key for GET and POST: a POST standing for DELETE, PUT or PATCH is out of scope,
        // wherever it names the method.
        for (target, headers) in [
            ("/api/orders/7", "X-HTTP-Method-Override: DELETE\r\n"),
            ("/api/orders/7", "X-HTTP-Method: delete\r\n"),
            ("/api/orders/7", "X-Method-Override: GET, PUT\r\n"),
            ("/api/orders/7?_method=DELETE", ""),
            ("/api/orders/7?%5Fmethod=patch", ""),
            // PHP reads `.` in a name as `_`.
            ("/api/orders/7?.method=DELETE", ""),
        ] {
            assert_eq!(
                send("POST", target, WRITER, headers, ""),
                "403",
                "{target} {headers}"
            );
        }
        for (headers, body) in [
            (
                "X-HTTP-Method-Override: DELETE\r\n".to_string(),
                String::new(),
            ),
            (form.to_string(), "id=7&_method=DELETE".to_string()),
            (form.to_string(), "id=7&%5F%6Dethod=put".to_string()),
            (multipart.to_string(), part("_method", "PATCH")),
            // As Rack reads bodies: without a content type, multipart/related, bracketed names.
            (String::new(), "_method=DELETE&note=a b".to_string()),
            (
                "Content-Type: multipart/related; boundary=XB\r\n".to_string(),
                part("_method", "delete"),
            ),
            (form.to_string(), "%5B_method%5D=DELETE".to_string()),
            (
                "Content-Type: \r\n".to_string(),
                "_method=DELETE".to_string(),
            ),
            (
                json.to_string(),
                r#"{"_method":"DELETE","id":7}"#.to_string(),
            ),
        ] {
            assert_eq!(
                send("POST", "/api/orders/7", WRITER, &headers, &body),
                "403",
                "{headers}{body}"
            );
        }
        assert_eq!(be.count(), 0, "a request out of scope reached the backend");

        // Overrides naming methods in scope, and data that merely mentions one, pass; so do
        // overrides on a GET, which frameworks honour only on a POST. A key without scopes may
        // do anything, overrides included.
        let note = part("note", "_method=DELETE");
        for (method, target, key, headers, body) in [
            (
                "GET",
                "/api/orders/7?_method=DELETE",
                SCOPED,
                "X-HTTP-Method-Override: DELETE\r\n",
                "",
            ),
            (
                "GET",
                "/api/orders/7",
                SCOPED,
                "X-HTTP-Method-Override: get\r\n",
                "",
            ),
            ("POST", "/api/orders", WRITER, form, "_method=post&qty=2"),
            ("POST", "/api/orders", WRITER, multipart, &note),
            (
                "POST",
                "/api/orders",
                WRITER,
                json,
                r#"{"order":{"_method":"DELETE"}}"#,
            ),
            ("POST", "/api/orders/7", GOOD, form, "_method=DELETE"),
        ] {
            assert_eq!(
                send(method, target, key, headers, body),
                "200",
                "{method} {target} {headers}{body}"
            );
        }
        assert_eq!(be.count(), 6);
        let seen = be.seen();
        assert_eq!(
            seen[2].body, b"_method=post&qty=2",
            "the body reaches the backend unchanged"
        );
        gw.wait_metric("portcullis_auth_failures_total{reason=\"scope\"}", 15.0)
            .await;
    }
}
