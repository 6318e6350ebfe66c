//! The search loop: testing, the boundary check before a culprit is named,
//! the checks of the base side, and termination.
//!
//! The bound ([`bound`]): on a graph of N nodes, with C = `Model::kernel_cap`
//! (100 at 10 runs a batch), one search makes at most N builds (a node's
//! kernel, once known, never changes; a build that returns nothing counts as
//! broken) and at most C runs per kernel, so at most C·N runs. Every step of
//! the loop builds a node, makes at least one run, adds to a streak of runs
//! that told nothing (a batch the oracle ran nothing of counts as one),
//! marks a base node checked, or ends; so the loop takes at most
//! N (builds) + C·N (runs) + 2·runs (a silent streak) + N (base checks) + 1
//! steps.
//! Sooner than that: 8 failed builds in a row while none succeeded (24 once
//! one did) end it ([`Ending::Unbuildable`]),
//! and so do `2 × runs` test runs in a row that tell nothing
//! ([`Ending::Untestable`]).
//!
//! Invariant: never names a culprit that was not built and seen changed, nor
//! one with a parent not seen unchanged with the confidence the model asks
//! (by its own runs, or by a descendant's the culprit is not an ancestor of).

use super::choose::Action;
use super::posterior::{Posterior, Search};
use super::{p_at, Ending, Kernel, Oracle, P_GRID};
use crate::crash::{ClassCounts, RunClass};
use crate::search::graph::Direction;
use crate::signature::KernelSignature;

/// Failed builds in a row that end a search while none succeeded; and once
/// one did.
const FAILED_BUILDS_IN_A_ROW: u32 = 8;
const FAILED_BUILDS_IN_A_ROW_AFTER_ONE: u32 = 24;

/// The most builds and runs one search can make on a graph of `nodes` nodes
/// at `runs` runs a batch: (builds, runs).
pub fn bound(nodes: usize, runs: u32) -> (u64, u64) {
    let cap = super::Model {
        runs,
        ..super::Model::default()
    }
    .kernel_cap();
    (nodes as u64, cap as u64 * nodes as u64)
}

/// What stands between the most likely culprit and naming it.
#[derive(Debug, PartialEq)]
pub(super) enum Gap {
    /// Build this node.
    Build(usize),
    /// Run this node's kernel this often.
    Run(usize, u32),
    /// Named: every check passed (`merge`: a merge, every parent seen unchanged).
    Named { merge: bool },
    /// The culprit or a parent does not build.
    Broken,
    /// A kernel the check needs has had all the runs one search gives it.
    Capped,
    /// A base parent is not what the base side is assumed to be.
    Base(usize),
}

/// A test made ready: nothing to run (`Told`: whether building it told
/// something), or a batch of `budget` runs on the kernel `signature`.
pub(super) enum Prepared {
    Told(bool),
    Run { signature: KernelSignature, budget: u32 },
}

