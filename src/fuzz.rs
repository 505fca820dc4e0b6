//! Entry points of the fuzz targets (`fuzz/`), here so that the inputs the fuzzer found are
//! replayed by `cargo test` (`tests/fuzz_regressions.rs`) through exactly the same code.
//!
//! Each takes arbitrary bytes, must not panic or hang on any of them, and asserts what must hold
//! whatever the input.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::config::Diagnostics;
use crate::waf::profile::Profile;
use crate::waf::ruleset::{load_sources, RuleSource};
use crate::waf::transform::{apply_chain, NAMES};
use crate::waf::{builtin, SampleRequest, Waf, WafPolicy};

/// A rule file: parsed, validated and compiled, its inline tests run. Refused input ends in
/// located diagnostics; no rule makes compilation or a test run hang (regex size limits).
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut diags = Diagnostics::default();
    let source = RuleSource::Embedded {
        name: "fuzz.yaml".into(),
        text: Cow::Owned(text.to_owned()),
    };
    match load_sources(&[source], &mut diags) {
        Some(rules) => {
            assert!(diags.0.is_empty(), "rules loaded with diagnostics");
            if let Ok(waf) = Waf::build(rules, &[1, 4]) {
                let _ = waf.run_tests();
            }
        }
        None => {
            assert!(!diags.0.is_empty(), "rules refused without a diagnostic");
            for d in &diags.0 {
                let _ = d.to_string();
            }
        }
    }
}

/// A chain of up to five transforms (picked by the first bytes) over the rest as text. A
/// transform the byte profile says cannot change a text must leave it unchanged: the matcher
/// skips it then.
pub fn transforms(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 6).min(rest.len());
    let (picks, value) = rest.split_at(n);
    let chain: Vec<_> = picks
        .iter()
        .map(|b| NAMES[usize::from(*b) % NAMES.len()].1)
        .collect();
    let value = String::from_utf8_lossy(value);
    let _ = apply_chain(&chain, &value);
    let profile = Profile::of(&value);
    for (name, t) in NAMES {
        if !t.may_change(profile, value.len()) {
            let out = t.apply(Cow::Borrowed(&*value));
            assert_eq!(
                out, value,
                "{name} changed a text its profile says it cannot"
            );
        }
    }
}

/// Compiles the shipped rules for [`inspect`] ahead of the first input (libFuzzer would
/// otherwise time the compilation as that input's run).
pub fn warm_up() {
    let _ = shipped_waf();
}

fn shipped_waf() -> &'static Waf {
    static WAF: OnceLock<Option<Waf>> = OnceLock::new();
    let waf = WAF.get_or_init(|| {
        let mut diags = Diagnostics::default();
        let rules = load_sources(&builtin::sources(), &mut diags)?;
        Waf::build(rules, &[4]).ok()
    });
    match waf {
        Some(w) => w,
        None => panic!("the shipped rules do not compile"),
    }
}

/// The WAF with the shipped rules at paranoia 4 (every rule) over an arbitrary request.
/// Layout: line 1 is `METHOD TARGET`, then `name: value` header lines up to an empty line,
/// then the body (any content type the headers announce).
pub fn inspect(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h, Some(b)),
        None => (&*text, None),
    };
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let mut req = SampleRequest::from_target(method, target);
    req.headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    req.body = body.map(str::to_string);
    let policy = WafPolicy {
        paranoia: 4,
        ..WafPolicy::default()
    };
    let inspection = shipped_waf().inspect_sample(&req, &policy);
    let mut rules: Vec<usize> = inspection.hits.iter().map(|h| h.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    assert_eq!(rules.len(), inspection.hits.len(), "a rule reported twice");
}

/// A gateway config file, parsed and compiled (nothing is bound or started). Refused input
/// ends in located diagnostics.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Files the config names resolve in a directory that does not exist.
    let file = std::path::PathBuf::from("/nonexistent/portcullis-fuzz/gateway.yaml");
    match crate::config::source::SourceDoc::parse(file, text) {
        Ok(doc) => {
            if let Err(diags) = crate::config::compile(&doc, None) {
                assert!(!diags.0.is_empty(), "config refused without a diagnostic");
                for d in &diags.0 {
                    let _ = d.to_string();
                }
            }
        }
        Err(d) => {
            let _ = d.to_string();
        }
    }
}

/// The `Content-Encoding` a [`decode`] input's first byte picks.
const CODINGS: [&str; 8] = [
    "gzip",
    "deflate",
    "br",
    "zstd",
    "identity",
    "gzip, br",
    "deflate, zstd",
    "x-snappy",
];

/// A request body in a content coding (picked by the first byte) decoded for inspection: any
/// bytes end in the decoded body or an error, never a panic, and never more than the limit. The
/// same bytes gzip-compressed come back unchanged.
pub fn decode(data: &[u8]) {
    const LIMIT: usize = 64 << 10;
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let coding = CODINGS[usize::from(pick) % CODINGS.len()];
    match crate::waf::decode_body(Some(coding), body, LIMIT) {
        Ok(out) => {
            assert!(out.len() <= LIMIT, "decoded past the limit");
            if coding == "identity" {
                assert_eq!(&*out, body, "identity changed the body");
            }
        }
        Err(e) => assert!(coding != "identity", "identity failed: {e:?}"),
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    if std::io::Write::write_all(&mut gz, body).is_ok() {
        if let Ok(packed) = gz.finish() {
            let round = crate::waf::decode_body(Some("gzip"), &packed, LIMIT);
            assert_eq!(round.as_deref().ok(), Some(body), "gzip round trip");
        }
    }
}
