//! The matcher for one paranoia level. Per target kind, the regex rules are in `RegexSet`s of a
//! few patterns each, and every phrase in one Aho-Corasick automaton. A value is run through the
//! transform chains its rules use; chains that leave it with the same text share it, so a plain
//! value has one or two texts however many chains there are, and each set scans only the texts
//! its own rules' chains produced. A rule's match counts only on the text its own chain produced,
//! and only for the values its targets select.
//!
//! Regexes match bytes with Unicode classes off (`\w`, `\s`, `.` are ASCII/byte-wise), as PCRE
//! does in other WAFs: automata stay small and fast. A rule can opt in with `(?u)`.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use aho_corasick::AhoCorasick;
use foldhash::fast::RandomState;
use regex::bytes::{Regex, RegexSet, RegexSetBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

use super::inspection::Inspection;
use super::memo::HeadMemo;
use super::operator::Operator;
use super::ruleset::{Rule, RuleSet};
use super::target::{Item, TargetKind, TargetSpec, KINDS};
use super::texts::{Texts, UNSET};
use super::transform::Transform;
use super::trie::ChainTrie;

/// Size limit of one compiled regex set.
const SET_SIZE_LIMIT: usize = 64 * 1024 * 1024;
/// Lazy-DFA cache limit of one regex set.
const DFA_SIZE_LIMIT: usize = 16 * 1024 * 1024;
/// Most patterns in one regex set. A set's lazy DFA tracks all its patterns at once, so its
/// states multiply with each pattern that can be part-way through a match. With all of a target
/// kind's hundred-odd patterns in one set, values it had not seen (ordinary prose as much as
/// attack payloads) made it build states faster than its cache could hold them: 64 KB of JSON
/// prose took 350 ms. Sixteen to a set scan the same body in 7 ms; smaller sets cost more on
/// the values a set has seen before (each set is a scan of its own), larger ones risk the cliff.
const SET_PATTERNS: usize = 16;
/// Most patterns in a set of literal-led patterns (see [`literal_led`]). Such a set finds where a
/// match could start with a literal search and runs its automaton from there only, so it builds
/// few states however many patterns it holds: with the shipped rules plus 1,629 literal-led ones,
/// a request costs 1.2-1.45x the shipped rules alone, where sets of 16 cost 1.7-2.2x.
const LITERAL_SET_PATTERNS: usize = 64;
/// Longest body value whose verdict is kept for values met again in the same request.
const MEMO_VALUE_LEN: usize = 256;

enum Single {
    Op,
    Regex(Regex),
    Phrases(AhoCorasick),
}

/// Rules that matched per (kind, selectors, value) within one request.
type Seen<'a> = HashMap<(usize, Box<[u64]>, &'a str), Vec<usize>, RandomState>;

/// A set of selectors of one kind, one bit each.
type Bits = Box<[u64]>;

fn intersects(a: &[u64], b: &[u64]) -> bool {
    a.iter().zip(b).any(|(x, y)| x & y != 0)
}

/// Everything the rules of one target kind need.
struct KindPlan {
    /// Distinct targets of the kind's rules; bit `i` of a [`Bits`] stands for `selectors[i]`.
    selectors: Vec<TargetSpec>,
    /// For each rule (by index in the rule set), the selectors it has for this kind.
    rule_sel: Vec<Bits>,
    /// Chains the kind's rules use, with the selectors of the rules using each.
    chains: Vec<(usize, Bits)>,
    /// The trie nodes those chains go through, parents first: a value walks them in one pass.
    nodes: Vec<usize>,
    /// The kind's regex rules, [`SET_PATTERNS`] to a set, ordered so that rules whose chains
    /// tend to give the same text share a set.
    sets: Vec<SetPlan>,
    set_rules: Vec<usize>,
    /// Each pattern of `sets` on its own, for the values a set matches: which of its patterns
    /// match is found one small automaton at a time. The set's own overlapping search needs
    /// an automaton tracking every pattern at once, which attack values (each new to it) make
    /// it build state by state, or hand over to the much slower PikeVM when its cache fills.
    set_each: Vec<Regex>,
    ac: Option<AhoCorasick>,
    ac_rules: Vec<usize>,
    single: Vec<(usize, Single)>,
}

/// One regex set of a kind and what it is run on.
struct SetPlan {
    set: RegexSet,
    /// The range of `set_rules` and `set_each` the set holds.
    range: std::ops::Range<usize>,
    /// The chains of its rules: a text no chain of the set produced is not scanned with it.
    chains: Vec<usize>,
    /// The selectors of its rules: a value none of them selects is not scanned with it.
    sel: Bits,
}