impl Search<'_, '_> {
    /// The loop: think, act, until an ending.
    pub(super) fn run<O: Oracle>(&mut self, oracle: &mut O) -> Result<Ending, O::Error> {
        let (builds, runs) = bound(self.graph.len(), self.model.runs);
        let steps = builds + runs + 2 * self.model.runs.max(1) as u64 + self.graph.len() as u64 + 1;
        for _ in 0..steps {
            if let Some(end) = self.stuck() {
                return Ok(end);
            }
            let post = self.posterior();
            if post.none >= self.model.confidence {
                return Ok(Ending::NoCulprit {
                    probability: post.none,
                    direction: self.direction,
                });
            }
            if let Some(why) = self.out_of_budget() {
                return Ok(self.undecided(&post, why));
            }
            let (k, prob) = post.best();
            if prob < self.model.confidence {
                oracle.standing(post.credible(0.95).0.len(), prob);
                let action = self.choose(oracle, &post);
                self.prefetch(oracle, &post, &action);
                match action {
                    Action::Test(t, batch) => self.test(oracle, t, batch).map(drop)?,
                    Action::Set(tests) => self.test_set(oracle, &tests)?,
                    Action::Done => {
                        // Before giving up: is the base side next to the likeliest
                        // culprit what it is assumed to be? (A --good that is bad
                        // piles the mass on the range's oldest commits.)
                        if let Some(b) = self.unchecked_base_parent(k) {
                            if let Some(end) = self.check_base(oracle, &post, k, b)? {
                                return Ok(end);
                            }
                            continue;
                        }
                        let why = if self.model.max_builds.is_some_and(|m| self.builds >= m) {
                            "--max-builds spent"
                        } else {
                            "no test can tell more (commits that do not build or cannot be tested)"
                        };
                        return Ok(self.undecided(&post, why));
                    }
                }
                continue;
            }
            match self.boundary_gap(&post, k) {
                Gap::Named { merge } => {
                    return Ok(Ending::Culprit {
                        index: k,
                        probability: prob,
                        merge,
                        direction: self.direction,
                    })
                }
                Gap::Build(i) => {
                    self.prefetch(oracle, &post, &Action::Test(i, self.model.runs.max(1)));
                    self.ensure_built(oracle, i)?
                }
                // A batch that told nothing is tried again: the silent-run and
                // per-kernel limits end a check that never tells.
                Gap::Run(i, n) => {
                    self.prefetch(oracle, &post, &Action::Test(i, n));
                    self.test(oracle, i, n).map(drop)?
                }
                Gap::Broken => {
                    return Ok(self.undecided(
                        &post,
                        "the most likely culprit or a parent does not build: the boundary cannot be checked",
                    ))
                }
                Gap::Capped => {
                    return Ok(self.undecided(
                        &post,
                        "the boundary check did not settle within the runs one search gives a kernel",
                    ))
                }
                Gap::Base(b) => return Ok(self.base_contradicted(b)),
            }
        }
        // Unreachable by the argument in the module doc; a safety net.
        let post = self.posterior();
        Ok(self.undecided(&post, "the search's step bound was reached"))
    }

    fn undecided(&self, post: &Posterior, why: impl Into<String>) -> Ending {
        let (credible, mass) = post.credible(0.95);
        Ending::Undecided {
            why: why.into(),
            credible,
            mass,
        }
    }

    fn out_of_budget(&self) -> Option<String> {
        if self.model.max_runs.is_some_and(|m| self.runs >= m) {
            return Some(format!("--max-runs {} spent", self.runs));
        }
        None
    }

    /// The search cannot learn: builds keep failing, or runs keep telling
    /// nothing.
    fn stuck(&self) -> Option<Ending> {
        // Broken stretches are common in real history: once anything built,
        // only a much longer run of failures ends the search.
        let limit = if self.ever_built {
            FAILED_BUILDS_IN_A_ROW_AFTER_ONE
        } else {
            FAILED_BUILDS_IN_A_ROW
        };
        if self.failed_in_a_row >= limit {
            return Some(Ending::Unbuildable {
                failed: self.failed_in_a_row,
                all: !self.ever_built,
            });
        }
        if self.silent.other + self.silent.no_info >= 2 * self.model.runs.max(1) {
            return Some(self.untestable());
        }
        None
    }

    fn untestable(&self) -> Ending {
        Ending::Untestable {
            runs: self.silent.other + self.silent.no_info,
            no_info: self.silent.no_info,
            other: self.silent.other,
            all: !self.ever_told,
        }
    }

    /// Tests node `t` with one batch (building it first if needed). False:
    /// nothing was learnt from runs (none allowed, or none told anything).
    pub(super) fn test<O: Oracle>(&mut self, oracle: &mut O, t: usize, batch: u32) -> Result<bool, O::Error> {
        match self.prepare_test(oracle, t, batch, 0)? {
            Prepared::Told(told) => Ok(told),
            Prepared::Run { signature, budget } => {
                let classes = oracle.run(t, &signature, budget, &self.target)?;
                Ok(self.absorb(t, budget, classes, oracle.run_cost()))
            }
        }
    }

