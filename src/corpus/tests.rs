//! Offline reading of corpus records.

use super::*;
use std::io::Write as _;

fn record(headers: &[(&str, &str)], body: &[u8]) -> Record {
    Record {
        id: "t/1".into(),
        source: "t".into(),
        category: "c".into(),
        expect: "block".into(),
        method: "POST".into(),
        target: "/".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: None,
        body_b64: Some(base64::engine::general_purpose::STANDARD.encode(body)),
        pl: None,
        version: None,
        verbatim: false,
    }
}

#[test]
fn offline_bodies_are_read_as_the_gateway_reads_them() {
    let form = "q=%27+union+select+password+from+users--";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(form.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    let s = record(&[ct, ("Content-Encoding", "gzip")], &gz).sample();
    assert_eq!(s.body.as_deref(), Some(form));

    let json = r#"{"q":"\u0027 union select"}"#;
    let utf16: Vec<u8> = json.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let s = record(&[("Content-Type", "application/json")], &utf16).sample();
    assert_eq!(s.body.as_deref(), Some(json));

    // A coding that does not decode is inspected as sent.
    let s = record(&[ct, ("Content-Encoding", "gzip")], form.as_bytes()).sample();
    assert_eq!(s.body.as_deref(), Some(form));
}
