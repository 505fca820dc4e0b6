//! `and:` conditions of a rule: further checks, each on its own targets, that must all hold for
//! the rule to match. They look at the request line and headers only, so a rule with conditions
//! is decided before the body is read.

use std::path::PathBuf;

use super::operator::{compile_operator, Operator};
use super::ruleset::{parse_targets, parse_transforms};
use super::schema::ConditionEntry;
use super::target::{Item, TargetSpec};
use super::transform::Transform;
use crate::config::source::SourceDoc;

/// A further condition of a rule, compiled.
#[derive(Debug, Clone)]
pub struct Condition {
    /// Targets.
    pub targets: Vec<TargetSpec>,
    /// Transform chain.
    pub transforms: Vec<Transform>,
    /// How a value is matched.
    pub test: ConditionTest,
    /// Holds when a selected value does not match.
    pub negate: bool,
}

/// The operator of a [`Condition`], ready to run.
#[derive(Debug, Clone)]
pub enum ConditionTest {
    /// A compiled regex.
    Regex(regex::bytes::Regex),
    /// A compiled phrase list.
    Phrases(aho_corasick::AhoCorasick),
    /// Any other operator.
    Op(Operator),
}

impl Condition {
    /// Whether the condition holds for a request broken into `items`: some value its targets
    /// select (empty values aside, as for the rule itself) matches, or with `negate` does not.
    pub fn holds(&self, items: &[Item<'_>]) -> bool {
        items.iter().any(|item| {
            if item.value.is_empty() || !self.targets.iter().any(|t| t.selects(item)) {
                return false;
            }
            let v = super::transform::apply_chain(&self.transforms, &item.value);
            let m = match &self.test {
                ConditionTest::Regex(re) => re.is_match(v.as_bytes()),
                ConditionTest::Phrases(ac) => ac.is_match(v.as_ref()),
                ConditionTest::Op(op) => op.eval(&v),
            };
            m != self.negate
        })
    }
}

/// Compiles condition `base` (`and[i]`) of a rule. Problems are reported through `err`; the
/// rule is then refused as a whole.
pub(super) fn compile(
    doc: &SourceDoc,
    base: &str,
    c: &ConditionEntry,
    err: &mut impl FnMut(&str, String),
    files: &mut Vec<PathBuf>,
) -> Option<Condition> {
    let mut err = |path: &str, msg: String| err(&format!("{base}.{path}"), msg);
    if c.targets.is_empty() {
        err("targets", "at least one target is required".into());
    }
    let targets = parse_targets(
        &c.targets,
        Some("conditions look at the request line and headers only"),
        &mut err,
    );
    let transforms = parse_transforms(&c.transforms, &mut err);
    let test = match compile_operator(doc, &c.operator, &mut err, files)? {
        Operator::Regex(r) => ConditionTest::Regex(r.re),
        Operator::Phrases(list) => match aho_corasick::AhoCorasick::new(&list) {
            Ok(ac) => ConditionTest::Phrases(ac),
            Err(e) => {
                err("operator.phrases", e.to_string());
                return None;
            }
        },
        op => ConditionTest::Op(op),
    };
    Some(Condition {
        targets,
        transforms,
        test,
        negate: c.negate,
    })
}
