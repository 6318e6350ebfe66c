//! The commits a noisy search ranges over: a DAG in topological order, with
//! a chain decomposition that makes ancestor sets cheap.
//!
//! Every node belongs to one *chain*: a sequence of nodes each an ancestor of
//! the next (built greedily in topological order, a node extending the chain
//! of its first parent when it can, else any chain whose whole length is
//! among its ancestors, else a new one). An ancestor set meets every chain in
//! a prefix, so a node stores one height per chain (`height(x, c)`: how many
//! of chain `c`'s nodes are `x` or its ancestors) and
//! - `a` is an ancestor of `b` in O(1): `height(b, chain(a)) > pos(a)`;
//! - a sum over `x`'s ancestors of any per-node quantity is `W` prefix-sum
//!   look-ups (`W` chains), so a quantity for every node is O(n·W).
//!
//! On maintainer-style histories `W` is about the number of branches alive
//! at once (a chain whose tail was merged is reused by the next branch), not
//! the number of branches.
//!
//! Invariant: pure structure; knows nothing of kernels, runs or git.

use serde::Serialize;

/// Cause: find the first commit whose kernel has the bug. Fix: the first
/// whose kernel no longer has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Cause,
    Fix,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    #[error("the commit graph is empty")]
    Empty,
    #[error("the commit graph has {parents} parent lists but {in_range} range flags")]
    LengthMismatch { parents: usize, in_range: usize },
    #[error("the commit graph is not in topological order: node {node} lists parent {parent}, not before it")]
    NotTopological { node: usize, parent: usize },
    #[error("node {node} lists parent {parent} twice")]
    DuplicateParent { node: usize, parent: usize },
    #[error("the tip (the last node) is not in the range")]
    TipNotInRange,
    #[error("base node {node} (outside the range) has parent {parent} inside the range")]
    BaseAfterRange { node: usize, parent: usize },
}

/// A DAG of commits, every parent before its child, with its chains.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Parents of node i: `parent_list[parent_start[i]..parent_start[i + 1]]`.
    parent_start: Vec<usize>,
    parent_list: Vec<usize>,
    /// Children, the same way.
    child_start: Vec<usize>,
    child_list: Vec<usize>,
    in_range: Vec<bool>,
    /// Per node: its chain and its position in it.
    chain: Vec<u32>,
    pos: Vec<u32>,
    /// Per chain: its nodes, oldest first.
    chains: Vec<Vec<u32>>,
    /// `heights[x * width + c]`: how many nodes of chain c are x or its ancestors.
    heights: Vec<u32>,
}

impl Graph {
    /// `parents[i]`: indices (< i) of i's parents inside the graph. `in_range[i]`:
    /// i may be the answer. Nodes outside the range are the *base* side
    /// (parents of range commits reachable from a good end): assumed good in a
    /// cause bisection, still crashing in a fix bisection; their own parents,
    /// if listed, must be base nodes too. The last node is the tip and is in
    /// the range.
    pub fn new(parents: Vec<Vec<usize>>, in_range: Vec<bool>) -> Result<Graph, GraphError> {
        if parents.is_empty() {
            return Err(GraphError::Empty);
        }
        if parents.len() != in_range.len() {
            return Err(GraphError::LengthMismatch {
                parents: parents.len(),
                in_range: in_range.len(),
            });
        }
        if !in_range[in_range.len() - 1] {
            return Err(GraphError::TipNotInRange);
        }
        for (node, ps) in parents.iter().enumerate() {
            for (j, &parent) in ps.iter().enumerate() {
                if parent >= node {
                    return Err(GraphError::NotTopological { node, parent });
                }
                if ps[..j].contains(&parent) {
                    return Err(GraphError::DuplicateParent { node, parent });
                }
                if !in_range[node] && in_range[parent] {
                    return Err(GraphError::BaseAfterRange { node, parent });
                }
            }
        }
        Ok(Graph::build(&parents, in_range))
    }

    /// Today's line: node 0 the base (the good end), node i's parent i - 1
    /// (what `--first-parent` walks). `line(1)` is a single node in range.
    pub fn line(len: usize) -> Graph {
        let len = len.max(1);
        let parents: Vec<Vec<usize>> = (0..len).map(|i| if i == 0 { vec![] } else { vec![i - 1] }).collect();
        let in_range = (0..len).map(|i| i > 0 || len == 1).collect();
        Graph::build(&parents, in_range)
    }

