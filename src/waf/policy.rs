//! Per-route WAF policy: mode, paranoia level, anomaly threshold, exclusions and body handling.

use super::inspection::Inspection;
use super::ruleset::Rule;
use super::target::{Item, TargetSpec};

/// What the WAF does with its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Refuse requests at or above the threshold (403).
    Block,
    /// Log and count what would have been blocked; never refuse.
    Detect,
    /// Do not inspect.
    Off,
}

/// What happens to a body larger than the inspection limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBodyLimit {
    /// 413.
    Reject,
    /// Forwarded without body inspection (counted).
    Pass,
}

/// Silences some rules, optionally only for some targets.
#[derive(Debug, Clone, PartialEq)]
pub struct Exclusion {
    /// Rule ids.
    pub ids: Vec<String>,
    /// Rule tags (`tag:sqli` in config).
    pub tags: Vec<String>,
    /// Only these targets; empty = every target.
    pub targets: Vec<TargetSpec>,
}

impl Exclusion {
    fn applies(&self, rule: &Rule, item: &Item<'_>) -> bool {
        let rule_selected = self.ids.iter().any(|i| **i == *rule.id)
            || self
                .tags
                .iter()
                .any(|t| rule.tags.contains(t) || **t == *rule.category);
        rule_selected && (self.targets.is_empty() || self.targets.iter().any(|t| t.selects(item)))
    }
}

/// The WAF settings of one route.
#[derive(Debug, Clone, PartialEq)]
pub struct WafPolicy {
    /// Block, detect or off.
    pub mode: Mode,
    /// Paranoia level 1–4.
    pub paranoia: u8,
    /// Anomaly score at which a request is blocked.
    pub threshold: u32,
    /// Exclusions that apply on this route.
    pub exclusions: Vec<Exclusion>,
    /// Largest body inspected, in bytes.
    pub body_limit: usize,
    /// What to do with larger bodies.
    pub on_body_limit: OnBodyLimit,
}

impl Default for WafPolicy {
    fn default() -> Self {
        WafPolicy {
            mode: Mode::Block,
            paranoia: 1,
            threshold: 5,
            exclusions: Vec::new(),
            body_limit: 1024 * 1024,
            on_body_limit: OnBodyLimit::Reject,
        }
    }
}

impl WafPolicy {
    /// Whether a match of `rule` on `item` is silenced.
    pub fn excluded(&self, rule: &Rule, item: &Item<'_>) -> bool {
        self.exclusions.iter().any(|e| e.applies(rule, item))
    }

    /// Whether the inspection result means "block" (before the mode is applied).
    pub fn over_threshold(&self, insp: &Inspection) -> bool {
        !insp.allow && (insp.block || insp.score >= self.threshold)
    }
}
