//! Loading and validating rule files into a [`RuleSet`]: every problem is reported with its
//! `file:line:col` and field path, all at once.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::operator::{compile_operator, Operator};
use super::schema::{RuleEntry, RuleFile, SeverityFile, TestRequest};
use super::target::TargetSpec;
use super::transform::Transform;
use crate::config::source::{Diagnostics, SourceDoc};

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Adds its severity to the anomaly score.
    Score,
    /// Blocks the request whatever the score.
    Block,
    /// Only recorded in the log.
    Log,
    /// Lets the request through, skipping the WAF's verdict.
    Allow,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id.
    pub id: Arc<str>,
    /// What it detects.
    pub description: String,
    /// Category (metric label).
    pub category: Arc<str>,
    /// Tags.
    pub tags: Vec<String>,
    /// Targets.
    pub targets: Vec<TargetSpec>,
    /// Index of the transform chain in [`RuleSet::chains`].
    pub chain: usize,
    /// Operator.
    pub operator: Operator,
    /// Whether the result is negated.
    pub negate: bool,
    /// Anomaly points.
    pub severity: u32,
    /// Paranoia level from which the rule runs.
    pub paranoia: u8,
    /// Action on match.
    pub action: Action,
    /// Further conditions, all of which must hold (on head targets only).
    pub conditions: Vec<super::condition::Condition>,
    /// Where the rule is defined.
    pub file: PathBuf,
    /// Line of the rule.
    pub line: usize,
}

/// An inline test case of a rule.
#[derive(Debug, Clone)]
pub struct RuleTest {
    /// Index of the rule in [`RuleSet::rules`].
    pub rule: usize,
    /// Whether the rule must match.
    pub expect_match: bool,
    /// The request.
    pub request: TestRequest,
    /// Line of the test case.
    pub line: usize,
}

/// All rules of a config, validated, with their distinct transform chains.
#[derive(Debug, Default)]
pub struct RuleSet {
    /// Rules in load order.
    pub rules: Vec<Rule>,
    /// Distinct transform chains.
    pub chains: Vec<Vec<Transform>>,
    /// Inline tests.
    pub tests: Vec<RuleTest>,
    /// Every file read (rule and phrase files), for reload watching.
    pub files: Vec<PathBuf>,
}

/// Rule files under `paths`: files as given, directories' `*.yaml`/`*.yml` sorted by name.
pub fn rule_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, (PathBuf, String)> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p)
                .map_err(|e| (p.clone(), format!("cannot read directory: {e}")))?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err((p.clone(), "no such file or directory".into()));
        }
    }
    Ok(out)
}

/// Where a rule file comes from.
#[derive(Debug, Clone)]
pub enum RuleSource {
    /// A file on disk (watched for changes).
    File(PathBuf),
    /// A file held in memory: the shipped rules compiled into the binary, or text from a tool
    /// (the fuzzer).
    Embedded {
        /// Name used in diagnostics.
        name: PathBuf,
        /// Contents.
        text: std::borrow::Cow<'static, str>,
    },
}

/// Loads and validates rule files from disk; returns `None` when any problem was recorded.
pub fn load(files: &[PathBuf], diags: &mut Diagnostics) -> Option<RuleSet> {
    let sources: Vec<RuleSource> = files.iter().cloned().map(RuleSource::File).collect();
    load_sources(&sources, diags)
}

/// Loads and validates rule files; returns `None` when any problem was recorded.
pub fn load_sources(sources: &[RuleSource], diags: &mut Diagnostics) -> Option<RuleSet> {
    let mut rs = RuleSet::default();
    let mut ids: HashMap<Arc<str>, (PathBuf, usize)> = HashMap::new();
    let before = diags.len();
    for src in sources {
        let parsed = match src {
            RuleSource::File(f) => {
                rs.files.push(f.clone());
                SourceDoc::read(f)
            }
            RuleSource::Embedded { name, text } => SourceDoc::parse(name.clone(), text),
        };
        let doc = match parsed {
            Ok(d) => d,
            Err(d) => {
                diags.push(*d);
                continue;
            }
        };
        let f = doc.file.clone();
        let Some(file) = doc.deserialize::<RuleFile>(diags) else {
            continue;
        };
        for (i, entry) in file.rules.into_iter().enumerate() {
            let base = format!("rules[{i}]");
            let Some(entry) = doc.take(entry, &base, diags) else {
                continue;
            };
            if let Some(rule) =
                compile_rule(&doc, &base, entry, file.category.as_deref(), &mut rs, diags)
            {
                match ids.get(&rule.id) {
                    Some((other, line)) => diags.push(doc.diag(
                        &format!("{base}.id"),
                        format!(
                            "duplicate rule id {:?} (also at {}:{line})",
                            &*rule.id,
                            other.display()
                        ),
                    )),
                    None => {
                        ids.insert(rule.id.clone(), (f.clone(), rule.line));
                    }
                }
                rs.rules.push(rule);
            }
        }
    }
    (diags.len() == before).then_some(rs)
}

