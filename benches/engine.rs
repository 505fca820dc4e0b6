//! Criterion benchmarks of the pure parts: the WAF engine on typical requests (shipped rules,
//! and with 10x synthetic rules added, against a naive one-rule-at-a-time baseline), the
//! in-process rate limiter with 1, 10k and 1M keys, and compiling the shipped rules.
//!
//! `cargo bench --bench engine` (add `-- --quick` for a fast pass).
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use governor::clock::QuantaClock;
use governor::Quota;
use portcullis::config::Diagnostics;
use portcullis::ratelimit::local::LocalLimiter;
use portcullis::waf::ruleset::{self, RuleSet};
use portcullis::waf::{SampleRequest, Waf, WafPolicy};
use std::sync::atomic::{AtomicBool, Ordering};

/// Builds one of the rule sets under comparison.
type MakeRules = fn() -> RuleSet;

fn shipped() -> RuleSet {
    let mut d = Diagnostics::default();
    ruleset::load_sources(&portcullis::waf::builtin::sources(), &mut d).expect("shipped rules load")
}

/// The shipped rules plus `extra` synthetic regex rules over all inputs.
fn with_synthetic(extra: usize) -> RuleSet {
    let dir = std::env::temp_dir().join(format!("portcullis-bench-rules-{extra}"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut y = String::from("rules:\n");
    for i in 0..extra {
        y.push_str(&format!(
            "  - {{ id: syn{i}, description: synthetic, targets: [inputs, input_headers, path], transforms: [url-decode, lowercase], operator: {{ regex: 'synthetic{i}[a-z]{{2,8}}(?:attack|probe)\\\\d+' }} }}\n"
        ));
    }
    let file = dir.join("synthetic.yaml");
    std::fs::write(&file, y).expect("write");
    let mut sources = portcullis::waf::builtin::sources();
    sources.push(ruleset::RuleSource::File(file));
    let mut d = Diagnostics::default();
    ruleset::load_sources(&sources, &mut d).expect("synthetic rules load")
}

fn get_request() -> SampleRequest {
    let mut s =
        SampleRequest::from_target("GET", "/search?q=blue+running+shoes&page=2&sort=price_asc");
    s.headers = vec![
        ("Host".into(), "shop.example.com".into()),
        ("User-Agent".into(), "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36".into()),
        ("Accept".into(), "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8".into()),
        ("Accept-Language".into(), "en-US,en;q=0.9".into()),
        ("Accept-Encoding".into(), "gzip, deflate, br".into()),
        ("Cookie".into(), "session=3f2a9c1e8b7d6a5f4e3d2c1b; theme=dark; consent=yes".into()),
        ("Referer".into(), "https://shop.example.com/".into()),
    ];
    s
}

/// [`get_request`] with header values no earlier request had (request `i` of a run), so the
/// WAF's per-thread verdicts on header values cannot be reused: the cost of a new client.
fn get_request_new_headers(i: u64) -> SampleRequest {
    let mut s = get_request();
    for (name, value) in &mut s.headers {
        if name != "Host" {
            value.push_str(&format!(" r{i}"));
        }
    }
    s
}

fn json_4k() -> SampleRequest {
    let items: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"sku":"SKU-{i:05}","name":"Item number {i} with a description","qty":{},"price":{}.99}}"#, i % 7 + 1, i * 3))
        .collect();
    let body = format!(
        r#"{{"customer":{{"id":4711,"name":"Jane O'Brien","email":"jane@example.com"}},"items":[{}],"note":"Please leave the parcel at the door."}}"#,
        items.join(",")
    );
    let mut s = SampleRequest::from_target("POST", "/api/orders");
    s.headers = vec![
        ("Host".into(), "api.example.com".into()),
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), "orders-client/2.3".into()),
    ];
    s.body = Some(body);
    s
}

fn form_64k() -> SampleRequest {
    let mut body = String::new();
    let mut i = 0;
    while body.len() < 64 * 1024 - 200 {
        body.push_str(&format!(
            "field{i}=Some+ordinary+text+number+{i}+with+words&"
        ));
        i += 1;
    }
    let mut s = SampleRequest::from_target("POST", "/forms/submit");
    s.headers = vec![
        ("Host".into(), "www.example.com".into()),
        (
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ),
    ];
    s.body = Some(body);
    s
}

/// The naive baseline: every rule on its own (its own regex, its own transform pass).
struct Naive {
    rules: Vec<(
        Vec<portcullis::waf::target::TargetSpec>,
        Vec<portcullis::waf::transform::Transform>,
        regex::bytes::Regex,
    )>,
}

