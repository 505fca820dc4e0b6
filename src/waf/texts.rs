//! The texts one inspected value turns into under the transform chains, shared between chains
//! that leave it alike.

use super::matcher::ChainTrie;
use super::operator::Operator;
use super::profile::Profile;
use super::transform::Transform;

/// Not computed yet.
pub(super) const UNSET: u32 = u32::MAX;
/// Text id of the raw value.
const RAW: u32 = 0;
/// Number of [`Transform`] variants: the width of a memo row.
const TRANSFORMS: usize = Transform::COUNT;

/// The texts one value turns into, deduplicated: id 0 is the raw value, id `i > 0` is
/// `texts[i - 1]`. Reused from value to value so its buffers are allocated once per inspection.
pub(super) struct Texts {
    pub(super) texts: Vec<String>,
    /// Byte profile per text id, computed when first needed.
    pub(super) profiles: Vec<Option<Profile>>,
    /// Text id per trie node.
    pub(super) node_text: Vec<u32>,
    /// (source text, transform) → result text, shared by every trie branch: entry
    /// `src * TRANSFORMS + transform` ([`UNSET`] until computed). A direct table, not a search:
    /// a value goes through a hundred or more trie nodes, most of them leaving it unchanged.
    pub(super) memo: Vec<u32>,
    /// Text id per chain (by index in the rule set), for the chains the value goes through.
    pub(super) chain_text: Vec<u32>,
    /// Distinct text ids to scan.
    pub(super) active: Vec<u32>,
    /// (text id, operator is SQLi) → libinjection's verdict, for rules that share a text.
    pub(super) injection: Vec<(u32, bool, bool)>,
    /// Selectors of the current kind that select the value.
    pub(super) item_sel: Vec<u64>,
}

impl Texts {
    pub(super) fn new(trie: &ChainTrie) -> Texts {
        Texts {
            texts: Vec::new(),
            profiles: Vec::new(),
            node_text: vec![UNSET; trie.nodes.len()],
            memo: Vec::new(),
            chain_text: vec![UNSET; trie.chain_end.len()],
            active: Vec::new(),
            injection: Vec::new(),
            item_sel: Vec::new(),
        }
    }

    pub(super) fn reset(&mut self) {
        self.texts.clear();
        self.profiles.clear();
        self.profiles.push(None);
        self.node_text.fill(UNSET);
        self.memo.clear();
        self.memo.resize(TRANSFORMS, UNSET);
        self.chain_text.fill(UNSET);
        self.active.clear();
        self.injection.clear();
    }

    pub(super) fn text<'a>(&'a self, id: u32, raw: &'a str) -> &'a str {
        match id {
            RAW => raw,
            i => &self.texts[i as usize - 1],
        }
    }

    fn profile(&mut self, id: u32, raw: &str) -> Profile {
        if let Some(p) = self.profiles[id as usize] {
            return p;
        }
        let p = Profile::of(self.text(id, raw));
        self.profiles[id as usize] = Some(p);
        p
    }

    /// The text id of trie node `node` (`None`: the raw value), computing what is missing.
    pub(super) fn node(&mut self, trie: &ChainTrie, node: Option<usize>, raw: &str) -> u32 {
        let Some(n) = node else { return RAW };
        if self.node_text[n] != UNSET {
            return self.node_text[n];
        }
        let (parent, t) = trie.nodes[n];
        let src = self.node(trie, parent, raw);
        let dst = self.apply(src, t, raw);
        self.node_text[n] = dst;
        dst
    }

    fn apply(&mut self, src: u32, t: Transform, raw: &str) -> u32 {
        let slot = src as usize * TRANSFORMS + t as usize;
        if self.memo[slot] != UNSET {
            return self.memo[slot];
        }
        let p = self.profile(src, raw);
        let input = self.text(src, raw);
        let dst = if !t.may_change(p, input.len()) {
            src
        } else {
            match t.transform(input) {
                None => src,
                Some(out) => self.intern(out, raw),
            }
        };
        self.memo[slot] = dst;
        dst
    }

    fn intern(&mut self, out: String, raw: &str) -> u32 {
        if out == raw {
            return RAW;
        }
        if let Some(i) = self.texts.iter().position(|x| *x == out) {
            return i as u32 + 1;
        }
        self.texts.push(out);
        self.profiles.push(None);
        self.memo.resize(self.memo.len() + TRANSFORMS, UNSET);
        self.texts.len() as u32
    }

    /// libinjection's verdict on text `id`, computed once per text.
    pub(super) fn injection(&mut self, id: u32, sqli: bool, raw: &str) -> bool {
        if let Some(&(_, _, m)) = self
            .injection
            .iter()
            .find(|(t, s, _)| *t == id && *s == sqli)
        {
            return m;
        }
        let op = if sqli { Operator::Sqli } else { Operator::Xss };
        let m = op.eval(self.text(id, raw));
        self.injection.push((id, sqli, m));
        m
    }
}