    /// Builds `t` if needed and sizes its batch (`reserved`: runs already
    /// promised to other tests of the same set, within `--max-runs`).
    pub(super) fn prepare_test<O: Oracle>(
        &mut self,
        oracle: &mut O,
        t: usize,
        batch: u32,
        reserved: u32,
    ) -> Result<Prepared, O::Error> {
        if self.kernels[t] == Kernel::Unknown {
            self.ensure_built(oracle, t)?;
            // A kernel the search already has runs for (a no-op commit): what
            // it tells is new already (hypotheses ruled out); think again
            // before running more.
            if let Some(c) = self.counts_of(t) {
                if c.matched + c.ok > 0 {
                    return Ok(Prepared::Told(true));
                }
            }
        }
        let (Kernel::Signed(signature), Some(g)) = (self.kernels[t].clone(), self.group[t]) else {
            return Ok(Prepared::Told(false));
        };
        let left_here = self.model.kernel_cap().saturating_sub(self.groups[g].runs_here);
        let budget = self
            .model
            .max_runs
            .map_or(batch, |m| m.saturating_sub(self.runs + reserved).min(batch))
            .min(left_here);
        if budget == 0 {
            self.untestable[t] = true;
            return Ok(Prepared::Told(false));
        }
        Ok(Prepared::Run { signature, budget })
    }

    /// Takes in the classes of a batch of `budget` runs on `t` (signed).
    /// False: nothing was learnt.
    pub(super) fn absorb(&mut self, t: usize, budget: u32, mut classes: Vec<RunClass>, run_cost: f64) -> bool {
        let Some(g) = self.group[t] else { return false };
        // An oracle that ran more than asked is held to what was asked; one
        // that ran nothing counts as one run without a result.
        classes.truncate(budget as usize);
        if classes.is_empty() {
            self.silent.no_info += 1;
            self.untestable[t] = true;
            return false;
        }
        let done = classes.len() as u32;
        self.runs += done;
        self.groups[g].runs_here += done;
        self.seconds += done as f64 * run_cost;
        self.record(g, &classes);
        // A batch that moved nothing would be chosen again and again.
        if !classes.iter().any(|c| matches!(c, RunClass::Match | RunClass::Ok)) {
            for c in &classes {
                self.silent.add(*c);
            }
            self.untestable[t] = true;
            return false;
        }
        self.silent = ClassCounts::default();
        self.ever_told = true;
        true
    }

    /// Makes sure node `i`'s kernel is known (building it if needed).
    pub(super) fn ensure_built<O: Oracle>(&mut self, oracle: &mut O, i: usize) -> Result<(), O::Error> {
        if self.kernels[i] != Kernel::Unknown {
            return Ok(());
        }
        let cost = oracle.build_cost(i).max(0.0);
        // A build that returns nothing is as good as broken: never asked again.
        let k = match oracle.build(i)? {
            Kernel::Unknown => Kernel::Broken,
            k => k,
        };
        if cost > 0.0 {
            self.builds += 1;
            self.seconds += cost;
        }
        if k == Kernel::Broken {
            self.failed_in_a_row += 1;
        } else {
            self.failed_in_a_row = 0;
            self.ever_built = true;
        }
        self.learn(oracle, i, k)
    }

    /// The pessimistic end of p under hypothesis k: its 1% quantile (a few
    /// crashing kernels that matched at once make p look high; the 5%
    /// quantile then lets a kernel that crashes at p = 0.5 pass as clean
    /// too often).
    fn p_low(&self, post: &Posterior, k: usize) -> f64 {
        post.p_quantile(k, 0.01)
    }

