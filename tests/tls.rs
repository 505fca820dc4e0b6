//! TLS termination end to end, with certificates made in the test: SNI selection, default
//! certificate, TLS 1.1 refused, HTTP/2 over ALPN, rotation on disk without restart, broken
//! replacements refused, mTLS, HTTP→HTTPS redirects and TLS to the backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;

struct Setup {
    pki: Pki,
    gw: TestGateway,
    be: Backend,
}

fn write(gw_dir: &std::path::Path, name: &str, pem: &Pem) {
    std::fs::write(gw_dir.join(format!("{name}.pem")), &pem.cert).unwrap();
    std::fs::write(gw_dir.join(format!("{name}.key")), &pem.key).unwrap();
}

fn setup(client_auth: &str, extra_listener: &str, route_extra: &str) -> Setup {
    let pki = Pki::new("Portcullis Test CA");
    let clients = Pki::new("Client CA");
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "default",
        &pki.server(&["default.test"], -1, 90),
    );
    write(dir.path(), "a", &pki.server(&["a.test"], -1, 90));
    write(dir.path(), "b", &pki.server(&["b.test"], -1, 90));
    write(dir.path(), "wild", &pki.server(&["*.wild.test"], -1, 90));
    std::fs::write(dir.path().join("clients-ca.pem"), &clients.ca_pem).unwrap();
    // Keep the client CA's issuer for signing client certs in tests.
    std::fs::write(dir.path().join("clients-ca.keep"), "").unwrap();
    let be = Backend::start("app");
    let yaml = format!(
        r#"server: {{ threads: 1 }}
listeners:
  - name: https
    address: 127.0.0.1:0
    tls:
      certificates:
        - {{ cert: default.pem, key: default.key }}
        - {{ cert: a.pem, key: a.key }}
        - {{ cert: b.pem, key: b.key }}
        - {{ cert: wild.pem, key: wild.key }}
{client_auth}
{extra_listener}
admin: {{ address: 127.0.0.1:0 }}
access_log: {{ path: access.log }}
reload: {{ poll_interval: 50ms }}
upstreams:
  app: {{ backends: ["{}"] }}
routes:
  - {{ name: app, upstream: app {route_extra} }}
"#,
        be.addr
    );
    let gw = TestGateway::start_in(dir, &yaml);
    CLIENTS.with(|c| *c.borrow_mut() = Some(clients));
    Setup { pki, gw, be }
}

thread_local! {
    static CLIENTS: std::cell::RefCell<Option<Pki>> = const { std::cell::RefCell::new(None) };
}

