//! Choosing the next action: the mutual information between a test batch's
//! outcome and the hypotheses, for every node at once, per second of cost.
//!
//! Invariant: reads the state and the posterior; changes nothing.

use super::posterior::{Posterior, Search};
use super::{p_at, Kernel, Oracle, MIN_GAIN, P_GRID, RETEST_SHARE};
use crate::search::graph::Direction;

fn entropy2(q: f64) -> f64 {
    let h = |x: f64| if x <= 0.0 || x >= 1.0 { 0.0 } else { -x * x.log2() };
    h(q) + h(1.0 - q)
}

/// The next thing to do.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Action {
    /// Build commit i (if needed) and test it with a batch of runs.
    Test(usize, u32),
    /// Several tests at once on the oracle's run slots (issue 24,
    /// [`plan`](super::plan)): (commit, runs), distinct commits.
    Set(Vec<(usize, u32)>),
    Done,
}

/// A single test worth doing: node, batch, expected bits (build failures
/// discounted), build seconds and the chance the build fails (0 when
/// built), bits per second of sequential cost.
#[derive(Debug, Clone, Copy)]
pub(super) struct Candidate {
    pub node: usize,
    pub batch: u32,
    pub gain: f64,
    pub build: f64,
    pub broken: f64,
    pub score: f64,
}

impl Search<'_, '_> {
    /// Mutual information (bits) between "no match in a batch at node t" and
    /// the hypotheses, for every node t and each batch size in `batches`.
    ///
    /// Under hypothesis h, t is changed when h is among t's ancestors; its
    /// chance of no match is `miss_changed(h)` then, else `miss_unchanged(h)`:
    ///   P(no | t)   = Σ_{h ∈ anc(t)} P(h) miss_ch(h) + U − Σ_{h ∈ anc(t)} P(h) miss_un(h)
    ///   H(Y|H; t)   = the same with h(miss) in place of miss,
    /// where U sums P(h) miss_un(h) over every hypothesis (none included).
    /// Four sums over ancestor sets per batch size: O(n·W) in all.
    pub(super) fn information(&self, post: &Posterior, batches: [u32; 2]) -> Vec<[f64; 2]> {
        let n = self.graph.len();
        let clean: [f64; 2] = batches.map(|b| (1.0 - self.model.epsilon).powi(b as i32));
        let table: [[f64; P_GRID]; 2] = batches.map(|b| std::array::from_fn(|j| (1.0 - p_at(j)).powi(b as i32)));
        let miss_crashing =
            |h: usize, which: usize| -> f64 { post.p_weights(h).iter().zip(&table[which]).map(|(w, t)| w * t).sum() };
        // Per hypothesis and batch: (miss if changed, miss if unchanged).
        let misses = |h: usize, which: usize| -> (f64, f64) {
            match self.direction {
                Direction::Cause => (miss_crashing(h, which), clean[which]),
                Direction::Fix => (clean[which], miss_crashing(h, which)),
            }
        };
        let mut values = vec![[0.0; 8]; n];
        let mut total = [[0.0; 2]; 2]; // per batch: (Σ P miss_un, Σ P h(miss_un))
        for (k, v) in values.iter_mut().enumerate() {
            let m = post.mass[k];
            if m <= 0.0 {
                continue;
            }
            for which in 0..2 {
                let (ch, un) = misses(k, which);
                v[which * 4] = m * ch;
                v[which * 4 + 1] = m * entropy2(ch);
                v[which * 4 + 2] = m * un;
                v[which * 4 + 3] = m * entropy2(un);
                total[which][0] += m * un;
                total[which][1] += m * entropy2(un);
            }
        }
        for (which, t) in total.iter_mut().enumerate() {
            let (_, un) = misses(n, which);
            t[0] += post.none * un;
            t[1] += post.none * entropy2(un);
        }
        let sums = self.graph.ancestor_sums(&values);
        sums.iter()
            .map(|s| {
                std::array::from_fn(|which| {
                    let p_no = s[which * 4] + total[which][0] - s[which * 4 + 2];
                    let h_cond = s[which * 4 + 1] + total[which][1] - s[which * 4 + 3];
                    (entropy2(p_no.clamp(0.0, 1.0)) - h_cond).max(0.0)
                })
            })
            .collect()
    }