fn compile_rule(
    doc: &SourceDoc,
    base: &str,
    e: RuleEntry,
    file_category: Option<&str>,
    rs: &mut RuleSet,
    diags: &mut Diagnostics,
) -> Option<Rule> {
    let before = diags.len();
    let mut err = |path: &str, msg: String| diags.push(doc.diag(&format!("{base}.{path}"), msg));
    let id = e.id.as_text();
    if id.trim().is_empty() || id.len() > 64 || id.contains(char::is_whitespace) {
        err(
            "id",
            format!("{id:?} must be 1-64 characters without spaces"),
        );
    }
    if e.targets.is_empty() {
        err("targets", "at least one target is required".into());
    }
    let head_only = (!e.conditions.is_empty())
        .then_some("a rule with `and` conditions looks at the request line and headers only");
    let targets = parse_targets(&e.targets, head_only, &mut err);
    let chain = parse_transforms(&e.transforms, &mut err);
    let severity = match &e.severity {
        SeverityFile::Points(p) => *p,
        SeverityFile::Named(n) => match n.as_str() {
            "critical" => 5,
            "error" => 4,
            "warning" => 3,
            "notice" => 2,
            other => {
                err("severity", format!("unknown severity {other:?}; use critical, error, warning, notice or a number"));
                0
            }
        },
    };
    if !(1..=4).contains(&e.paranoia) {
        err(
            "paranoia",
            format!("{} is not a paranoia level (1-4)", e.paranoia),
        );
    }
    let action = match e.action.as_str() {
        "score" => Action::Score,
        "block" => Action::Block,
        "log" => Action::Log,
        "allow" => Action::Allow,
        other => {
            err(
                "action",
                format!("unknown action {other:?}; use score, block, log or allow"),
            );
            Action::Log
        }
    };
    let operator = compile_operator(doc, &e.operator, &mut err, &mut rs.files);
    let mut conditions = Vec::new();
    for (i, c) in e.conditions.iter().enumerate() {
        if let Some(c) =
            super::condition::compile(doc, &format!("and[{i}]"), c, &mut err, &mut rs.files)
        {
            conditions.push(c);
        }
    }
    if diags.len() != before {
        return None;
    }
    let operator = operator?;
    let chain_idx = match rs.chains.iter().position(|c| *c == chain) {
        Some(i) => i,
        None => {
            rs.chains.push(chain);
            rs.chains.len() - 1
        }
    };
    let rule_idx = rs.rules.len();
    if let Some(tests) = e.tests {
        for (kind, list, expect) in [
            ("match", tests.must_match, true),
            ("no_match", tests.no_match, false),
        ] {
            for (i, request) in list.into_iter().enumerate() {
                let (line, _) = doc.position(&format!("{base}.tests.{kind}[{i}]"));
                rs.tests.push(RuleTest {
                    rule: rule_idx,
                    expect_match: expect,
                    request,
                    line,
                });
            }
        }
    }
    let (line, _) = doc.position(base);
    Some(Rule {
        id: id.into(),
        description: e.description,
        category: e
            .category
            .or_else(|| file_category.map(str::to_string))
            .or_else(|| e.tags.first().cloned())
            .unwrap_or_else(|| "other".into())
            .into(),
        tags: e.tags,
        targets,
        chain: chain_idx,
        operator,
        negate: e.negate,
        severity,
        paranoia: e.paranoia,
        action,
        conditions,
        file: doc.file.clone(),
        line,
    })
}

