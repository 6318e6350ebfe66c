//! The search's state (kernels per node, runs per kernel) and the posterior
//! over the first changed commit.
//!
//! Invariant: the posterior is a function of the kernels and their runs
//! only: the same evidence gives the same posterior whatever the order it
//! came in.

use std::collections::HashMap;

use super::{p_at, Kernel, Model, Oracle, P_GRID};
use crate::crash::{ClassCounts, RunClass, Target};
use crate::search::graph::{Direction, Graph};
use crate::signature::KernelSignature;

/// One kernel: the nodes that have it and its runs.
#[derive(Debug, Clone)]
pub(super) struct Group {
    pub signature: KernelSignature,
    pub members: Vec<usize>,
    /// Every run known (pooled and this search's).
    pub counts: ClassCounts,
    /// Runs this search made (bounded by `Model::kernel_cap`).
    pub runs_here: u32,
}

/// The search's state (cloned to look ahead: [`plan`](super::plan)).
#[derive(Clone)]
pub(super) struct Search<'m, 'g> {
    pub model: &'m Model,
    pub target: Target,
    pub graph: &'g Graph,
    pub direction: Direction,
    pub kernels: Vec<Kernel>,
    /// Per node: its kernel's group, when signed.
    pub group: Vec<Option<usize>>,
    pub groups: Vec<Group>,
    by_signature: HashMap<KernelSignature, usize>,
    pub builds: u32,
    pub runs: u32,
    pub seconds: f64,
    /// Commits whose last batch said nothing (every run timed out, could not
    /// boot, or crashed with another bug): not chosen again.
    pub untestable: Vec<bool>,
    /// Base nodes whose check (is the base side what it is assumed?) ran.
    pub base_checked: Vec<bool>,
    /// Termination bookkeeping: builds that failed in a row, runs that told
    /// nothing in a row (their classes), and whether anything ever built or
    /// told something.
    pub failed_in_a_row: u32,
    pub silent: ClassCounts,
    pub ever_built: bool,
    pub ever_told: bool,
}

/// The posterior: P(first changed = k) per node (0 outside the range and for
/// impossible nodes) and P(none).
#[derive(Debug, Clone)]
pub struct Posterior {
    pub mass: Vec<f64>,
    pub none: f64,
    /// Per hypothesis (node; the last entry is "none"): weights over the `p`
    /// grid, given its crashing side.
    p_weights: Vec<[f64; P_GRID]>,
}

impl<'m, 'g> Search<'m, 'g> {
    pub fn new(model: &'m Model, target: Target, graph: &'g Graph, direction: Direction) -> Search<'m, 'g> {
        let len = graph.len();
        Search {
            model,
            target,
            graph,
            direction,
            kernels: vec![Kernel::Unknown; len],
            group: vec![None; len],
            groups: Vec::new(),
            by_signature: HashMap::new(),
            builds: 0,
            runs: 0,
            seconds: 0.0,
            untestable: vec![false; len],
            base_checked: vec![false; len],
            failed_in_a_row: 0,
            silent: ClassCounts::default(),
            ever_built: false,
            ever_told: false,
        }
    }

    pub fn group_of_signature(&self, sig: &KernelSignature) -> Option<usize> {
        self.by_signature.get(sig).copied()
    }

    /// Sets node i's kernel (a known one never changes).
    pub fn set_kernel(&mut self, i: usize, k: Kernel) {
        if self.kernels[i] != Kernel::Unknown {
            return;
        }
        if let Kernel::Signed(sig) = &k {
            let g = match self.by_signature.get(sig) {
                Some(&g) => g,
                None => {
                    self.groups.push(Group {
                        signature: sig.clone(),
                        members: Vec::new(),
                        counts: ClassCounts::default(),
                        runs_here: 0,
                    });
                    self.by_signature.insert(sig.clone(), self.groups.len() - 1);
                    self.groups.len() - 1
                }
            };
            self.groups[g].members.push(i);
            self.group[i] = Some(g);
        }
        self.kernels[i] = k;
    }