    fn build(parents: &[Vec<usize>], in_range: Vec<bool>) -> Graph {
        let n = parents.len();
        let mut parent_start = Vec::with_capacity(n + 1);
        let mut parent_list = Vec::new();
        let mut child_count = vec![0usize; n];
        parent_start.push(0);
        for ps in parents {
            parent_list.extend(ps.iter().copied());
            parent_start.push(parent_list.len());
            for &p in ps {
                child_count[p] += 1;
            }
        }
        let mut child_start = vec![0usize; n + 1];
        for i in 0..n {
            child_start[i + 1] = child_start[i] + child_count[i];
        }
        let mut fill = child_start.clone();
        let mut child_list = vec![0usize; parent_list.len()];
        for (i, ps) in parents.iter().enumerate() {
            for &p in ps {
                child_list[fill[p]] = i;
                fill[p] += 1;
            }
        }
        let (chain, pos, chains, rows) = decompose(parents);
        let width = chains.len();
        let mut heights = vec![0u32; n * width];
        for (x, row) in rows.into_iter().enumerate() {
            heights[x * width..x * width + row.len()].copy_from_slice(&row);
        }
        Graph {
            parent_start,
            parent_list,
            child_start,
            child_list,
            in_range,
            chain,
            pos,
            chains,
            heights,
        }
    }

    pub fn len(&self) -> usize {
        self.in_range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.in_range.is_empty()
    }

    /// The tip: the last node.
    pub fn tip(&self) -> usize {
        self.len() - 1
    }

    pub fn parents(&self, i: usize) -> &[usize] {
        &self.parent_list[self.parent_start[i]..self.parent_start[i + 1]]
    }

    pub fn children(&self, i: usize) -> &[usize] {
        &self.child_list[self.child_start[i]..self.child_start[i + 1]]
    }

    pub fn in_range(&self, i: usize) -> bool {
        self.in_range[i]
    }

    /// Nodes in the range.
    pub fn range_len(&self) -> usize {
        self.in_range.iter().filter(|r| **r).count()
    }

    /// a is b or an ancestor of b.
    pub fn is_ancestor(&self, a: usize, b: usize) -> bool {
        self.height(b, self.chain[a] as usize) > self.pos[a]
    }

    /// The number of chains (`W`).
    pub fn width(&self) -> usize {
        self.chains.len()
    }

    /// Node x's chain heights: entry c is how many of chain c's nodes are x or
    /// its ancestors (x's ancestor set is those prefixes).
    pub fn heights(&self, x: usize) -> &[u32] {
        let w = self.width();
        &self.heights[x * w..(x + 1) * w]
    }

    fn height(&self, x: usize, c: usize) -> u32 {
        self.heights[x * self.width() + c]
    }

    /// Node i's chain and position in it.
    pub fn chain_of(&self, i: usize) -> (usize, usize) {
        (self.chain[i] as usize, self.pos[i] as usize)
    }

    /// Chain c's nodes, oldest first.
    pub fn chain(&self, c: usize) -> &[u32] {
        &self.chains[c]
    }

    /// Where chain c's entries start in a flat array holding, per chain, one
    /// slot per node plus one (for prefix sums: slot `off + h` is the sum of
    /// the first h nodes).
    pub fn prefix_offsets(&self) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.width() + 1);
        let mut at = 0;
        for c in &self.chains {
            out.push(at);
            at += c.len() + 1;
        }
        out.push(at);
        out
    }

    /// For every node, the sum of `value` over its ancestors (itself
    /// included), `K` quantities at once: O(n·W).
    pub fn ancestor_sums<const K: usize>(&self, value: &[[f64; K]]) -> Vec<[f64; K]> {
        let off = self.prefix_offsets();
        let mut prefix = vec![[0.0; K]; off[self.width()]];
        for (c, nodes) in self.chains.iter().enumerate() {
            let mut acc = [0.0; K];
            for (j, &x) in nodes.iter().enumerate() {
                for (a, v) in acc.iter_mut().zip(value[x as usize]) {
                    *a += v;
                }
                prefix[off[c] + j + 1] = acc;
            }
        }
        (0..self.len())
            .map(|x| {
                let mut sum = [0.0; K];
                for (c, &h) in self.heights(x).iter().enumerate() {
                    if h > 0 {
                        for (s, v) in sum.iter_mut().zip(prefix[off[c] + h as usize]) {
                            *s += v;
                        }
                    }
                }
                sum
            })
            .collect()
    }
}

type Decomposition = (Vec<u32>, Vec<u32>, Vec<Vec<u32>>, Vec<Vec<u32>>);