/// Parses a `targets` list, each problem reported at `targets[i]`. With `head_only`, a target in
/// the body is a problem too, explained by that text.
pub(super) fn parse_targets(
    list: &[String],
    head_only: Option<&str>,
    err: &mut impl FnMut(&str, String),
) -> Vec<TargetSpec> {
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match TargetSpec::parse(t) {
            Ok(ts) => {
                for t in ts {
                    if let (Some(why), false) = (head_only, t.kind.in_head()) {
                        err(
                            &format!("targets[{i}]"),
                            format!("{why}; {t} is in the body"),
                        );
                    }
                    out.push(t);
                }
            }
            Err(m) => err(&format!("targets[{i}]"), m),
        }
    }
    out
}

/// Parses a `transforms` list, each problem reported at `transforms[i]`.
pub(super) fn parse_transforms(
    list: &[String],
    err: &mut impl FnMut(&str, String),
) -> Vec<Transform> {
    let mut out = Vec::new();
    for (i, t) in list.iter().enumerate() {
        match Transform::parse(t) {
            Ok(t) => out.push(t),
            Err(m) => err(&format!("transforms[{i}]"), m),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<RuleSet, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("r.yaml");
        std::fs::write(&f, text).unwrap();
        let mut d = Diagnostics::default();
        load(&[f], &mut d).ok_or(d)
    }

    #[test]
    fn every_problem_is_located() {
        let d = load_text(
            "rules:\n  - id: 1\n    description: a\n    targets: [args]\n    transforms: [url-decode, urldecod]\n    operator: { regex: 'a(' }\n  - id: 1\n    description: dup\n    targets: [argz]\n    operator: { sqli: true }\n    severity: huge\n",
        )
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = d.lines().collect();
        assert!(lines[0].ends_with("r.yaml:5:30: rules[0].transforms[1]: unknown transform \"urldecod\" (did you mean \"url-decode\"?)"), "{d}");
        assert!(
            lines[1].contains(":6:17: rules[0].operator.regex: invalid regex"),
            "{d}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("rules[1].targets[0]: unknown target \"argz\"")),
            "{d}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("rules[1].severity: unknown severity \"huge\"")),
            "{d}"
        );
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let rule =
            "  - id: x1\n    description: a\n    targets: [args]\n    operator: { contains: a }\n";
        let d = load_text(&format!("rules:\n{rule}{rule}"))
            .unwrap_err()
            .to_string();
        assert!(d.contains("rules[1].id: duplicate rule id \"x1\""), "{d}");
    }

    #[test]
    fn conditions_are_checked_and_kept_to_the_head() {
        let d = load_text(
            "rules:\n  - id: a\n    description: a\n    targets: [json]\n    operator: { contains: x }\n    and:\n      - targets: [body, argz]\n        transforms: [lowercas]\n        operator: { regex: 'a(' }\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "rules[0].targets[0]: a rule with `and` conditions looks at the request line and headers only; json is in the body",
            "rules[0].and[0].targets[0]: conditions look at the request line and headers only; body is in the body",
            "rules[0].and[0].targets[1]: unknown target \"argz\"",
            "rules[0].and[0].transforms[0]: unknown transform \"lowercas\"",
            "rules[0].and[0].operator.regex: invalid regex",
        ] {
            assert!(d.contains(want), "missing {want:?} in:\n{d}");
        }
        let rs = load_text(
            "rules:\n  - id: a\n    description: a\n    targets: [method]\n    operator: { equals: GET }\n    and:\n      - { targets: [\"headers:x-a\"], operator: { phrases: [one, two] } }\n      - { targets: [query], operator: { length_gt: 3 }, negate: true }\n",
        )
        .unwrap();
        assert_eq!(rs.rules[0].conditions.len(), 2);
        assert!(rs.rules[0].conditions[1].negate);
    }

    #[test]
    fn chains_are_shared() {
        let rs = load_text(
            "rules:\n  - { id: a, description: a, targets: [args], transforms: [lowercase], operator: { contains: x } }\n  - { id: b, description: b, targets: [args], transforms: [lowercase], operator: { contains: y } }\n  - { id: c, description: c, targets: [args], operator: { contains: z } }\n",
        )
        .unwrap();
        assert_eq!(rs.chains.len(), 2);
        assert_eq!(rs.rules[0].chain, rs.rules[1].chain);
    }
}
