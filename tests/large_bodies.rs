//! Bodies larger than the 64 KiB Pingora keeps for a replay: read whole by the WAF, inspected,
//! and sent to the backend byte for byte (also on a retry to another backend); a body of unknown
//! length that cannot be held is refused with 411 before anything reaches the backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

fn config(backends: &str, waf: &str) -> String {
    format!(
        r#"{GATEWAY_HEAD}
upstreams:
  app: {{ backends: [{backends}] }}
routes:
  - {{ name: app, upstream: app }}
waf:
  rules: [builtin]
{waf}
"#
    )
}

/// A JSON document of about `size` bytes: an array of ordinary records with a long text each
/// (few enough values to stay under `limits.max_body_args`).
fn json_records(size: usize, last: &str) -> String {
    let note = "Delivered to the front desk and signed for by the night porter, who asked us to \
                call ahead next time; the parcel was dry, the seal intact, and the customer \
                confirmed by phone the following morning that all twelve items were there. "
        .repeat(3);
    let mut out = String::from("{\"items\":[");
    let mut i = 0;
    while out.len() < size {
        out.push_str(&format!(
            "{{\"id\":{i},\"name\":\"Customer {i}\",\"email\":\"user{i}@example.com\",\"note\":\"{note}\"}},"
        ));
        i += 1;
    }
    out.push_str(&format!("{{\"id\":{i},\"note\":\"{last}\"}}]}}"));
    out
}

/// `body` sent in pieces of `piece` bytes without a length (chunked on HTTP/1.1).
fn streamed(body: &[u8], piece: usize) -> reqwest::Body {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
        .chunks(piece)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_up_to_the_default_limit_are_inspected_whole_and_forwarded_intact() {
    let be = Backend::start("app");
    // The default body_limit (1 MiB) and on_body_limit (reject).
    let gw = TestGateway::start(&config(&format!("\"{}\"", be.addr), ""));
    let cl = client();
    let post = |content_type: &str, body: Vec<u8>| {
        cl.post(gw.url("/api/import"))
            .header("Content-Type", content_type)
            .body(body)
    };
    // A JSON body sent without a length, in pieces of `piece` bytes.
    let post_streamed = |body: &str, piece: usize| {
        cl.post(gw.url("/api/import"))
            .header("Content-Type", "application/json")
            .body(streamed(body.as_bytes(), piece))
            .send()
    };

    let json = json_records(600_000, "All good.");
    let r = post("application/json", json.clone().into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.count(), 1);
    assert!(
        be.last().body == json.as_bytes(),
        "the backend got {} bytes of {}",
        be.last().body.len(),
        json.len()
    );

    let mut upload = b"--XB\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHoliday\r\n--XB\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"beach.png\"\r\nContent-Type: image/png\r\n\r\n".to_vec();
    upload.extend(noise(3, 900_000));
    upload.extend_from_slice(b"\r\n--XB--\r\n");
    let r = post("multipart/form-data; boundary=XB", upload.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.count(), 2);
    assert!(
        be.last().body == upload,
        "the upload was changed on the way"
    );

    // An attack at the very end of a large body is seen, and nothing reaches the backend.
    let evil = json_records(600_000, "1' union select password from users--");
    let r = post("application/json", evil.into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(be.count(), 2, "a blocked body reached the backend");

    // Past the limit, refused before it is read.
    let r = post("application/octet-stream", noise(4, 1_100_000))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(be.count(), 2);

    // Without a length: a body that fits in 64 KiB is held and inspected ...
    let small = json_records(40_000, "Fine.");
    let r = post_streamed(&small, 4_096).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.count(), 3);
    assert!(be.last().body == small.as_bytes());
    let small_evil = json_records(40_000, "<script>alert(document.cookie)</script>");
    let r = post_streamed(&small_evil, 4_096).await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(be.count(), 3);

    // ... a longer one cannot be held back from the backend, and is refused with 411.
    let r = post_streamed(&json, 16_384).await.unwrap();
    assert_eq!(r.status(), 411);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let p: serde_json::Value = r.json().await.unwrap();
    assert_eq!(p["request_id"], rid.as_str());
    assert!(p["detail"].as_str().unwrap().contains("Content-Length"));
    assert_eq!(be.count(), 3, "a refused body reached the backend");
    gw.wait_metric(
        r#"portcullis_waf_body_limit_total{action="rejected",limit="unknown_length",route="app"}"#,
        1.0,
    )
    .await;
    gw.wait_metric(
        r#"portcullis_http_refusals_total{reason="length_required",route="app"}"#,
        1.0,
    )
    .await;
    let line = gw.log_line(&rid).await;
    assert_eq!(line["status"], 411);
    assert_eq!(line["waf"]["body"], "unknown_length_rejected", "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_inspected_body_is_sent_whole_again_on_a_retry_to_the_next_backend() {
    let be = Backend::start("alive");
    let dead = dead_addr();
    let gw = TestGateway::start(&config(&format!("\"{dead}\", \"{}\"", be.addr), ""));
    let cl = client();
    for i in 0..4 {
        let body = json_records(200_000 + i * 1_000, "Retry me.");
        let r = cl
            .put(gw.url("/api/doc"))
            .header("Content-Type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(be.last().body == body.as_bytes(), "request {i} arrived cut");
    }
    assert_eq!(be.count(), 4);
    // Round robin sent some of them to the dead backend first. Counted whatever the kind of
    // failure: a port closed a moment ago is not always refused (a connection of the machine's
    // own can be given it as its local port).
    let metrics = gw.metrics().await;
    let retried = metric_sum(
        &metrics,
        "portcullis_upstream_errors_total",
        r#"upstream="app""#,
    );
    assert!(retried >= 1.0, "no request was retried:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_limit_above_the_most_is_refused_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(&path, config("\"127.0.0.1:9\"", "  body_limit: 17MiB\n")).unwrap();
    let out = std::process::Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("waf.body_limit"), "{text}");
    assert!(text.contains("16MiB"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_large_body_is_inspected_and_forwarded_intact() {
    let pki = Pki::new("Portcullis Test CA");
    let dir = tempfile::tempdir().unwrap();
    let pem = pki.server(&["a.test"], -1, 90);
    std::fs::write(dir.path().join("a.pem"), &pem.cert).unwrap();
    std::fs::write(dir.path().join("a.key"), &pem.key).unwrap();
    let be = Backend::start("app");
    let yaml = config(&format!("\"{}\"", be.addr), "").replace(
        "{ name: main, address: 127.0.0.1:0 }",
        "{ name: main, address: 127.0.0.1:0, tls: { certificates: [{ cert: a.pem, key: a.key }] } }",
    );
    let gw = TestGateway::start_in(dir, &yaml);
    let cl = https_client(&pki.ca_pem, &["a.test"], gw.addr(), None);
    let url = format!("https://a.test:{}/api/import", gw.addr().port());

    let json = json_records(300_000, "All good.");
    let r = cl
        .post(&url)
        .header("Content-Type", "application/json")
        .body(json.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(
        be.last().body == json.as_bytes(),
        "the body arrived changed"
    );

    let evil = json_records(300_000, "1' union select password from users--");
    let r = cl
        .post(&url)
        .header("Content-Type", "application/json")
        .body(evil)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // HTTP/2 without a content-length: the length is unknown until the stream ends.
    let r = cl
        .post(&url)
        .header("Content-Type", "application/json")
        .body(streamed(json.as_bytes(), 16_384))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 411);
    assert_eq!(be.count(), 1);
}