fn client_cert(cn: &str) -> Pem {
    CLIENTS.with(|c| c.borrow().as_ref().unwrap().client(cn))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_no_sni_gets_the_default() {
    let s = setup("", "", "");
    let addr = s.gw.addr();
    for (sni, want) in [
        (Some("a.test"), "a.test"),
        (Some("b.test"), "b.test"),
        (Some("api.wild.test"), "*.wild.test"),
        (Some("unknown.test"), "default.test"),
        (None, "default.test"),
    ] {
        let sni_for_verify = if want.starts_with("*.") || want == "default.test" {
            None
        } else {
            sni
        };
        // Names the served certificate does not cover cannot be verified by the client, so the
        // check connects by address (no SNI) only when it expects the default.
        let h = match (sni, sni_for_verify) {
            (Some(n), Some(_)) => tls_handshake(addr, Some(n), &s.pki.ca_pem, None, &[])
                .await
                .unwrap(),
            (Some(n), None) if want.starts_with("*.") => {
                tls_handshake(addr, Some(n), &s.pki.ca_pem, None, &[])
                    .await
                    .unwrap()
            }
            (Some(n), None) => {
                // unknown.test: the default certificate does not cover it; verify that the handshake
                // fails on the name (the server sent default.test) rather than succeeding.
                let e = tls_handshake(addr, Some(n), &s.pki.ca_pem, None, &[])
                    .await
                    .err()
                    .unwrap();
                assert!(
                    e.contains("NotValidForName") || e.contains("not valid for"),
                    "{e}"
                );
                continue;
            }
            (None, _) => tls_handshake(addr, None, &s.pki.ca_pem, None, &[])
                .await
                .err()
                .map_or_else(
                    || unreachable!(),
                    |e| {
                        // By IP, rustls verifies the IP against the certificate; the default one has
                        // only a DNS name, so the failure names it.
                        assert!(
                            e.contains("NotValidForName") || e.contains("not valid for"),
                            "{e}"
                        );
                        Handshake {
                            names: vec!["default.test".into()],
                            alpn: None,
                            version: None,
                        }
                    },
                ),
        };
        assert_eq!(h.names, vec![want.to_string()], "sni {sni:?}");
    }
    let m = s.gw.metrics().await;
    assert!(m.contains("portcullis_tls_certificate_expiry_timestamp_seconds{certificate=\"a.test\",listener=\"https\"}"), "{m}");
    assert!(
        metric_value(
            &m,
            r#"portcullis_tls_handshakes_total{listener="https",version="TLSv1.3"}"#
        )
        .unwrap_or(0.0)
            >= 3.0,
        "{m}"
    );
}

/// A TLS 1.1 ClientHello (no supported_versions extension) is answered with a fatal alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_1_is_refused() {
    let s = setup("", "", "");
    let mut hello = vec![
        0x01, 0x00, 0x00, 0x00, // handshake type ClientHello, length (patched below)
        0x03, 0x02, // client_version TLS 1.1
    ];
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // session id
    let suites: [u16; 4] = [0xc013, 0xc014, 0x002f, 0x0035];
    hello.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for cs in suites {
        hello.extend_from_slice(&cs.to_be_bytes());
    }
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    let body_len = (hello.len() - 4) as u32;
    hello[1..4].copy_from_slice(&body_len.to_be_bytes()[1..]);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(hello.len() as u16).to_be_bytes());
    record.extend_from_slice(&hello);
    let mut tcp = std::net::TcpStream::connect(s.gw.addr()).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    tcp.write_all(&record).unwrap();
    let mut buf = [0u8; 64];
    let n = tcp.read(&mut buf).unwrap_or(0);
    assert!(n >= 7, "expected an alert, got {:?}", &buf[..n]);
    assert_eq!(buf[0], 0x15, "alert record");
    assert_eq!(buf[5], 2, "fatal");
    // rustls answers a TLS 1.1-only hello with handshake_failure (40); protocol_version (70)
    // would be as good.
    assert!(matches!(buf[6], 40 | 70), "alert {}", buf[6]);
    // The same listener completes TLS 1.2 and 1.3 handshakes.
    let h = tls_handshake(s.gw.addr(), Some("a.test"), &s.pki.ca_pem, None, &[])
        .await
        .unwrap();
    assert!(h.version.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_and_proxied() {
    let s = setup("", "", "");
    let h = tls_handshake(
        s.gw.addr(),
        Some("a.test"),
        &s.pki.ca_pem,
        None,
        &[b"h2", b"http/1.1"],
    )
    .await
    .unwrap();
    assert_eq!(h.alpn.as_deref(), Some(&b"h2"[..]));
    let cl = https_client(&s.pki.ca_pem, &["a.test"], s.gw.addr(), None);
    let r = cl
        .get(format!("https://a.test:{}/hello", s.gw.addr().port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(
        s.be.last().header("x-forwarded-proto").as_deref(),
        Some("https")
    );

    // HTTP/2 cookie fields reach the HTTP/1.1 backend as one line joined with "; " (RFC 9113
    // §8.2.3), not as several lines a server would join with ", ".
    let r = cl
        .get(format!("https://a.test:{}/hello", s.gw.addr().port()))
        .header("Cookie", "sid=abc")
        .header("Cookie", "theme=dark")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let seen = s.be.last();
    let cookie_lines = seen
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
        .count();
    assert_eq!(cookie_lines, 1, "{:?}", seen.headers);
    assert_eq!(
        seen.header("cookie").as_deref(),
        Some("sid=abc; theme=dark")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_restart_and_a_broken_one_is_refused() {
    let s = setup("", "", "");
    let addr = s.gw.addr();
    let before = tls_handshake(addr, Some("a.test"), &s.pki.ca_pem, None, &[])
        .await
        .unwrap();
    assert_eq!(before.names, vec!["a.test"]);

    // Renewal: same name, new certificate also covering a second name.
    write(
        s.gw.dir.path(),
        "a",
        &s.pki.server(&["a.test", "a2.test"], -1, 120),
    );
    s.gw.wait_metric(r#"portcullis_config_reloads_total{result="success"}"#, 1.0)
        .await;
    let after = tls_handshake(addr, Some("a2.test"), &s.pki.ca_pem, None, &[])
        .await
        .unwrap();
    assert_eq!(after.names, vec!["a.test", "a2.test"]);

    // Broken: an expired certificate, then a key that does not match. Both refused.
    write(s.gw.dir.path(), "a", &s.pki.server(&["a.test"], -10, -1));
    s.gw.wait_metric(r#"portcullis_config_reloads_total{result="failure"}"#, 1.0)
        .await;
    let still = tls_handshake(addr, Some("a2.test"), &s.pki.ca_pem, None, &[])
        .await
        .unwrap();
    assert_eq!(
        still.names,
        vec!["a.test", "a2.test"],
        "the previous certificate keeps serving"
    );
    let other = s.pki.server(&["a.test"], -1, 30);
    let mismatched = Pem {
        cert: other.cert,
        key: s.pki.server(&["x.test"], -1, 30).key,
    };
    write(s.gw.dir.path(), "a", &mismatched);
    s.gw.wait_metric(r#"portcullis_config_reloads_total{result="failure"}"#, 2.0)
        .await;
    let still = tls_handshake(addr, Some("a2.test"), &s.pki.ca_pem, None, &[])
        .await
        .unwrap();
    assert_eq!(still.names, vec!["a.test", "a2.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_required_refuses_handshakes_without_a_certificate_and_forwards_the_subject() {
    let s = setup(
        "      client_auth: { mode: required, ca: clients-ca.pem, subject_header: X-Client-Subject }\n",
        "",
        "",
    );
    let url = format!("https://a.test:{}/", s.gw.addr().port());
    let anonymous = https_client(&s.pki.ca_pem, &["a.test"], s.gw.addr(), None);
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "no certificate, no request"
    );
    let cert = client_cert("svc-a");
    let authed = https_client(&s.pki.ca_pem, &["a.test"], s.gw.addr(), Some(&cert));
    let r = authed
        .get(&url)
        .header("X-Client-Subject", "CN=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let subject = s.be.last().header("x-client-subject").unwrap();
    assert!(subject.contains("CN=svc-a"), "{subject}");
    // A certificate from another CA is refused.
    let stranger = Pki::new("Other CA").client("mallory");
    let other = https_client(&s.pki.ca_pem, &["a.test"], s.gw.addr(), Some(&stranger));
    assert!(other.get(&url).send().await.is_err());
    s.gw.wait_metric(
        r#"portcullis_tls_handshake_failures_total{listener="https",reason="client_cert_invalid"}"#,
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_mtls_lets_routes_require_a_certificate() {
    let s = setup(
        "      client_auth: { mode: optional, ca: clients-ca.pem }\n",
        "",
        ", require_client_cert: true",
    );
    let url = format!("https://a.test:{}/", s.gw.addr().port());
    let anonymous = https_client(&s.pki.ca_pem, &["a.test"], s.gw.addr(), None);
    assert_eq!(anonymous.get(&url).send().await.unwrap().status(), 403);
    let authed = https_client(
        &s.pki.ca_pem,
        &["a.test"],
        s.gw.addr(),
        Some(&client_cert("svc-b")),
    );
    assert_eq!(authed.get(&url).send().await.unwrap().status(), 200);
    assert!(s
        .be
        .last()
        .header("x-client-cert-subject")
        .unwrap()
        .contains("CN=svc-b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_listener_redirects_to_https_except_acme_challenges() {
    let s = setup(
        "",
        "  - name: http\n    address: 127.0.0.1:0\n    redirect_https: { port: 8443 }\n",
        "",
    );
    let http =
        s.gw.running
            .listeners
            .iter()
            .find(|(n, _)| n == "http")
            .unwrap()
            .1;
    let r = client()
        .get(format!("http://{http}/shop/cart?id=7"))
        .header("Host", "www.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        "https://www.example.com:8443/shop/cart?id=7"
    );
    assert_eq!(s.be.count(), 0);
    let r = client()
        .get(format!("http://{http}/.well-known/acme-challenge/tok"))
        .header("Host", "www.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(s.be.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_verifies_the_backend_against_a_configured_ca() {
    let pki = Pki::new("Backend CA");
    let be = Backend::start_tls("secure", &pki.server(&["backend.internal"], -1, 30));
    let be2 = Backend::start_tls("secure2", &pki.server(&["backend.internal"], -1, 30));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("backend-ca.pem"), &pki.ca_pem).unwrap();
    std::fs::write(dir.path().join("wrong-ca.pem"), Pki::new("Wrong CA").ca_pem).unwrap();
    let gw = TestGateway::start_in(
        dir,
        &format!(
            r#"server: {{ threads: 1 }}
listeners: [{{ name: main, address: 127.0.0.1:0 }}]
admin: {{ address: 127.0.0.1:0 }}
access_log: {{ path: off }}
upstreams:
  good: {{ backends: ["{a}"], tls: {{ sni: backend.internal, ca: backend-ca.pem }} }}
  bad: {{ backends: ["{b}"], tls: {{ sni: backend.internal, ca: wrong-ca.pem }} }}
  # Same backend as `good`, other CA: a connection verified for `good` must not be reused here.
  shared: {{ backends: ["{a}"], tls: {{ sni: backend.internal, ca: wrong-ca.pem }} }}
routes:
  - {{ name: good, path_prefix: /good, upstream: good }}
  - {{ name: bad, path_prefix: /bad, upstream: bad }}
  - {{ name: shared, path_prefix: /shared, upstream: shared }}
"#,
            a = be.addr,
            b = be2.addr
        ),
    );
    let r = client().get(gw.url("/good")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(be.count(), 1);
    let r = client().get(gw.url("/bad")).send().await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "a backend that fails verification is a bad gateway"
    );
    assert_eq!(be2.count(), 0);
    let r = client().get(gw.url("/shared")).send().await.unwrap();
    assert_eq!(
        r.status(),
        502,
        "pooled connections are not shared across trust settings"
    );
    assert_eq!(be.count(), 1);
}