    /// Learns commit `i`'s kernel (and its pooled runs, the first time).
    pub fn learn<O: Oracle>(&mut self, oracle: &mut O, i: usize, k: Kernel) -> Result<(), O::Error> {
        let new_signature = matches!(&k, Kernel::Signed(sig) if !self.by_signature.contains_key(sig));
        self.set_kernel(i, k);
        if let (true, Some(g)) = (new_signature, self.group[i]) {
            let sig = self.groups[g].signature.clone();
            let pooled = oracle.pooled(&sig, &self.target)?;
            self.record(g, &pooled);
            self.groups[g].runs_here = oracle.runs_made(&sig);
        }
        Ok(())
    }

    /// Adds runs (their classes) to a kernel's evidence.
    pub fn record(&mut self, g: usize, classes: &[RunClass]) {
        for c in classes {
            self.groups[g].counts.add(*c);
        }
    }

    /// Node i's runs, if it is signed.
    pub fn counts_of(&self, i: usize) -> Option<&ClassCounts> {
        self.group[i].map(|g| &self.groups[g].counts)
    }

    /// Per node: can it be the first changed commit? In the range, and not
    /// split from an equal kernel: for every kernel, `k` must be an ancestor
    /// of all its nodes or of none. Per chain the ancestor sets of a
    /// kernel's nodes are prefixes; positions between the shortest and the
    /// longest are impossible.
    fn possible(&self) -> Vec<bool> {
        let g = self.graph;
        let off = g.prefix_offsets();
        // Difference array over chain positions.
        let mut diff = vec![0i32; off[g.width()]];
        for group in self.groups.iter().filter(|gr| gr.members.len() > 1) {
            for c in 0..g.width() {
                let (mut lo, mut hi) = (u32::MAX, 0u32);
                for &x in &group.members {
                    let h = g.heights(x)[c];
                    lo = lo.min(h);
                    hi = hi.max(h);
                }
                if lo < hi {
                    diff[off[c] + lo as usize] += 1;
                    diff[off[c] + hi as usize] -= 1;
                }
            }
        }
        let mut possible = vec![false; g.len()];
        for c in 0..g.width() {
            let mut open = 0;
            for (j, &x) in g.chain(c).iter().enumerate() {
                open += diff[off[c] + j];
                possible[x as usize] = open == 0 && g.in_range(x as usize);
            }
        }
        possible
    }

    /// Per node: the (matched, ok) runs of every kernel on its changed side
    /// (the kernels it is an ancestor of), and the totals.
    fn changed_counts(&self) -> (Vec<(u32, u32)>, (u32, u32)) {
        let g = self.graph;
        let off = g.prefix_offsets();
        let mut at = vec![(0u32, 0u32); off[g.width()]];
        let mut all = (0, 0);
        for group in &self.groups {
            let (m, o) = (group.counts.matched, group.counts.ok);
            if m + o == 0 {
                continue;
            }
            all.0 += m;
            all.1 += o;
            // One node stands for the kernel: where it matters (possible k)
            // all its nodes agree.
            for (c, &h) in g.heights(group.members[0]).iter().enumerate() {
                if h > 0 {
                    at[off[c] + h as usize].0 += m;
                    at[off[c] + h as usize].1 += o;
                }
            }
        }
        // Node at chain position j is an ancestor of a kernel's node when that
        // node's height on the chain is above j: suffix sums over heights.
        let mut out = vec![(0, 0); g.len()];
        for c in 0..g.width() {
            let nodes = g.chain(c);
            let mut acc = (0, 0);
            for j in (0..nodes.len()).rev() {
                acc.0 += at[off[c] + j + 1].0;
                acc.1 += at[off[c] + j + 1].1;
                out[nodes[j] as usize] = acc;
            }
        }
        (out, all)
    }

