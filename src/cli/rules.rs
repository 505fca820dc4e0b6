//! `portcullis rules test`: inline rule tests, offline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use portcullis::config::Diagnostics;
use portcullis::waf::ruleset::{self, RuleSource};

/// Rule sources for `paths`; with none, `./rules` when it exists, else the shipped rules.
pub fn sources(paths: &[PathBuf]) -> Result<Vec<RuleSource>, String> {
    if paths.is_empty() && !Path::new("rules").is_dir() {
        return Ok(portcullis::waf::builtin::sources());
    }
    let default = [PathBuf::from("rules")];
    let paths = if paths.is_empty() {
        &default[..]
    } else {
        paths
    };
    ruleset::rule_files(paths)
        .map(|f| f.into_iter().map(RuleSource::File).collect())
        .map_err(|(p, m)| format!("{}: {m}", p.display()))
}

/// Loads rules, printing every problem; `None` when there is any.
pub fn load(paths: &[PathBuf]) -> Option<ruleset::RuleSet> {
    let sources = match sources(paths) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    let mut diags = Diagnostics::default();
    let rs = ruleset::load_sources(&sources, &mut diags);
    if rs.is_none() {
        println!("{diags}");
        eprintln!("{} problem(s) in the rule files", diags.len());
    }
    rs
}

/// Runs every inline test; exit 1 on failures, problems, or rules without a `match` case.
pub fn test(paths: &[PathBuf]) -> ExitCode {
    let Some(rs) = load(paths) else {
        return ExitCode::FAILURE;
    };
    let rules = rs.rules.len();
    let untested: Vec<String> = rs
        .rules
        .iter()
        .enumerate()
        .filter(|(i, _)| !rs.tests.iter().any(|t| t.rule == *i && t.expect_match))
        .map(|(_, r)| r.id.to_string())
        .collect();
    let waf = match portcullis::waf::Waf::build(rs, &[4]) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot compile the rules: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcomes = waf.run_tests();
    let failed: Vec<_> = outcomes.iter().filter(|o| !o.passed).collect();
    for f in &failed {
        println!(
            "FAIL {}:{}: rule {}: {} case: {}",
            f.file.display(),
            f.line,
            f.rule,
            if f.expect_match { "match" } else { "no_match" },
            f.detail
        );
    }
    if !untested.is_empty() {
        println!("rules without a `match` test: {}", untested.join(", "));
    }
    println!(
        "{rules} rules, {} tests, {} failed",
        outcomes.len(),
        failed.len()
    );
    if failed.is_empty() && untested.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Prints the rules that match one request and its score.
pub fn try_request(
    line: &str,
    headers: &[String],
    body: Option<String>,
    paths: &[PathBuf],
    paranoia: u8,
) -> ExitCode {
    let Some((method, target)) = line.split_once(' ') else {
        eprintln!("{line:?} is not \"METHOD /target\"");
        return ExitCode::FAILURE;
    };
    let Some(rs) = load(paths) else {
        return ExitCode::FAILURE;
    };
    let waf = match portcullis::waf::Waf::build(rs, &[paranoia]) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let mut s = portcullis::waf::SampleRequest::from_target(method, target.trim());
    for h in headers {
        match h.split_once(':') {
            Some((k, v)) => s.headers.push((k.trim().to_string(), v.trim().to_string())),
            None => {
                eprintln!("{h:?} is not \"Name: value\"");
                return ExitCode::FAILURE;
            }
        }
    }
    s.body = body;
    let policy = portcullis::waf::WafPolicy {
        paranoia,
        ..portcullis::waf::WafPolicy::default()
    };
    let insp = waf.inspect_sample(&s, &policy);
    for h in &insp.hits {
        let r = &waf.rules.rules[h.rule];
        println!(
            "{} [{} pl{} +{}] {} — {}",
            h.id,
            h.category,
            r.paranoia,
            r.severity,
            h.targets.join(", "),
            r.description
        );
    }
    println!(
        "score {} (threshold {}): {}",
        insp.score,
        policy.threshold,
        if policy.over_threshold(&insp) {
            "BLOCK"
        } else {
            "pass"
        }
    );
    ExitCode::SUCCESS
}
