//! The matcher for one paranoia level: rules grouped by target kind and transform chain, with
//! all regexes of a group in one `RegexSet` and all phrases in one Aho-Corasick automaton, so
//! each value is transformed once per chain and scanned once per group, however many rules
//! there are.
//!
//! Regexes match bytes with Unicode classes off (`\w`, `\s`, `.` are ASCII/byte-wise), as PCRE
//! does in other WAFs: automata stay small and fast. A rule can opt in with `(?u)`.

use std::collections::HashMap;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};

use super::operator::Operator;
use super::ruleset::{Action, Rule, RuleSet, REGEX_SIZE_LIMIT};
use super::target::{Item, KINDS};

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
    /// Distinct targets of the group's rules for its kind: an item none of them selects is skipped.
    selectors: Vec<super::target::TargetSpec>,
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
    trie: ChainTrie,
}

/// Transform chains as a prefix tree, so chains that start alike share the work: each prefix
/// is computed once per value.
struct ChainTrie {
    /// (parent node, transform); a node's parent has a smaller index.
    nodes: Vec<(Option<usize>, super::transform::Transform)>,
    /// Final node of each chain (`None`: the empty chain, the raw value).
    chain_end: Vec<Option<usize>>,
}

impl ChainTrie {
    fn new(chains: &[Vec<super::transform::Transform>]) -> ChainTrie {
        let mut nodes: Vec<(Option<usize>, super::transform::Transform)> = Vec::new();
        let mut chain_end = Vec::with_capacity(chains.len());
        for chain in chains {
            let mut at = None;
            for t in chain {
                at = Some(match nodes.iter().position(|(p, x)| *p == at && x == t) {
                    Some(i) => i,
                    None => {
                        nodes.push((at, *t));
                        nodes.len() - 1
                    }
                });
            }
            chain_end.push(at);
        }
        ChainTrie { nodes, chain_end }
    }
}

/// The value of a trie node for one item: unchanged from an earlier node (or the raw value),
/// or a new string.
#[derive(Clone)]
enum NodeValue {
    Pending,
    /// Same text as this node (`None`: the raw value).
    Same(Option<usize>),
    Owned(String),
}

struct Values<'t> {
    trie: &'t ChainTrie,
    nodes: Vec<NodeValue>,
}

impl<'t> Values<'t> {
    fn reset(&mut self) {
        for v in &mut self.nodes {
            *v = NodeValue::Pending;
        }
    }

    /// The node whose text equals `node`'s (`None`: raw value), computing what is missing.
    fn source(&mut self, node: Option<usize>, raw: &str) -> Option<usize> {
        let n = node?;
        match &self.nodes[n] {
            NodeValue::Same(src) => return *src,
            NodeValue::Owned(_) => return Some(n),
            NodeValue::Pending => {}
        }
        let (parent, t) = self.trie.nodes[n];
        let psrc = self.source(parent, raw);
        let input: &str = match psrc {
            None => raw,
            Some(i) => match &self.nodes[i] {
                NodeValue::Owned(s) => s,
                _ => raw,
            },
        };
        match t.transform(input) {
            Some(out) => {
                self.nodes[n] = NodeValue::Owned(out);
                Some(n)
            }
            None => {
                self.nodes[n] = NodeValue::Same(psrc);
                psrc
            }
        }
    }

    fn text<'a>(&'a self, src: Option<usize>, raw: &'a str) -> &'a str {
        match src {
            Some(i) => match &self.nodes[i] {
                NodeValue::Owned(s) => s,
                _ => raw,
            },
            None => raw,
        }
    }
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
        let mut groups: HashMap<(Vec<usize>, super::target::TargetKind), Arc<Group>> =
            HashMap::new();
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
                let key = (rules, *kind);
                let group = match groups.get(&key) {
                    Some(g) => g.clone(),
                    None => {
                        let g = Arc::new(build_group(rs, &key.0, *kind)?);
                        groups.insert(key, g.clone());
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
        Ok(Matcher {
            by_kind,
            trie: ChainTrie::new(&rs.chains),
        })
    }

    /// Runs the rules over `items`, skipping matches that `excluded` rejects.
    pub fn inspect(
        &self,
        rs: &RuleSet,
        items: &[Item<'_>],
        excluded: &dyn Fn(&Rule, &Item<'_>) -> bool,
        out: &mut Inspection,
    ) {
        let mut values = Values {
            trie: &self.trie,
            nodes: vec![NodeValue::Pending; self.trie.nodes.len()],
        };
        for item in items {
            let Some(groups) = self.by_kind.get(item.kind as usize) else {
                continue;
            };
            if groups.is_empty() || item.value.is_empty() {
                continue;
            }
            values.reset();
            for (chain, group) in groups {
                if !group.selectors.iter().any(|t| t.selects(item)) {
                    continue;
                }
                let src = values.source(self.trie.chain_end[*chain], &item.value);
                let v = values.text(src, &item.value);
                let mut hit = |r: usize| {
                    let rule = &rs.rules[r];
                    if rule.targets.iter().any(|t| t.selects(item)) && !excluded(rule, item) {
                        out.record(r, rule, item);
                    }
                };
                if let Some(set) = &group.set {
                    // Most values match nothing: a plain search can stop at the first match,
                    // and only then is the slower all-patterns search needed.
                    if set.is_match(v.as_bytes()) {
                        for i in set.matches(v.as_bytes()).iter() {
                            hit(group.set_rules[i]);
                        }
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

fn build_group(
    rs: &RuleSet,
    rules: &[usize],
    kind: super::target::TargetKind,
) -> Result<Group, String> {
    let mut selectors: Vec<super::target::TargetSpec> = Vec::new();
    for &r in rules {
        for t in &rs.rules[r].targets {
            if t.kind == kind && !selectors.contains(t) {
                selectors.push(t.clone());
            }
        }
    }
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
        selectors,
        set,
        set_rules,
        ac,
        ac_rules,
        single,
    })
}