    /// More ok runs a kernel needs to count as clean: until the odds of
    /// clean (matches at rate epsilon) against crashing at `p_low` reach
    /// 2 × confidence / (1 - confidence) (twice the model's odds: the
    /// boundary is where a wrong answer costs most, and a DAG's culprit has
    /// more neighbours to be wrong about than a line's). A match on it
    /// (which a clean kernel shows only at rate epsilon) asks for more.
    fn clean_runs_missing(&self, counts: &ClassCounts, p_low: f64) -> u32 {
        let eps = self.model.epsilon;
        let p_low = p_low.clamp(1e-6, 1.0 - 1e-9);
        let want = (2.0 * self.model.confidence / (1.0 - self.model.confidence)).ln();
        let have = counts.matched as f64 * (eps.ln() - p_low.ln())
            + counts.ok as f64 * ((1.0 - eps).ln() - (1.0 - p_low).ln());
        let per_ok = (1.0 - eps).ln() - (1.0 - p_low).ln();
        if have >= want {
            0
        } else if per_ok <= 0.0 {
            u32::MAX // p_low below epsilon: ok runs cannot tell
        } else {
            ((want - have) / per_ok).ceil().min(u32::MAX as f64) as u32
        }
    }

    /// What still stands between the most likely culprit `k` and naming it
    /// (KernelCI's boundary check, over every parent): `k` built and seen
    /// changed, every parent seen unchanged with the model's confidence
    /// (built, when no descendant off k's side shows it: a built parent's
    /// kernel differs from k's, or k would be impossible).
    /// Cause: a match on k's kernel, enough ok runs on each parent's that
    /// at the pessimistic end of p it is clean with chance above the
    /// confidence. Fix: the mirror (enough ok runs on k's, a match on each
    /// parent's). A base parent is checked the same way while no range
    /// kernel was seen unchanged, and one that shows the opposite side ends
    /// the search.
    pub(super) fn boundary_gap(&self, post: &Posterior, k: usize) -> Gap {
        let parents = self.graph.parents(k);
        let check_base = !self.range_seen_unchanged();
        let p_low = self.p_low(post, k);
        let changed_crashes = self.direction == Direction::Cause;
        // While the base side is suspect, its parents of k are checked first.
        let base_first = parents.iter().filter(|&&f| check_base && !self.graph.in_range(f));
        for &f in base_first {
            if self.base_is_contradicted(f) {
                return Gap::Base(f);
            }
            if let Some(gap) = self.side_gap(f, !changed_crashes, p_low) {
                return gap;
            }
        }
        if let Some(gap) = self.side_gap(k, changed_crashes, p_low) {
            return gap;
        }
        for &f in parents {
            if !self.graph.in_range(f) {
                if self.base_is_contradicted(f) {
                    return Gap::Base(f);
                }
                if !check_base {
                    continue; // assumed, as in git bisect
                }
            }
            // A descendant of f that k is not an ancestor of, seen unchanged,
            // shows f unchanged as strongly as f's own runs would (f changed
            // would change it too), and f's kernel then differs from k's (an
            // equal one would have k's verdict): git bisect's inference, at
            // the model's confidence.
            if self.seen_unchanged_below(f, k, p_low) {
                continue;
            }
            if let Some(gap) = self.side_gap(f, !changed_crashes, p_low) {
                return gap;
            }
        }
        Gap::Named {
            merge: parents.len() > 1,
        }
    }

    /// What node i still needs to be seen on its side (`crashes`: a match;
    /// else seen clean at `p_low`): a build, runs, or nothing.
    fn side_gap(&self, i: usize, crashes: bool, p_low: f64) -> Option<Gap> {
        let g = match self.kernels[i] {
            Kernel::Unknown => return Some(Gap::Build(i)),
            Kernel::Broken => return Some(Gap::Broken),
            Kernel::Signed(_) => self.group[i]?,
        };
        let counts = &self.groups[g].counts;
        let want = if crashes {
            (counts.matched == 0).then_some(self.model.runs.max(1))
        } else {
            Some(self.clean_runs_missing(counts, p_low)).filter(|n| *n > 0)
        }?;
        if self.groups[g].runs_here >= self.model.kernel_cap() {
            return Some(Gap::Capped);
        }
        // In batches: a test that tells nothing is seen early.
        Some(Gap::Run(i, want.min(self.model.runs.max(1))))
    }

