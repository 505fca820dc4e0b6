//! The WAF engine: YAML rules compiled into matchers, run over the parts of a request, scored
//! against an anomaly threshold.
//!
//! Pure: no Pingora types. It takes a [`RequestView`] (and a body) and returns an
//! [`Inspection`], so it can be unit-tested, fuzzed and benchmarked on its own.
//!
//! - [`schema`]: the rule file format; [`ruleset`]: loading and validation with located errors.
//! - [`target`], [`parse`]: which request parts rules look at and how a request is split into them.
//! - [`transform`], [`operator`]: normalisations and matching operators.
//! - [`matcher`]: per paranoia level, rules grouped into regex sets and phrase automata;
//!   `memo`: its verdicts on header values, kept from request to request.
//! - [`policy`]: per-route mode, threshold, exclusions and body limits.

pub mod builtin;
pub mod condition;
pub mod inspection;
pub mod matcher;
mod memo;
pub mod operator;
pub mod parse;
pub mod policy;
pub mod profile;
pub mod ruleset;
pub mod sample;
pub mod schema;
pub mod target;
mod texts;
pub mod transform;
mod trie;

use std::path::PathBuf;

pub use inspection::{Hit, Inspection};
pub use matcher::Matcher;
pub use parse::{
    body_text, decode_body, CodingError, Exceeded, ParseLimits, RequestView, DECODED_CODINGS,
};
pub use policy::{Exclusion, Mode, OnBodyLimit, WafPolicy};
pub use ruleset::{Action, Rule, RuleSet};
pub use sample::SampleRequest;

/// Rules compiled for the paranoia levels a config uses.
pub struct Waf {
    /// The validated rules.
    pub rules: RuleSet,
    matchers: Vec<(u8, Matcher)>,
    /// Limits on body parsing.
    pub limits: ParseLimits,
}

/// The result of one inline rule test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    /// Rule id.
    pub rule: String,
    /// Rule file.
    pub file: PathBuf,
    /// Line of the test case.
    pub line: usize,
    /// Whether the rule had to match.
    pub expect_match: bool,
    /// Whether it behaved as expected.
    pub passed: bool,
    /// What happened, when it did not.
    pub detail: String,
}

impl Waf {
    /// Compiles matchers for each paranoia level in `levels`.
    pub fn build(rules: RuleSet, levels: &[u8]) -> Result<Waf, String> {
        let mut matchers = Vec::new();
        let mut lv: Vec<u8> = levels.to_vec();
        lv.sort_unstable();
        lv.dedup();
        for l in lv {
            matchers.push((l, Matcher::build(&rules, l)?));
        }
        Ok(Waf {
            rules,
            matchers,
            limits: ParseLimits::default(),
        })
    }

    fn matcher(&self, paranoia: u8) -> Option<&Matcher> {
        self.matchers
            .iter()
            .find(|(l, _)| *l == paranoia)
            .map(|(_, m)| m)
    }

    /// Inspects the request line and headers.
    pub fn inspect_head(&self, req: &RequestView<'_>, policy: &WafPolicy, out: &mut Inspection) {
        let Some(m) = self.matcher(policy.paranoia) else {
            return;
        };
        let mut items = Vec::with_capacity(32);
        parse::head_items(req, &self.limits, &mut items);
        m.inspect(&self.rules, &items, &|r, i| policy.excluded(r, i), out);
    }

    /// Inspects a buffered body. When the body goes past a [`ParseLimits`] entry, what was
    /// found up to there is inspected and the entry is returned.
    pub fn inspect_body(
        &self,
        method: &str,
        content_type: Option<&str>,
        body: &str,
        policy: &WafPolicy,
        out: &mut Inspection,
    ) -> Result<(), Exceeded> {
        let Some(m) = self.matcher(policy.paranoia) else {
            return Ok(());
        };
        if body.is_empty() {
            return Ok(());
        }
        let mut items = Vec::with_capacity(16);
        let parsed =
            parse::request_body_items(method, content_type, body, &self.limits, &mut items);
        m.inspect(&self.rules, &items, &|r, i| policy.excluded(r, i), out);
        parsed.map(|_| ())
    }

    /// Inspects a whole in-memory request.
    pub fn inspect_sample(&self, s: &SampleRequest, policy: &WafPolicy) -> Inspection {
        let mut out = Inspection::default();
        let names = s.header_names();
        let view = s.view_with(&names);
        self.inspect_head(&view, policy, &mut out);
        if let Some(b) = &s.body {
            // Past a limit, what was found up to it is what counts here.
            let _ = self.inspect_body(&s.method, s.content_type(), b, policy, &mut out);
        }
        out
    }

    /// Runs every inline test (needs a matcher at paranoia 4, which holds every rule).
    pub fn run_tests(&self) -> Vec<TestOutcome> {
        let policy = WafPolicy {
            paranoia: 4,
            ..WafPolicy::default()
        };
        self.rules
            .tests
            .iter()
            .map(|t| {
                let rule = &self.rules.rules[t.rule];
                let (passed, detail) = match SampleRequest::from_test(&t.request) {
                    Err(e) => (false, e),
                    Ok(s) => {
                        let insp = self.inspect_sample(&s, &policy);
                        let matched = insp.hits.iter().any(|h| h.rule == t.rule);
                        let detail = if matched == t.expect_match {
                            String::new()
                        } else if matched {
                            let targets = insp
                                .hits
                                .iter()
                                .find(|h| h.rule == t.rule)
                                .map(|h| h.targets.join(", "))
                                .unwrap_or_default();
                            format!("matched ({targets}) but must not")
                        } else {
                            "did not match but must".to_string()
                        };
                        (matched == t.expect_match, detail)
                    }
                };
                TestOutcome {
                    rule: rule.id.to_string(),
                    file: rule.file.clone(),
                    line: t.line,
                    expect_match: t.expect_match,
                    passed,
                    detail,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod set_tests;
#[cfg(test)]
mod tests;
