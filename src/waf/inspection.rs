//! What the WAF found in a request: the rules that matched, where, and the verdict they add up
//! to.

use std::sync::Arc;

use super::ruleset::{Action, Rule};
use super::target::Item;

/// One rule that matched, with the targets it matched in.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index in [`RuleSet::rules`].
    pub rule: usize,
    /// Rule id.
    pub id: Arc<str>,
    /// Rule category.
    pub category: Arc<str>,
    /// Anomaly points the rule added (0 unless its action is `score`).
    pub points: u32,
    /// The rule's action is `block`.
    pub blocks: bool,
    /// Up to three `kind:name` labels of the values that matched.
    pub targets: Vec<String>,
}

/// What the WAF found in a request.
#[derive(Debug, Clone, Default)]
pub struct Inspection {
    /// Anomaly score: the severities of the distinct scoring rules that matched.
    pub score: u32,
    /// Rules that matched, in order of first match.
    pub hits: Vec<Hit>,
    /// A rule with action `block` matched.
    pub block: bool,
    /// A rule with action `allow` matched.
    pub allow: bool,
}

impl Inspection {
    pub(super) fn record(&mut self, idx: usize, rule: &Rule, item: &Item<'_>) {
        if let Some(h) = self.hits.iter_mut().find(|h| h.rule == idx) {
            if h.targets.len() < 3 {
                let label = item.label();
                if !h.targets.contains(&label) {
                    h.targets.push(label);
                }
            }
            return;
        }
        self.hits.push(Hit {
            rule: idx,
            id: rule.id.clone(),
            category: rule.category.clone(),
            points: if rule.action == Action::Score {
                rule.severity
            } else {
                0
            },
            blocks: rule.action == Action::Block,
            targets: vec![item.label()],
        });
        match rule.action {
            Action::Score => self.score += rule.severity,
            Action::Block => self.block = true,
            Action::Allow => self.allow = true,
            Action::Log => {}
        }
    }

    /// The category a verdict is counted under: that of a rule whose action is `block` if one
    /// matched, else of the rule that added the most points (the first of equals). A 3-point
    /// encoding anomaly met first does not name a request that four XSS rules scored.
    pub fn lead_category(&self) -> Option<&str> {
        self.hits
            .iter()
            .find(|h| h.blocks)
            .or_else(|| {
                self.hits
                    .iter()
                    .reduce(|best, h| if h.points > best.points { h } else { best })
            })
            .map(|h| &*h.category)
    }

    /// Whether rule `id` matched.
    pub fn matched(&self, id: &str) -> bool {
        self.hits.iter().any(|h| &*h.id == id)
    }
}