impl Naive {
    fn new(rs: &RuleSet) -> Naive {
        let rules = rs
            .rules
            .iter()
            .filter(|r| r.paranoia <= 1)
            .filter_map(|r| match &r.operator {
                portcullis::waf::operator::Operator::Regex(p) => {
                    Some((r.targets.clone(), rs.chains[r.chain].clone(), p.re.clone()))
                }
                _ => None,
            })
            .collect();
        Naive { rules }
    }

    fn inspect(&self, s: &SampleRequest) -> usize {
        let names = s.header_names();
        let view = s.view_with(&names);
        let mut items = Vec::new();
        portcullis::waf::parse::head_items(&view, &Default::default(), &mut items);
        if let Some(b) = &s.body {
            let _ = portcullis::waf::parse::body_items(
                s.content_type(),
                b,
                &Default::default(),
                &mut items,
            );
        }
        let mut hits = 0;
        for (targets, chain, re) in &self.rules {
            for item in &items {
                if targets.iter().any(|t| t.selects(item)) {
                    let v = portcullis::waf::transform::apply_chain(chain, &item.value);
                    hits += usize::from(re.is_match(v.as_bytes()));
                }
            }
        }
        hits
    }
}

fn waf(c: &mut Criterion) {
    let policy = WafPolicy::default();
    let requests = [
        ("get", get_request()),
        ("json_4k", json_4k()),
        ("form_64k", form_64k()),
    ];
    let mut g = c.benchmark_group("waf_inspect");
    g.measurement_time(Duration::from_secs(3));
    let variants: Vec<(&str, MakeRules)> = vec![
        ("shipped", shipped),
        ("shipped+10x_synthetic", || {
            with_synthetic(shipped().rules.len() * 9)
        }),
    ];
    for (label, make) in variants {
        let rs = make();
        let n = rs.rules.len();
        let naive = Naive::new(&rs);
        let w = Waf::build(rs, &[1]).expect("compile");
        let mut i = 0;
        g.bench_function(
            BenchmarkId::new(format!("{label} ({n} rules)"), "get_new_headers"),
            |b| {
                b.iter_batched(
                    || {
                        i += 1;
                        get_request_new_headers(i)
                    },
                    |req| black_box(w.inspect_sample(&req, &policy)),
                    BatchSize::SmallInput,
                )
            },
        );
        for (name, req) in &requests {
            g.bench_with_input(
                BenchmarkId::new(format!("{label} ({n} rules)"), name),
                req,
                |b, req| b.iter(|| black_box(w.inspect_sample(req, &policy))),
            );
            if *name != "form_64k" {
                g.bench_with_input(
                    BenchmarkId::new(format!("naive {label} ({n} rules)"), name),
                    req,
                    |b, req| b.iter(|| black_box(naive.inspect(req))),
                );
            }
        }
    }
    g.finish();
}

fn compile(c: &mut Criterion) {
    let mut g = c.benchmark_group("compile");
    g.sample_size(10);
    g.bench_function("load+compile shipped rules", |b| {
        b.iter(|| black_box(Waf::build(shipped(), &[1]).expect("compile")))
    });
    g.finish();
}

fn limiter(c: &mut Criterion) {
    let mut g = c.benchmark_group("ratelimit_check");
    let quota = Quota::per_second(NonZeroU32::new(1_000_000).expect("nonzero"));
    for keys in [1u128, 10_000, 1_000_000] {
        g.bench_function(BenchmarkId::new("local", keys), |b| {
            // Filled inside the closure so that only a selected benchmark pays for it.
            let before = rss_kib();
            let l = LocalLimiter::new(quota, 2_000_000, QuantaClock::default());
            for k in 0..keys {
                l.check(k);
            }
            // Criterion calls this closure several times; the first fill, on a fresh heap, is
            // the one whose growth is the table's footprint.
            let report = keys >= 1_000_000 && !REPORTED.swap(true, Ordering::Relaxed);
            if let (Some(was), Some(now), true) = (before, rss_kib(), report) {
                let grown = now.saturating_sub(was);
                eprintln!(
                    "limiter with {keys} keys: RSS +{:.1} MiB ({:.0} bytes per key)",
                    grown as f64 / 1024.0,
                    grown as f64 * 1024.0 / keys as f64
                );
            }
            let mut i = 0u128;
            b.iter(|| {
                i = (i + 7919) % keys;
                black_box(l.check(i))
            })
        });
    }
    g.finish();
}

/// Whether the 1M-key limiter's memory has been reported.
static REPORTED: AtomicBool = AtomicBool::new(false);

/// Resident set size of this process, from `/proc/self/status` (Linux).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

criterion_group!(benches, waf, compile, limiter);
criterion_main!(benches);
