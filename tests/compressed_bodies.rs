//! End-to-end: request bodies sent with a `Content-Encoding` are decoded for inspection, so
//! compressing an attack does not carry it past the WAF, while the backend still receives the
//! bytes as sent. Bodies the WAF cannot decode are inspected as sent, then refused with 415, or
//! passed on a route with `on_body_limit: pass`; both are counted and logged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;

use common::*;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).unwrap();
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_inspected_decoded_and_forwarded_as_sent() {
    let be = Backend::start("app");
    let gw = TestGateway::start(&format!(
        r#"{GATEWAY_HEAD}
upstreams:
  app: {{ backends: ["{}"] }}
routes:
  - name: app
    upstream: app
  - name: ingest
    path_prefix: /ingest
    upstream: app
    waf: {{ on_body_limit: pass }}
waf:
  rules: [builtin]
  body_limit: 4KiB
"#,
        be.addr
    ));
    let cl = client();
    let post = |path: &str, content_type: &str, encoding: &str, body: Vec<u8>| {
        cl.post(gw.url(path))
            .header("content-type", content_type)
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    const JSON: &str = "application/json";
    const FORM: &str = "application/x-www-form-urlencoded";
    let attack_json = br#"{"user":{"id":"1' union select password from users--"}}"#;

    // An attack, compressed: decoded, blocked, never at the backend. Stacked codings too.
    for (encoding, body) in [
        ("gzip", gzip(attack_json)),
        ("br", brotli(attack_json)),
        ("gzip, br", brotli(&gzip(attack_json))),
    ] {
        let r = post("/api", JSON, encoding, body).await.unwrap();
        assert_eq!(r.status(), 403, "{encoding}");
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let line = gw.log_line(&rid).await;
        assert_eq!(line["waf"]["decision"], "blocked", "{line}");
        let targets = line["waf"]["matches"][0]["targets"].to_string();
        assert!(targets.contains("json:user.id"), "{encoding}: {line}");
    }
    let form = gzip(b"comment=<script>alert(document.cookie)</script>");
    assert_eq!(
        post("/api", FORM, "gzip", form).await.unwrap().status(),
        403
    );
    // On the pass route too: a body the WAF can decode is inspected there like anywhere else.
    let r = post("/ingest", JSON, "gzip", gzip(attack_json)).await;
    assert_eq!(r.unwrap().status(), 403);
    assert_eq!(be.count(), 0);

    // Legitimate and compressed: forwarded byte for byte, still compressed.
    let benign = gzip(br#"{"user":{"name":"O'Brien","plan":"select a plan"}}"#);
    let r = post("/api", JSON, "gzip", benign.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = be.last();
    assert_eq!(seen.body, benign);
    assert_eq!(seen.header("content-encoding").as_deref(), Some("gzip"));

    // A coding the WAF cannot decode, or data that is not what it claims: 415, problem+json.
    for (encoding, body) in [
        ("snappy", b"\x1c\x00some framed bytes".to_vec()),
        ("gzip", b"this is not gzip data".to_vec()),
        ("gzip, gzip, gzip", gzip(&gzip(&gzip(b"a=1")))),
    ] {
        let r = post("/api", JSON, encoding, body).await.unwrap();
        assert_eq!(r.status(), 415, "{encoding}");
        assert_eq!(
            r.headers()["content-type"].to_str().unwrap(),
            "application/problem+json"
        );
        let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let problem: serde_json::Value = r.json().await.unwrap();
        assert_eq!(problem["request_id"], rid.as_str());
        assert_eq!(
            problem["type"],
            "tag:portcullis,2026:unsupported_content_encoding"
        );
        let line = gw.log_line(&rid).await;
        assert_eq!(line["refusal"], "unsupported_content_encoding", "{line}");
        assert_eq!(line["waf"]["body"], "undecodable_rejected", "{line}");
    }
    assert_eq!(be.count(), 1);

    // An attack that only claims to be compressed is inspected as sent: a 403 that names the rule.
    let r = post("/api", FORM, "gzip", b"cmd=cat /etc/passwd".to_vec()).await;
    let r = r.unwrap();
    assert_eq!(r.status(), 403);
    let line = gw
        .log_line(r.headers()["x-request-id"].to_str().unwrap())
        .await;
    assert_eq!(line["waf"]["decision"], "blocked", "{line}");
    assert_eq!(line["waf"]["body"], "undecodable_rejected", "{line}");
    assert!(
        line["waf"]["matches"].to_string().contains("body_args:cmd"),
        "{line}"
    );
    let r = post("/ingest", FORM, "snappy", b"cmd=cat /etc/passwd".to_vec()).await;
    assert_eq!(r.unwrap().status(), 403);
    assert_eq!(be.count(), 1);

    // A small body that expands past body_limit (a decompression bomb): 413, as if sent plain.
    let bomb = gzip(&vec![b'a'; 1 << 20]);
    assert!(bomb.len() < 4096);
    let r = post("/api", FORM, "gzip", bomb.clone()).await.unwrap();
    assert_eq!(r.status(), 413);

    // The pass route forwards what it cannot decode, uninspected and unchanged.
    let snappy = b"\x1c\x00framed telemetry".to_vec();
    let r = post("/ingest", JSON, "snappy", snappy.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().body, snappy);
    let r = post("/ingest", FORM, "gzip", bomb.clone()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.last().body, bomb);
    assert_eq!(be.count(), 3);

    gw.wait_body_limits(&[
        ("rejected", "content_encoding", "app", 4.0),
        ("rejected", "body_limit", "app", 1.0),
        ("passed", "content_encoding", "ingest", 2.0),
        ("passed", "body_limit", "ingest", 1.0),
    ])
    .await;
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="unsupported_content_encoding",route="app"}"#,
        3.0,
    )
    .await;
}
