//! Table-driven engine tests: small rule sets, requests, and what must (not) match.

use super::*;
use crate::config::source::Diagnostics;

pub(super) fn waf(rules_yaml: &str, levels: &[u8]) -> Waf {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("rules.yaml");
    std::fs::write(&f, rules_yaml).unwrap();
    std::fs::write(dir.path().join("words.txt"), "# scanners\nsqlmap\nnikto\n").unwrap();
    let mut d = Diagnostics::default();
    let rs = ruleset::load(&[f], &mut d).unwrap_or_else(|| panic!("{d}"));
    Waf::build(rs, levels).unwrap()
}

pub(super) const RULES: &str = r#"
rules:
  - id: sqli
    description: libinjection SQLi
    targets: [inputs]
    transforms: [base64-decode, url-decode]
    operator: { sqli: true }
  - id: traversal
    description: dot-dot-slash
    targets: [path, inputs]
    transforms: [url-decode, normalise-path]
    operator: { regex: '(?:^|/)\.\./' }
  - id: scanner
    description: scanner user agents
    category: scanner
    targets: ["headers:user-agent"]
    transforms: [lowercase]
    operator: { phrases_file: words.txt }
  - id: method
    description: methods outside the allowed set
    targets: [method]
    operator: { regex: '^(?:GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$' }
    negate: true
    severity: warning
  - id: pl2-word
    description: only at paranoia 2
    targets: [args]
    operator: { contains: "select" }
    paranoia: 2
  - id: always-block
    description: blocks by itself
    targets: ["args:kill"]
    operator: { equals: "1" }
    severity: notice
    action: block
  - id: allow-health
    description: lets the health check through
    targets: [path]
    operator: { equals: "/healthz" }
    action: allow
  - id: logged
    description: only logged
    targets: [json_keys]
    operator: { regex: '^\$' }
    action: log
"#;

pub(super) fn sample(
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &str)>,
) -> SampleRequest {
    let mut s = SampleRequest::from_target(method, target);
    s.headers = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some((ct, b)) = body {
        s.headers.push(("Content-Type".into(), ct.into()));
        s.body = Some(b.into());
    }
    s
}

