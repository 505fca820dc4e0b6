//! The matcher for one paranoia level: rules grouped by target kind and transform chain, with
//! all regexes of a group in one `RegexSet` and all phrases in one Aho-Corasick automaton, so
//! each value is transformed once per chain and scanned once per group, however many rules
//! there are.
//!
//! Regexes match bytes with Unicode classes off (`\w`, `\s`, `.` are ASCII/byte-wise), as PCRE
//! does in other WAFs: automata stay small and fast. A rule can opt in with `(?u)`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::operator::Operator;
use super::ruleset::{Action, Rule, RuleSet, REGEX_SIZE_LIMIT};
use super::target::{Item, KINDS};
use super::transform::apply_chain;

/// Size limit of one compiled regex set.
const SET_SIZE_LIMIT: usize = 64 * 1024 * 1024;
/// Lazy-DFA cache limit of one regex set.
const DFA_SIZE_LIMIT: usize = 16 * 1024 * 1024;

enum Single {
    Op,
    Regex(Regex),
    Phrases(AhoCorasick),
}

struct Group {
    set: Option<RegexSet>,
    set_rules: Vec<usize>,
    ac: Option<AhoCorasick>,
    ac_rules: Vec<usize>,
    single: Vec<(usize, Single)>,
}

/// Compiled rules of one paranoia level.
pub struct Matcher {
    /// Per target kind (by discriminant): the chains that apply and their groups.
    by_kind: Vec<Vec<(usize, Arc<Group>)>>,
}

/// One rule that matched, with the targets it matched in.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Index in [`RuleSet::rules`].
    pub rule: usize,
    /// Rule id.
    pub id: Arc<str>,
    /// Rule category.
    pub category: Arc<str>,
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
    fn record(&mut self, idx: usize, rule: &Rule, item: &Item<'_>) {
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
            targets: vec![item.label()],
        });
        match rule.action {
            Action::Score => self.score += rule.severity,
            Action::Block => self.block = true,
            Action::Allow => self.allow = true,
            Action::Log => {}
        }
    }

    /// Whether rule `id` matched.
    pub fn matched(&self, id: &str) -> bool {
        self.hits.iter().any(|h| &*h.id == id)
    }
}

impl Matcher {
    /// Compiles the rules of `rs` that run at `paranoia`.
    pub fn build(rs: &RuleSet, paranoia: u8) -> Result<Matcher, String> {
        let mut groups: HashMap<Vec<usize>, Arc<Group>> = HashMap::new();
        let mut by_kind = Vec::with_capacity(KINDS.len());
        for (_, kind) in KINDS {
            let mut per_chain = Vec::new();
            for chain in 0..rs.chains.len() {
                let rules: Vec<usize> = rs
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| {
                        r.paranoia <= paranoia
                            && r.chain == chain
                            && r.targets.iter().any(|t| t.kind == *kind)
                    })
                    .map(|(i, _)| i)
                    .collect();
                if rules.is_empty() {
                    continue;
                }
                let group = match groups.get(&rules) {
                    Some(g) => g.clone(),
                    None => {
                        let g = Arc::new(build_group(rs, &rules)?);
                        groups.insert(rules, g.clone());
                        g
                    }
                };
                per_chain.push((chain, group));
            }
            // Index by discriminant so lookups need no search.
            let idx = *kind as usize;
            if by_kind.len() <= idx {
                by_kind.resize_with(idx + 1, Vec::new);
            }
            by_kind[idx] = per_chain;
        }
        Ok(Matcher { by_kind })
    }

    /// Runs the rules over `items`, skipping matches that `excluded` rejects.
    pub fn inspect(
        &self,
        rs: &RuleSet,
        items: &[Item<'_>],
        excluded: &dyn Fn(&Rule, &Item<'_>) -> bool,
        out: &mut Inspection,
    ) {
        let mut cache: Vec<Option<Cow<'_, str>>> = vec![None; rs.chains.len()];
        for item in items {
            let Some(groups) = self.by_kind.get(item.kind as usize) else {
                continue;
            };
            if groups.is_empty() {
                continue;
            }
            cache.iter_mut().for_each(|c| *c = None);
            for (chain, group) in groups {
                let v: &str = cache[*chain]
                    .get_or_insert_with(|| apply_chain(&rs.chains[*chain], &item.value));
                let mut hit = |r: usize| {
                    let rule = &rs.rules[r];
                    if rule.targets.iter().any(|t| t.selects(item)) && !excluded(rule, item) {
                        out.record(r, rule, item);
                    }
                };
                if let Some(set) = &group.set {
                    for i in set.matches(v.as_bytes()).iter() {
                        hit(group.set_rules[i]);
                    }
                }
                if let Some(ac) = &group.ac {
                    let mut last = usize::MAX;
                    for m in ac.find_overlapping_iter(v) {
                        let r = group.ac_rules[m.pattern().as_usize()];
                        if r != last {
                            hit(r);
                            last = r;
                        }
                    }
                }
                for (r, single) in &group.single {
                    let rule = &rs.rules[*r];
                    let m = match single {
                        Single::Op => rule.operator.eval(v),
                        Single::Regex(re) => re.is_match(v.as_bytes()),
                        Single::Phrases(ac) => ac.is_match(v),
                    };
                    if m != rule.negate {
                        hit(*r);
                    }
                }
            }
        }
    }
}

fn build_group(rs: &RuleSet, rules: &[usize]) -> Result<Group, String> {
    let mut patterns = Vec::new();
    let mut set_rules = Vec::new();
    let mut phrases = Vec::new();
    let mut ac_rules = Vec::new();
    let mut single = Vec::new();
    for &r in rules {
        let rule = &rs.rules[r];
        match (&rule.operator, rule.negate) {
            (Operator::Regex(p), false) => {
                patterns.push(p.as_str());
                set_rules.push(r);
            }
            (Operator::Phrases(list), false) => {
                for p in list {
                    phrases.push(p.as_str());
                    ac_rules.push(r);
                }
            }
            (Operator::Regex(p), true) => {
                let re = regex::bytes::RegexBuilder::new(p)
                    .unicode(false)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("rule {}: {e}", rule.id))?;
                single.push((r, Single::Regex(re)));
            }
            (Operator::Phrases(list), true) => {
                let ac = AhoCorasick::new(list).map_err(|e| format!("rule {}: {e}", rule.id))?;
                single.push((r, Single::Phrases(ac)));
            }
            _ => single.push((r, Single::Op)),
        }
    }
    let set = if patterns.is_empty() {
        None
    } else {
        Some(
            RegexSetBuilder::new(&patterns)
                .unicode(false)
                .size_limit(SET_SIZE_LIMIT)
                .dfa_size_limit(DFA_SIZE_LIMIT)
                .build()
                .map_err(|e| format!("compiling {} regexes together: {e}", patterns.len()))?,
        )
    };
    let ac = if phrases.is_empty() {
        None
    } else {
        Some(AhoCorasick::new(&phrases).map_err(|e| format!("compiling phrase lists: {e}"))?)
    };
    Ok(Group {
        set,
        set_rules,
        ac,
        ac_rules,
        single,
    })
}