    /// Whether f or a descendant of f that k is not an ancestor of has a
    /// kernel seen unchanged (cause: clean at `p_low`; fix: a match).
    fn seen_unchanged_below(&self, f: usize, k: usize, p_low: f64) -> bool {
        self.groups.iter().any(|g| {
            let seen = match self.direction {
                Direction::Cause => self.clean_runs_missing(&g.counts, p_low) == 0,
                Direction::Fix => g.counts.matched > 0,
            };
            seen && g
                .members
                .iter()
                .any(|&x| self.graph.is_ancestor(f, x) && !self.graph.is_ancestor(k, x))
        })
    }

    /// Whether some kernel of the range was seen on the unchanged side (cause:
    /// a full batch without a match; fix: a match). Until one is, every
    /// answer could be the base side's fault (a --good that is bad piles the
    /// mass on the range's oldest commits), so a base parent of the culprit
    /// is checked too; after that it is assumed, as `git bisect` does.
    fn range_seen_unchanged(&self) -> bool {
        self.groups.iter().any(|g| {
            g.members.iter().any(|&x| self.graph.in_range(x))
                && match self.direction {
                    Direction::Cause => g.counts.matched == 0 && g.counts.ok >= self.model.runs.max(1),
                    Direction::Fix => g.counts.matched > 0,
                }
        })
    }

    /// A base parent of `k` not checked yet.
    fn unchecked_base_parent(&self, k: usize) -> Option<usize> {
        self.graph
            .parents(k)
            .iter()
            .copied()
            .find(|&b| !self.graph.in_range(b) && !self.base_checked[b])
    }

    /// Builds base node `b` and gives it a batch; the ending if it shows the
    /// side it is assumed not to be on.
    fn check_base<O: Oracle>(
        &mut self,
        oracle: &mut O,
        post: &Posterior,
        k: usize,
        b: usize,
    ) -> Result<Option<Ending>, O::Error> {
        self.base_checked[b] = true;
        self.ensure_built(oracle, b)?;
        if self.counts_of(b).is_some_and(|c| c.matched + c.ok < self.model.runs) {
            let n = self
                .model
                .runs
                .max(self.clean_runs_missing(&ClassCounts::default(), self.p_low(post, k)));
            self.test(oracle, b, n)?;
        }
        Ok(self.base_is_contradicted(b).then(|| self.base_contradicted(b)))
    }

    /// Whether base node `b`'s runs say it is on the other side than
    /// assumed, by odds the confidence asks for: cause, a crashing kernel
    /// (rate p, uniform prior) against a clean one (rate epsilon); fix, the
    /// reverse.
    fn base_is_contradicted(&self, b: usize) -> bool {
        let Some(c) = self.counts_of(b) else { return false };
        let (m, o) = (c.matched as f64, c.ok as f64);
        let eps = self.model.epsilon;
        let log_clean = m * eps.ln() + o * (1.0 - eps).ln();
        let logs: Vec<f64> = (0..P_GRID)
            .map(|j| m * p_at(j).ln() + o * (1.0 - p_at(j)).max(1e-12).ln())
            .collect();
        let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let log_crashing = top + (logs.iter().map(|l| (l - top).exp()).sum::<f64>() / P_GRID as f64).ln();
        let log_odds = (self.model.confidence / (1.0 - self.model.confidence)).ln();
        match self.direction {
            // One match could be the error rate: two at least.
            Direction::Cause => c.matched >= 2 && log_crashing - log_clean >= log_odds,
            Direction::Fix => log_clean - log_crashing >= log_odds,
        }
    }

    fn base_contradicted(&self, b: usize) -> Ending {
        let c = self.counts_of(b).cloned().unwrap_or_default();
        Ending::BaseContradicted {
            index: b,
            matched: c.matched,
            runs: c.matched + c.ok + c.other + c.no_info,
            direction: self.direction,
        }
    }
}
