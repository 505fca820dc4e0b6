//! Transform chains as a prefix tree: the chains of a rule set share their common starts, so a
//! value is taken through each prefix once.

use super::transform::Transform;

/// Transform chains as a prefix tree, so chains that start alike share the work: each prefix
/// is computed once per value.
pub(super) struct ChainTrie {
    /// (parent node, transform); a node's parent has a smaller index.
    pub(super) nodes: Vec<(Option<usize>, Transform)>,
    /// Final node of each chain (`None`: the empty chain, the raw value).
    pub(super) chain_end: Vec<Option<usize>>,
}

impl ChainTrie {
    /// The nodes the chains `chains` (by index) go through, in index order: parents first.
    pub(super) fn nodes_of(&self, chains: impl Iterator<Item = usize>) -> Vec<usize> {
        let mut used = vec![false; self.nodes.len()];
        for c in chains {
            let mut at = self.chain_end[c];
            while let Some(n) = at {
                if used[n] {
                    break;
                }
                used[n] = true;
                at = self.nodes[n].0;
            }
        }
        (0..self.nodes.len()).filter(|&n| used[n]).collect()
    }

    pub(super) fn new(chains: &[Vec<Transform>]) -> ChainTrie {
        let mut nodes: Vec<(Option<usize>, Transform)> = Vec::new();
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
