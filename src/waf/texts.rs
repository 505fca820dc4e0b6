//! The texts one inspected value turns into under the transform chains, shared between chains
//! that leave it alike.

use super::operator::Operator;
use super::profile::Profile;
use super::transform::Transform;
use super::trie::ChainTrie;

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
    /// Per text id, the transforms that may change it (bit `t as usize`, from its
    /// [`Profile`]): most steps of most chains leave a value alike, and cost one bit test.
    changeable: Vec<u32>,
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
            changeable: Vec::new(),
            node_text: vec![UNSET; trie.nodes.len()],
            memo: Vec::new(),
            chain_text: vec![UNSET; trie.chain_end.len()],
            active: Vec::new(),
            injection: Vec::new(),
            item_sel: Vec::new(),
        }
    }

    /// Starts on a new value, `raw`.
    pub(super) fn reset(&mut self, raw: &str) {
        self.texts.clear();
        self.changeable.clear();
        self.changeable.push(Profile::of(raw).changeable(raw.len()));
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

    /// Computes the text of each trie node of `nodes`, which lists parents before children.
    pub(super) fn walk(&mut self, trie: &ChainTrie, nodes: &[usize], raw: &str) {
        for &n in nodes {
            let (parent, t) = trie.nodes[n];
            let src = parent.map_or(RAW, |p| self.node_text[p]);
            self.node_text[n] = if self.changeable[src as usize] & 1 << t as usize == 0 {
                src
            } else {
                self.apply(src, t, raw)
            };
        }
    }

    /// The text id chain `chain` ends on; its nodes have been walked.
    pub(super) fn chain_end(&self, trie: &ChainTrie, chain: usize) -> u32 {
        trie.chain_end[chain].map_or(RAW, |n| self.node_text[n])
    }

    fn apply(&mut self, src: u32, t: Transform, raw: &str) -> u32 {
        let slot = src as usize * TRANSFORMS + t as usize;
        if self.memo[slot] == UNSET {
            self.memo[slot] = match t.transform(self.text(src, raw)) {
                None => src,
                Some(out) => self.intern(out, raw),
            };
        }
        self.memo[slot]
    }

    fn intern(&mut self, out: String, raw: &str) -> u32 {
        if out == raw {
            return RAW;
        }
        if let Some(i) = self.texts.iter().position(|x| *x == out) {
            return i as u32 + 1;
        }
        self.changeable
            .push(Profile::of(&out).changeable(out.len()));
        self.texts.push(out);
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