/// Compiled rules of one paranoia level.
pub struct Matcher {
    /// Per target kind (by discriminant).
    by_kind: Vec<Option<KindPlan>>,
    trie: ChainTrie,
    /// Verdicts on header values and query and cookie names from earlier requests.
    head_memo: HeadMemo,
}

impl Matcher {
    /// Compiles the rules of `rs` that run at `paranoia`.
    pub fn build(rs: &RuleSet, paranoia: u8) -> Result<Matcher, String> {
        let trie = ChainTrie::new(&rs.chains);
        let mut by_kind: Vec<Option<KindPlan>> = Vec::with_capacity(KINDS.len());
        for (_, kind) in KINDS {
            let rules: Vec<usize> = rs
                .rules
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    r.paranoia <= paranoia && r.targets.iter().any(|t| t.kind == *kind)
                })
                .map(|(i, _)| i)
                .collect();
            let plan = if rules.is_empty() {
                None
            } else {
                Some(build_plan(rs, &trie, &rules, *kind)?)
            };
            // Index by discriminant so lookups need no search.
            let idx = *kind as usize;
            if by_kind.len() <= idx {
                by_kind.resize_with(idx + 1, || None);
            }
            by_kind[idx] = plan;
        }
        Ok(Matcher {
            by_kind,
            trie,
            head_memo: HeadMemo::default(),
        })
    }

    /// Header verdicts this thread keeps.
    #[cfg(test)]
    pub(super) fn head_memo_len(&self) -> usize {
        self.head_memo.len()
    }

    /// Runs the rules over `items`, skipping matches that `excluded` rejects.
    pub fn inspect(
        &self,
        rs: &RuleSet,
        items: &[Item<'_>],
        excluded: &dyn Fn(&Rule, &Item<'_>) -> bool,
        out: &mut Inspection,
    ) {
        let mut tx = Texts::new(&self.trie);
        // Rules that matched each body (kind, selectors, value) seen so far: a value met again
        // (the keys of every object in a JSON array, a repeated small value) is looked at once.
        // Head items rarely repeat within a request, and long values neither: they skip the
        // table. Header values and query and cookie names repeat from request to request
        // instead, and go to the matcher's per-thread table ([`HeadMemo`]). The hasher is randomly seeded, so crafted values
        // cannot make the table slow.
        let mut seen: Seen<'_> = HashMap::default();
        let mut matched = Vec::new();
        // Whether the `and` conditions of a rule hold, per rule, once computed.
        let mut conditions: Vec<(usize, bool)> = Vec::new();
        for item in items {
            let Some(Some(plan)) = self.by_kind.get(item.kind as usize) else {
                continue;
            };
            if item.value.is_empty() {
                continue;
            }
            tx.item_sel.clear();
            tx.item_sel.resize(plan.selectors.len().div_ceil(64), 0);
            for (i, s) in plan.selectors.iter().enumerate() {
                if s.selects(item) {
                    tx.item_sel[i / 64] |= 1 << (i % 64);
                }
            }
            if tx.item_sel.iter().all(|w| *w == 0) {
                continue;
            }
            let rules = if HeadMemo::keeps(item) {
                matched.clear();
                if !self.head_memo.lookup(item, &tx.item_sel, &mut matched) {
                    plan.inspect(self, rs, item, &mut tx, &mut matched);
                    self.head_memo.keep(&matched);
                }
                &matched
            } else if item.kind.in_head() || item.value.len() > MEMO_VALUE_LEN {
                matched.clear();
                plan.inspect(self, rs, item, &mut tx, &mut matched);
                &matched
            } else {
                let key = (
                    item.kind as usize,
                    tx.item_sel.clone().into_boxed_slice(),
                    &*item.value,
                );
                match seen.entry(key) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(new) => {
                        let mut found = Vec::new();
                        plan.inspect(self, rs, item, &mut tx, &mut found);
                        new.insert(found)
                    }
                }
            };
            for &r in rules {
                let rule = &rs.rules[r];
                if !rule.conditions.is_empty() && !conditions_hold(rs, r, items, &mut conditions) {
                    continue;
                }
                if !excluded(rule, item) {
                    out.record(r, rule, item);
                }
            }
        }
    }
}