/// Greedy chains in topological order; per node its heights over the chains
/// that existed when it was placed (later chains cannot hold its ancestors).
fn decompose(parents: &[Vec<usize>]) -> Decomposition {
    let n = parents.len();
    let mut chain = vec![0u32; n];
    let mut pos = vec![0u32; n];
    let mut chains: Vec<Vec<u32>> = Vec::new();
    let mut rows: Vec<Vec<u32>> = Vec::with_capacity(n);
    for (x, ps) in parents.iter().enumerate() {
        let mut row = vec![0u32; chains.len()];
        for &p in ps {
            for (r, &h) in row.iter_mut().zip(&rows[p]) {
                *r = (*r).max(h);
            }
        }
        // A chain can take x when all of it is among x's ancestors: prefer
        // the first parent's chain (mainline stays one chain), then the
        // other parents', then the longest complete one.
        let complete = |c: usize| row[c] as usize == chains[c].len();
        let by_parent = ps.iter().map(|&p| chain[p] as usize).find(|&c| complete(c));
        let c = by_parent
            .or_else(|| {
                (0..chains.len())
                    .filter(|&c| complete(c))
                    .max_by_key(|&c| chains[c].len())
            })
            .unwrap_or_else(|| {
                chains.push(Vec::new());
                row.push(0);
                chains.len() - 1
            });
        chain[x] = c as u32;
        pos[x] = chains[c].len() as u32;
        chains[c].push(x as u32);
        row[c] += 1;
        rows.push(row);
    }
    (chain, pos, chains, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ancestors by brute force.
    fn ancestors(parents: &[Vec<usize>], x: usize) -> Vec<bool> {
        let mut seen = vec![false; parents.len()];
        let mut stack = vec![x];
        while let Some(y) = stack.pop() {
            if !seen[y] {
                seen[y] = true;
                stack.extend(&parents[y]);
            }
        }
        seen
    }

    fn random_dag(n: usize, seed: u64) -> Vec<Vec<usize>> {
        let mut rng = crate::search::sim::Rng::new(seed);
        (0..n)
            .map(|i| {
                let mut ps = Vec::new();
                if i > 0 {
                    ps.push(i - 1 - rng.below(i.min(3)));
                    if i > 2 && rng.uniform() < 0.3 {
                        let q = rng.below(i);
                        if !ps.contains(&q) {
                            ps.push(q);
                        }
                    }
                }
                ps
            })
            .collect()
    }

    #[test]
    fn ancestry_matches_brute_force_on_random_dags() {
        for seed in 0..20 {
            let parents = random_dag(60, seed);
            let mut in_range = vec![true; 60];
            in_range[0] = false;
            let g = Graph::new(parents.clone(), in_range).unwrap();
            let ones: Vec<[f64; 1]> = vec![[1.0]; 60];
            let sums = g.ancestor_sums(&ones);
            for (b, sum) in sums.iter().enumerate() {
                let anc = ancestors(&parents, b);
                for (a, &is) in anc.iter().enumerate() {
                    assert_eq!(g.is_ancestor(a, b), is, "seed {seed}: {a} anc {b}");
                }
                let count = anc.iter().filter(|x| **x).count() as f64;
                assert_eq!(sum[0], count, "seed {seed}: |anc({b})|");
            }
        }
    }

    #[test]
    fn a_line_is_one_chain_and_merged_branches_reuse_chains() {
        let g = Graph::line(10);
        assert_eq!(g.width(), 1);
        assert!(!g.in_range(0) && g.in_range(9));
        assert!(g.is_ancestor(3, 7) && !g.is_ancestor(7, 3));
        // Mainline 0..; three topic branches one after another, each merged
        // (after a mainline commit) before the next forks: two chains suffice.
        let mut parents: Vec<Vec<usize>> = vec![vec![]];
        for _ in 0..3 {
            let fork = parents.len() - 1;
            parents.push(vec![fork]); // branch commit
            parents.push(vec![parents.len() - 1]); // branch commit
            let tip = parents.len() - 1;
            parents.push(vec![fork]); // mainline commit
            parents.push(vec![parents.len() - 1, tip]); // --no-ff merge
        }
        let n = parents.len();
        let g = Graph::new(parents, vec![true; n]).unwrap();
        assert_eq!(g.width(), 2);
        assert_eq!(g.children(0), &[1, 3]);
        assert!(!g.is_ancestor(2, 3) && g.is_ancestor(2, 4));
    }

    #[test]
    fn bad_graphs_are_refused() {
        assert_eq!(Graph::new(vec![], vec![]).unwrap_err(), GraphError::Empty);
        assert_eq!(
            Graph::new(vec![vec![], vec![1]], vec![false, true]).unwrap_err(),
            GraphError::NotTopological { node: 1, parent: 1 }
        );
        assert_eq!(
            Graph::new(vec![vec![], vec![0]], vec![true, false]).unwrap_err(),
            GraphError::TipNotInRange
        );
        assert_eq!(
            Graph::new(vec![vec![], vec![0], vec![1]], vec![true, false, true]).unwrap_err(),
            GraphError::BaseAfterRange { node: 1, parent: 0 }
        );
        assert_eq!(
            Graph::new(vec![vec![], vec![0, 0]], vec![false, true]).unwrap_err(),
            GraphError::DuplicateParent { node: 1, parent: 0 }
        );
        assert!(matches!(
            Graph::new(vec![vec![]], vec![true, true]).unwrap_err(),
            GraphError::LengthMismatch { .. }
        ));
    }
}
