//! The fuzz targets' entry points (`portcullis::fuzz`) over the inputs the fuzzer found
//! (`fuzz/regressions/<target>/`) and over the repository's own files as seeds, so that every
//! fixed crash stays fixed and the targets keep working on real input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use common::repo;

fn files(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p, ext));
        } else if ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)) {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Runs `f` over every file, naming the file when it panics.
fn replay(paths: &[PathBuf], f: fn(&[u8])) {
    for p in paths {
        let data = std::fs::read(p).unwrap();
        if std::panic::catch_unwind(|| f(&data)).is_err() {
            panic!("{} fails", p.display());
        }
    }
}

fn regressions(target: &str) -> Vec<PathBuf> {
    files(&repo().join("fuzz/regressions").join(target), None)
}

#[test]
fn rules() {
    let seeds = files(&repo().join("rules"), Some("yaml"));
    assert!(seeds.len() >= 10, "the shipped rule files");
    replay(&seeds, portcullis::fuzz::rules);
    replay(&regressions("rules"), portcullis::fuzz::rules);
}

#[test]
fn config() {
    let mut seeds = files(&repo().join("tests/configs"), Some("yaml"));
    seeds.extend(files(&repo().join("examples"), Some("yaml")));
    assert!(seeds.len() >= 3, "example and test configs");
    replay(&seeds, portcullis::fuzz::config);
    replay(&regressions("config"), portcullis::fuzz::config);
}

#[test]
fn transforms() {
    replay(&regressions("transforms"), portcullis::fuzz::transforms);
    // Every transform alone over a text that each one changes.
    for i in 0..40u8 {
        let mut data = vec![1, i];
        data.extend_from_slice("  A%41+&lt;\\x41/*c*/ /./..//\0\u{ff21}QUFBQUFBQUE= ".as_bytes());
        portcullis::fuzz::transforms(&data);
    }
}

#[test]
fn inspect() {
    replay(&regressions("inspect"), portcullis::fuzz::inspect);
    for seed in [
        &b"GET /?q=1'+or+1=1--\nHost: a\nCookie: s=<script>\n"[..],
        b"POST /api\nContent-Type: application/json\n\n{\"a\":[{\"b\":\"${jndi:ldap://x}\"}]}",
        b"POST /f\nContent-Type: multipart/form-data; boundary=B\n\n--B\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n../../etc/passwd\r\n--B--\r\n",
        b"POST /x\nContent-Type: text/xml\n\n<!DOCTYPE a [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><a>&e;</a>",
    ] {
        portcullis::fuzz::inspect(seed);
    }
}

#[test]
fn decode() {
    replay(&regressions("decode"), portcullis::fuzz::decode);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, b"a=1&b=<script>").unwrap();
    let gzip_of_a = gz.finish().unwrap();
    for pick in 0..8u8 {
        portcullis::fuzz::decode(&[pick]);
        portcullis::fuzz::decode(&[&[pick][..], b"plain body"].concat());
        portcullis::fuzz::decode(&[&[pick][..], &gzip_of_a].concat());
    }
}