/// Whether every `and` condition of rule `r` holds on `items`, computed once per request.
fn conditions_hold(
    rs: &RuleSet,
    r: usize,
    items: &[Item<'_>],
    known: &mut Vec<(usize, bool)>,
) -> bool {
    if let Some(&(_, holds)) = known.iter().find(|(k, _)| *k == r) {
        return holds;
    }
    let holds = rs.rules[r].conditions.iter().all(|c| c.holds(items));
    known.push((r, holds));
    holds
}

impl KindPlan {
    fn inspect(
        &self,
        m: &Matcher,
        rs: &RuleSet,
        item: &Item<'_>,
        tx: &mut Texts,
        matched: &mut Vec<usize>,
    ) {
        let raw: &str = &item.value;
        tx.reset(raw);
        tx.walk(&m.trie, &self.nodes, raw);
        for (chain, sel) in &self.chains {
            if intersects(sel, &tx.item_sel) {
                let t = tx.chain_end(&m.trie, *chain);
                tx.chain_text[*chain] = t;
                if !tx.active.contains(&t) {
                    tx.active.push(t);
                }
            }
        }
        let selected = |r: usize| intersects(&self.rule_sel[r], &tx.item_sel);
        let hit = |r: usize, matched: &mut Vec<usize>| {
            if !matched.contains(&r) {
                matched.push(r);
            }
        };
        for &t in &tx.active {
            let v = tx.text(t, raw);
            let on_text = |r: usize| tx.chain_text[rs.rules[r].chain] == t && selected(r);
            for sp in &self.sets {
                if !intersects(&sp.sel, &tx.item_sel)
                    || !sp.chains.iter().any(|&c| tx.chain_text[c] == t)
                {
                    continue;
                }
                // Most values match nothing: a plain search can stop at the first match,
                // and only then is each pattern tried.
                if sp.set.is_match(v.as_bytes()) {
                    let each = self.set_rules[sp.range.clone()]
                        .iter()
                        .zip(&self.set_each[sp.range.clone()]);
                    for (&r, re) in each {
                        if on_text(r) && !matched.contains(&r) && re.is_match(v.as_bytes()) {
                            hit(r, matched);
                        }
                    }
                }
            }
            if let Some(ac) = &self.ac {
                let mut last = usize::MAX;
                for found in ac.find_overlapping_iter(v) {
                    let r = self.ac_rules[found.pattern().as_usize()];
                    if r != last && on_text(r) {
                        hit(r, matched);
                    }
                    last = r;
                }
            }
        }
        for (r, single) in &self.single {
            let rule = &rs.rules[*r];
            let t = tx.chain_text[rule.chain];
            if t == UNSET || !intersects(&self.rule_sel[*r], &tx.item_sel) {
                continue;
            }
            let m = match (single, &rule.operator) {
                (Single::Op, Operator::Sqli) => tx.injection(t, true, raw),
                (Single::Op, Operator::Xss) => tx.injection(t, false, raw),
                (Single::Op, op) => op.eval(tx.text(t, raw)),
                (Single::Regex(re), _) => re.is_match(tx.text(t, raw).as_bytes()),
                (Single::Phrases(ac), _) => ac.is_match(tx.text(t, raw)),
            };
            if m != rule.negate {
                hit(*r, matched);
            }
        }
        // In rule-file order, whatever order the sets, phrases and single rules found them in.
        matched.sort_unstable();
    }
}

fn build_plan(
    rs: &RuleSet,
    trie: &ChainTrie,
    rules: &[usize],
    kind: TargetKind,
) -> Result<KindPlan, String> {
    let mut selectors: Vec<TargetSpec> = Vec::new();
    for &r in rules {
        for t in &rs.rules[r].targets {
            if t.kind == kind && !selectors.contains(t) {
                selectors.push(t.clone());
            }
        }
    }
    let words = selectors.len().div_ceil(64);
    let bits_of = |targets: &[TargetSpec]| -> Bits {
        let mut b = vec![0u64; words];
        for t in targets.iter().filter(|t| t.kind == kind) {
            if let Some(i) = selectors.iter().position(|s| s == t) {
                b[i / 64] |= 1 << (i % 64);
            }
        }
        b.into_boxed_slice()
    };
    let rule_sel: Vec<Bits> = rs.rules.iter().map(|r| bits_of(&r.targets)).collect();
    let mut chains: Vec<(usize, Bits)> = Vec::new();
    for &r in rules {
        let chain = rs.rules[r].chain;
        let at = match chains.iter().position(|(c, _)| *c == chain) {
            Some(at) => at,
            None => {
                chains.push((chain, vec![0u64; words].into_boxed_slice()));
                chains.len() - 1
            }
        };
        for (w, x) in chains[at].1.iter_mut().zip(rule_sel[r].iter()) {
            *w |= x;
        }
    }
    let mut patterns = Vec::new();
    let mut set_rules = Vec::new();
    let mut set_each = Vec::new();
    let mut phrases = Vec::new();
    let mut ac_rules = Vec::new();
    let mut single = Vec::new();
    // Regex rules ordered by chain, those whose chains end in `lowercase` apart from the rest:
    // a value with capitals has a raw and a lowercased text, and a set holding one kind of
    // chain is scanned over one of them only. Literal-led patterns come last, in larger sets.
    let mut ordered: Vec<(bool, bool, usize, usize)> = rules
        .iter()
        .map(|&r| {
            let chain = rs.rules[r].chain;
            let lowered = rs.chains[chain].last() == Some(&Transform::Lowercase);
            let literal = match &rs.rules[r].operator {
                Operator::Regex(p) => literal_led(&p.pattern),
                _ => false,
            };
            (literal, lowered, chain, r)
        })
        .collect();
    // Literal-led patterns get sets of their own only when that means fewer sets to run: a few
    // of them stay with the rest, as cutting them out changes what every other set holds.
    let is_regex =
        |r: usize| matches!(rs.rules[r].operator, Operator::Regex(_)) && !rs.rules[r].negate;
    let led = ordered.iter().filter(|o| o.0 && is_regex(o.3)).count();
    let other = ordered.iter().filter(|o| !o.0 && is_regex(o.3)).count();
    if led.div_ceil(LITERAL_SET_PATTERNS) + other.div_ceil(SET_PATTERNS)
        >= (led + other).div_ceil(SET_PATTERNS)
    {
        for o in &mut ordered {
            o.0 = false;
        }
    }
    ordered.sort_unstable();
    // Index in `patterns` of the first literal-led one.
    let mut literal_from = usize::MAX;
    for &(literal, _, _, r) in &ordered {
        let rule = &rs.rules[r];
        match (&rule.operator, rule.negate) {
            (Operator::Regex(p), false) => {
                if literal && literal_from == usize::MAX {
                    literal_from = patterns.len();
                }
                patterns.push(p.pattern.as_str());
                set_rules.push(r);
                set_each.push(p.re.clone());
            }
            (Operator::Phrases(list), false) => {
                for p in list {
                    phrases.push(p.as_str());
                    ac_rules.push(r);
                }
            }
            (Operator::Regex(p), true) => {
                single.push((r, Single::Regex(p.re.clone())));
            }
            (Operator::Phrases(list), true) => {
                let ac = AhoCorasick::new(list).map_err(|e| format!("rule {}: {e}", rule.id))?;
                single.push((r, Single::Phrases(ac)));
            }
            _ => single.push((r, Single::Op)),
        }
    }
    let mut sets = Vec::new();
    let mut start = 0;
    while start < patterns.len() {
        let range = if start < literal_from {
            start..(start + SET_PATTERNS).min(literal_from).min(patterns.len())
        } else {
            start..(start + LITERAL_SET_PATTERNS).min(patterns.len())
        };
        start = range.end;
        let chunk = &patterns[range.clone()];
        let set = RegexSetBuilder::new(chunk)
            .unicode(false)
            .size_limit(SET_SIZE_LIMIT)
            .dfa_size_limit(DFA_SIZE_LIMIT)
            .build()
            .map_err(|e| format!("compiling {} regexes together: {e}", chunk.len()))?;
        let mut chains: Vec<usize> = Vec::new();
        let mut sel = vec![0u64; words].into_boxed_slice();
        for &r in &set_rules[range.clone()] {
            if !chains.contains(&rs.rules[r].chain) {
                chains.push(rs.rules[r].chain);
            }
            for (w, x) in sel.iter_mut().zip(rule_sel[r].iter()) {
                *w |= x;
            }
        }
        sets.push(SetPlan {
            set,
            range,
            chains,
            sel,
        });
    }
    let ac = if phrases.is_empty() {
        None
    } else {
        Some(AhoCorasick::new(&phrases).map_err(|e| format!("compiling phrase lists: {e}"))?)
    };
    let nodes = trie.nodes_of(chains.iter().map(|(c, _)| *c));
    Ok(KindPlan {
        selectors,
        rule_sel,
        chains,
        nodes,
        sets,
        set_rules,
        set_each,
        ac,
        ac_rules,
        single,
    })
}

/// Whether every match of `pattern` starts with one of at most 16 literals of three bytes or more
/// (`select\s+\w+`, `(?:wso|c99)\.php`, `(?:^|/)etc/passwd`; not `\bon\w+=` or `[a-z]+foo`).
pub(super) fn literal_led(pattern: &str) -> bool {
    let parsed = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern);
    let Ok(hir) = parsed else {
        return false;
    };
    let prefixes = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    prefixes.min_literal_len().is_some_and(|n| n >= 3) && prefixes.len().is_some_and(|n| n <= 16)
}