    /// Per node: the chance its build fails, from its nearest node (over
    /// parent and child edges) with a known outcome: next to a broken one a
    /// break is likely (0.8), fading to the base rate 0.05 with distance
    /// (halving every 4 commits): builds break in stretches.
    fn broken_odds(&self) -> Vec<f64> {
        let g = self.graph;
        // Per node: (distance, broken?) of the nearest known node.
        let mut near: Vec<Option<(u32, bool)>> = self
            .kernels
            .iter()
            .map(|k| (*k != Kernel::Unknown).then_some((0, *k == Kernel::Broken)))
            .collect();
        let mut queue: std::collections::VecDeque<usize> = (0..g.len()).filter(|&i| near[i].is_some()).collect();
        while let Some(x) = queue.pop_front() {
            let (d, b) = near[x].expect("queued nodes are reached");
            for &y in g.parents(x).iter().chain(g.children(x)) {
                if near[y].is_none() {
                    near[y] = Some((d + 1, b));
                    queue.push_back(y);
                }
            }
        }
        near.iter()
            .map(|n| match n {
                Some((d, true)) => 0.05 + 0.75 * 0.5f64.powf(d.saturating_sub(1) as f64 / 4.0),
                _ => 0.05,
            })
            .collect()
    }

    /// Picks the next node to test, or `Done`.
    pub(super) fn next<O: Oracle>(&self, oracle: &O, post: &Posterior) -> Action {
        let best = self
            .candidates(oracle, post)
            .into_iter()
            .fold(None::<Candidate>, |best, c| match best {
                Some(b) if c.score <= b.score => Some(b),
                _ => Some(c),
            });
        best.map_or(Action::Done, |c| Action::Test(c.node, c.batch))
    }

    /// Every single test worth its cost, in node order.
    pub(super) fn candidates<O: Oracle>(&self, oracle: &O, post: &Posterior) -> Vec<Candidate> {
        // A new kernel gets a full batch; one with runs already gets more in
        // smaller steps (it is usually near the boundary, being confirmed).
        let (full, retest) = (self.model.runs.max(1), (self.model.runs / RETEST_SHARE).max(1));
        let info = self.information(post, [full, retest]);
        let run = oracle.run_cost().max(1e-6);
        let broken_odds = self.broken_odds();
        let cap = self.model.kernel_cap();
        let out_of_builds = self.model.max_builds.is_some_and(|m| self.builds >= m);
        let mut out = Vec::new();
        for t in 0..self.graph.len() {
            // The base side is assumed: testing it says nothing of the boundary.
            if self.untestable[t] || !self.graph.in_range(t) {
                continue;
            }
            let (gain, batch, build, broken) = match (&self.kernels[t], self.group[t]) {
                (Kernel::Signed(_), Some(g)) if self.groups[g].runs_here >= cap => continue,
                (Kernel::Signed(_), _) => (info[t][1], retest, 0.0, 0.0),
                (Kernel::Broken, _) => continue,
                (Kernel::Unknown, _) => {
                    let cost = oracle.build_cost(t).max(0.0);
                    if out_of_builds && cost > 0.0 {
                        continue;
                    }
                    (info[t][0] * (1.0 - broken_odds[t]), full, cost, broken_odds[t])
                }
            };
            if gain.is_nan() || gain < MIN_GAIN {
                continue;
            }
            out.push(Candidate {
                node: t,
                batch,
                gain,
                build,
                broken,
                score: gain / (build + run * batch as f64),
            });
        }
        out
    }
}