    /// The posterior over the first changed commit.
    pub fn posterior(&self) -> Posterior {
        let n = self.graph.len();
        let possible = self.possible();
        let (changed, (m_all, o_all)) = self.changed_counts();
        let eps = self.model.epsilon;
        let log_clean = |m: u32, o: u32| m as f64 * eps.ln() + o as f64 * (1.0 - eps).ln();
        let ln_p: [f64; P_GRID] = std::array::from_fn(|j| p_at(j).ln());
        let ln_q: [f64; P_GRID] = std::array::from_fn(|j| (1.0 - p_at(j)).max(1e-12).ln());
        // log ∫ p^m (1-p)^o under the uniform grid prior, and the weights.
        let crashing = |m: u32, o: u32, w: &mut [f64; P_GRID]| -> f64 {
            let logs: [f64; P_GRID] = std::array::from_fn(|j| m as f64 * ln_p[j] + o as f64 * ln_q[j]);
            let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logs.iter().map(|l| (l - top).exp()).sum();
            for (wj, l) in w.iter_mut().zip(logs) {
                *wj = (l - top).exp() / sum;
            }
            top + (sum / P_GRID as f64).ln()
        };
        let possible_count = possible.iter().filter(|p| **p).count();
        let prior_none = if possible_count == 0 {
            1.0
        } else {
            self.model.prior_none
        };
        let prior_k = ((1.0 - prior_none) / possible_count.max(1) as f64).ln();
        let mut log_mass = vec![f64::NEG_INFINITY; n];
        let mut p_weights = vec![[1.0 / P_GRID as f64; P_GRID]; n + 1];
        for k in 0..n {
            if !possible[k] {
                continue;
            }
            let (mc, oc) = changed[k];
            let (mu, ou) = (m_all - mc, o_all - oc);
            let ((mb, ob), (mg, og)) = match self.direction {
                Direction::Cause => ((mc, oc), (mu, ou)),
                Direction::Fix => ((mu, ou), (mc, oc)),
            };
            log_mass[k] = prior_k + crashing(mb, ob, &mut p_weights[k]) + log_clean(mg, og);
        }
        let log_none = prior_none.ln()
            + match self.direction {
                Direction::Cause => log_clean(m_all, o_all),
                Direction::Fix => crashing(m_all, o_all, &mut p_weights[n]),
            };
        let top = log_mass.iter().cloned().fold(log_none, f64::max);
        let mut mass: Vec<f64> = log_mass.iter().map(|l| (l - top).exp()).collect();
        let mut none = (log_none - top).exp();
        let total: f64 = mass.iter().sum::<f64>() + none;
        for m in &mut mass {
            *m /= total;
        }
        none /= total;
        Posterior { mass, none, p_weights }
    }
}

impl Posterior {
    /// The most likely first changed commit and its probability.
    pub fn best(&self) -> (usize, f64) {
        self.mass
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, m)| (i, *m))
            .unwrap_or((0, 0.0))
    }

    /// The fewest commits holding `level` of the mass, most likely first.
    pub fn credible(&self, level: f64) -> (Vec<usize>, f64) {
        let mut order: Vec<usize> = (0..self.mass.len()).filter(|&k| self.mass[k] > 0.0).collect();
        order.sort_by(|a, b| self.mass[*b].total_cmp(&self.mass[*a]));
        let mut out = Vec::new();
        let mut held = 0.0;
        for k in order {
            if held >= level {
                break;
            }
            held += self.mass[k];
            out.push(k);
        }
        (out, held)
    }

    /// Weights over the p grid under hypothesis `h` (a node, or
    /// `mass.len()` for none).
    pub(super) fn p_weights(&self, h: usize) -> &[f64; P_GRID] {
        &self.p_weights[h]
    }

    /// The `q`-quantile of p under hypothesis `h` (the pessimistic end).
    pub(super) fn p_quantile(&self, h: usize, q: f64) -> f64 {
        let mut acc = 0.0;
        for (j, w) in self.p_weights[h].iter().enumerate() {
            acc += w;
            if acc >= q {
                return p_at(j);
            }
        }
        1.0
    }
}