#[test]
fn table() {
    let w = waf(RULES, &[1, 2]);
    let p1 = WafPolicy::default();
    let p2 = WafPolicy {
        paranoia: 2,
        ..WafPolicy::default()
    };
    struct Case {
        name: &'static str,
        req: SampleRequest,
        policy: &'static str,
        hits: &'static [&'static str],
        block: bool,
    }
    let cases = [
        Case {
            name: "clean GET",
            req: sample(
                "GET",
                "/shop?item=42&q=blue+shoes",
                &[("User-Agent", "Mozilla/5.0")],
                None,
            ),
            policy: "p1",
            hits: &[],
            block: false,
        },
        Case {
            name: "sqli in query",
            req: sample("GET", "/?id=1%27%20or%20%271%27=%271", &[], None),
            policy: "p1",
            hits: &["sqli"],
            block: true,
        },
        Case {
            name: "O'Brien passes",
            req: sample("GET", "/?name=O%27Brien", &[], None),
            policy: "p1",
            hits: &[],
            block: false,
        },
        Case {
            name: "sqli in base64 arg name",
            req: sample("GET", "/?MScgb3IgJzEnPScx", &[], None),
            policy: "p1",
            hits: &["sqli"],
            block: true,
        },
        Case {
            name: "sqli in JSON at depth",
            req: sample(
                "POST",
                "/",
                &[],
                Some((
                    "application/json",
                    r#"{"a":[{"b":"1' union select password from users--"}]}"#,
                )),
            ),
            policy: "p1",
            hits: &["sqli"],
            block: true,
        },
        Case {
            name: "sqli in form",
            req: sample(
                "POST",
                "/",
                &[],
                Some(("application/x-www-form-urlencoded", "u=admin%27--&p=x")),
            ),
            policy: "p1",
            hits: &["sqli"],
            block: true,
        },
        Case {
            name: "sqli in cookie",
            req: sample("GET", "/", &[("Cookie", "id=1' or 1=1-- ")], None),
            policy: "p1",
            hits: &["sqli"],
            block: true,
        },
        Case {
            name: "traversal in path",
            req: sample("GET", "/static/..%2f..%2fetc/passwd", &[], None),
            policy: "p1",
            hits: &["traversal"],
            block: true,
        },
        Case {
            name: "traversal with backslashes",
            req: sample("GET", "/?f=..%5c..%5cwindows%5cwin.ini", &[], None),
            policy: "p1",
            hits: &["traversal"],
            block: true,
        },
        Case {
            name: "dots in file names pass",
            req: sample("GET", "/files/report.v2.final.pdf?x=a..b", &[], None),
            policy: "p1",
            hits: &[],
            block: false,
        },
        Case {
            name: "scanner UA",
            req: sample(
                "GET",
                "/",
                &[("User-Agent", "Mozilla/5.0 SQLMap/1.7")],
                None,
            ),
            policy: "p1",
            hits: &["scanner"],
            block: true,
        },
        Case {
            name: "scanner word in another header does not count",
            req: sample("GET", "/", &[("Referer", "https://x/sqlmap")], None),
            policy: "p1",
            hits: &[],
            block: false,
        },
        Case {
            name: "odd method scores below threshold",
            req: sample("PROPFIND", "/", &[], None),
            policy: "p1",
            hits: &["method"],
            block: false,
        },
        Case {
            name: "paranoia 2 rule off at 1",
            req: sample("GET", "/?q=select", &[], None),
            policy: "p1",
            hits: &[],
            block: false,
        },
        Case {
            name: "paranoia 2 rule on at 2",
            req: sample("GET", "/?q=select", &[], None),
            policy: "p2",
            hits: &["pl2-word"],
            block: true,
        },
        Case {
            name: "block action beats a low score",
            req: sample("GET", "/?kill=1", &[], None),
            policy: "p1",
            hits: &["always-block"],
            block: true,
        },
        Case {
            name: "named target only",
            req: sample("GET", "/?other=1", &[], None),
            policy: "p1",
            hits: &[],
            block: false,
        },
        Case {
            name: "allow overrides",
            req: sample("GET", "/healthz?id=1%27%20or%20%271%27=%271", &[], None),
            policy: "p1",
            hits: &["allow-health", "sqli"],
            block: false,
        },
        Case {
            name: "log action does not score",
            req: sample(
                "POST",
                "/",
                &[],
                Some(("application/json", r#"{"$where":"x"}"#)),
            ),
            policy: "p1",
            hits: &["logged"],
            block: false,
        },
    ];
    for c in cases {
        let policy = if c.policy == "p1" { &p1 } else { &p2 };
        let insp = w.inspect_sample(&c.req, policy);
        let mut got: Vec<&str> = insp.hits.iter().map(|h| &*h.id).collect();
        got.sort_unstable();
        let mut want = c.hits.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{}: hits", c.name);
        assert_eq!(
            policy.over_threshold(&insp),
            c.block,
            "{}: block (score {})",
            c.name,
            insp.score
        );
    }
}

#[test]
fn score_counts_each_rule_once_and_records_targets() {
    let w = waf(RULES, &[1]);
    let s = sample(
        "GET",
        "/?a=1%27%20or%20%271%27=%271&b=1%27%20or%20%271%27=%271",
        &[],
        None,
    );
    let insp = w.inspect_sample(&s, &WafPolicy::default());
    assert_eq!(insp.score, 5);
    assert_eq!(insp.hits.len(), 1);
    assert_eq!(insp.hits[0].targets, vec!["args:a", "args:b"]);
}

#[test]
fn exclusions_silence_a_rule_for_one_target() {
    let w = waf(RULES, &[1]);
    let policy = WafPolicy {
        exclusions: vec![Exclusion {
            ids: vec!["sqli".into()],
            tags: vec![],
            targets: target::TargetSpec::parse("args:comment").unwrap(),
        }],
        ..WafPolicy::default()
    };
    let quiet = sample("GET", "/?comment=1%27%20or%20%271%27=%271", &[], None);
    assert!(w.inspect_sample(&quiet, &policy).hits.is_empty());
    let loud = sample("GET", "/?other=1%27%20or%20%271%27=%271", &[], None);
    assert_eq!(w.inspect_sample(&loud, &policy).hits.len(), 1);
    let by_category = WafPolicy {
        exclusions: vec![Exclusion {
            ids: vec![],
            tags: vec!["scanner".into()],
            targets: vec![],
        }],
        ..WafPolicy::default()
    };
    let ua = sample("GET", "/", &[("User-Agent", "nikto")], None);
    assert!(w.inspect_sample(&ua, &by_category).hits.is_empty());
}

#[test]
fn a_value_met_again_is_judged_once_but_recorded_and_excluded_per_target() {
    // The same payload under three JSON keys: the verdict of the first is reused for the others,
    // but each is recorded under its own target, and exclusions still apply per target.
    let w = waf(RULES, &[1]);
    let payload = "1' or '1'='1";
    let body = format!(r#"{{"a":"{payload}","b":"{payload}","c":["{payload}"]}}"#);
    let s = sample("POST", "/", &[], Some(("application/json", &body)));
    let insp = w.inspect_sample(&s, &WafPolicy::default());
    assert_eq!(insp.hits.len(), 1);
    assert_eq!(insp.hits[0].targets, vec!["json:a", "json:b", "json:c[0]"]);
    let policy = WafPolicy {
        exclusions: vec![Exclusion {
            ids: vec!["sqli".into()],
            tags: vec![],
            targets: target::TargetSpec::parse("json:a").unwrap(),
        }],
        ..WafPolicy::default()
    };
    let insp = w.inspect_sample(&s, &policy);
    assert_eq!(insp.hits[0].targets, vec!["json:b", "json:c[0]"]);
    // A key repeated in every object of an array is still looked at (and matched) each time.
    let keys = r#"[{"$where":1},{"$where":2}]"#;
    let s = sample("POST", "/", &[], Some(("application/json", keys)));
    let insp = w.inspect_sample(&s, &WafPolicy::default());
    assert!(insp.matched("logged"), "{insp:?}");
}

#[test]
fn a_rule_with_conditions_matches_only_when_all_hold() {
    let w = waf(
        r#"
rules:
  - id: get-body
    description: GET with a non-zero Content-Length and no X-Ok header
    targets: [method]
    operator: { regex: '^(?:GET|HEAD)$' }
    and:
      - targets: ["headers:content-length"]
        operator: { regex: '[1-9]' }
      - targets: ["headers:x-ok"]
        operator: { equals: "yes" }
        negate: true
  - id: part-charset
    description: a part declared in UTF-7
    targets: ["multipart_headers:content-type"]
    transforms: [lowercase]
    operator: { contains: "utf-7" }
"#,
        &[1],
    );
    let policy = WafPolicy::default();
    let get = |headers: &[(&str, &str)]| {
        w.inspect_sample(&sample("GET", "/", headers, None), &policy)
            .matched("get-body")
    };
    assert!(get(&[("Content-Length", "7"), ("X-Ok", "no")]));
    assert!(!get(&[("Content-Length", "0")]), "first condition fails");
    assert!(
        !get(&[]),
        "no Content-Length: the first condition has nothing to match"
    );
    assert!(
        !get(&[("Content-Length", "7"), ("X-Ok", "yes")]),
        "second condition fails"
    );
    let post = sample("POST", "/", &[("Content-Length", "7")], None);
    assert!(!w.inspect_sample(&post, &policy).matched("get-body"));

    let part = |ct: &str| {
        let body = format!("--b\r\nContent-Disposition: form-data; name=\"t\"\r\ncontent-TYPE: {ct}\r\n\r\nx\r\n--b--\r\n");
        let s = sample(
            "POST",
            "/",
            &[],
            Some(("multipart/form-data; boundary=b", &body)),
        );
        let insp = w.inspect_sample(&s, &policy);
        (
            insp.matched("part-charset"),
            insp.hits.first().map(|h| h.targets.clone()),
        )
    };
    assert_eq!(
        part("text/plain; charset=UTF-7"),
        (
            true,
            Some(vec!["multipart_headers:content-TYPE".to_string()])
        )
    );
    assert_eq!(part("text/plain; charset=utf-8"), (false, None));
}

#[test]
fn inline_tests_report_rule_and_line() {
    let w = waf(
        r#"
rules:
  - id: t1
    description: finds evil
    targets: [args]
    operator: { contains: evil }
    tests:
      match:
        - "GET /?x=evil"
        - { args: { x: "not bad" } }
      no_match:
        - { args: { x: "good" } }
"#,
        &[4],
    );
    let out = w.run_tests();
    assert_eq!(out.len(), 3);
    assert!(out[0].passed);
    assert!(!out[1].passed);
    assert_eq!(out[1].line, 10);
    assert_eq!(out[1].detail, "did not match but must");
    assert!(out[2].passed);
}

#[test]
fn a_verdict_is_counted_under_the_rule_that_weighed_most() {
    let rules = r#"
rules:
  - id: odd-encoding
    description: a stray percent sign in the raw query
    category: protocol
    targets: [query]
    operator: { contains: "%zz" }
    severity: warning
  - id: script-tag
    description: script tag
    category: xss
    targets: [args]
    transforms: [url-decode, lowercase]
    operator: { contains: "<script" }
  - id: kill-switch
    description: blocks by itself
    category: policy
    targets: ["args:kill"]
    operator: { equals: "1" }
    severity: notice
    action: block
"#;
    let w = waf(rules, &[1]);
    let policy = WafPolicy::default();
    let scored = sample("GET", "/x?a=%zz&q=%3Cscript%3E", &[], None);
    let insp = w.inspect_sample(&scored, &policy);
    // The raw query is looked at before the arguments, so the weaker rule matched first.
    assert_eq!(&*insp.hits[0].id, "odd-encoding");
    assert_eq!(insp.lead_category(), Some("xss"));
    let only_encoding = sample("GET", "/x?a=%zz", &[], None);
    assert_eq!(
        w.inspect_sample(&only_encoding, &policy).lead_category(),
        Some("protocol")
    );
    let blocked = sample("GET", "/x?q=%3Cscript%3E&kill=1", &[], None);
    assert_eq!(
        w.inspect_sample(&blocked, &policy).lead_category(),
        Some("policy")
    );
    let clean = sample("GET", "/x?q=hello", &[], None);
    assert_eq!(w.inspect_sample(&clean, &policy).lead_category(), None);
}
