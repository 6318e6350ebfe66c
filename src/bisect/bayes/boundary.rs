//! The search loop: testing, the boundary check before a culprit is named,
//! the checks of the base side, and termination.
//!
//! The bound ([`bound`]): on a graph of N nodes, with C = `Model::kernel_cap`
//! (80 at 10 runs a batch), one search makes at most N builds (a node's
//! kernel, once known, never changes; a build that returns nothing counts as
//! broken) and at most C runs per kernel, so at most C·N runs. Every step of
//! the loop builds a node, makes at least one run, retires a node whose batch
//! told nothing, marks a base node checked, or ends; so the loop takes at
//! most N (builds) + C·N (runs) + N (retired) + N (base checks) + 1 steps.
//! Sooner than that: 8 failed builds in a row end it ([`Ending::Unbuildable`]),
//! and so do `2 × runs` test runs in a row that tell nothing
//! ([`Ending::Untestable`]).
//!
//! Invariant: never names a culprit whose kernel or whose parents' kernels
//! were not built and seen on their side with the confidence the model asks.

use super::choose::Action;
use super::posterior::{Posterior, Search};
use super::{p_at, Ending, Kernel, Oracle, P_GRID};
use crate::bisect::graph::Direction;
use crate::crash::{ClassCounts, RunClass};

/// Failed builds in a row that end a search.
const FAILED_BUILDS_IN_A_ROW: u32 = 8;

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
enum Gap {
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

impl Search<'_, '_> {
    /// The loop: think, act, until an ending.
    pub(super) fn run<O: Oracle>(&mut self, oracle: &mut O) -> Result<Ending, O::Error> {
        let (builds, runs) = bound(self.graph.len(), self.model.runs);
        let steps = builds + runs + 2 * self.graph.len() as u64 + 1;
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
                match self.next(oracle, &post) {
                    Action::Test(t, batch) => self.test(oracle, t, batch).map(drop)?,
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
                Gap::Build(i) => self.ensure_built(oracle, i)?,
                Gap::Run(i, n) => {
                    if !self.test(oracle, i, n)? && self.out_of_budget().is_none() && self.stuck().is_none() {
                        if !self.ever_told {
                            return Ok(self.untestable());
                        }
                        return Ok(self.undecided(
                            &post,
                            "the boundary cannot be checked: its tests tell nothing (timeouts, boot failures, \
                             other crashes)",
                        ));
                    }
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
        if self.failed_in_a_row >= FAILED_BUILDS_IN_A_ROW {
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
        if self.kernels[t] == Kernel::Unknown {
            self.ensure_built(oracle, t)?;
            // A kernel the search already has runs for (a no-op commit): what
            // it tells is new already (hypotheses ruled out); think again
            // before running more.
            if let Some(c) = self.counts_of(t) {
                if c.matched + c.ok > 0 {
                    return Ok(true);
                }
            }
        }
        let (Kernel::Signed(sig), Some(g)) = (self.kernels[t].clone(), self.group[t]) else {
            return Ok(false);
        };
        let left_here = self.model.kernel_cap().saturating_sub(self.groups[g].runs_here);
        let budget = self
            .model
            .max_runs
            .map_or(batch, |m| m.saturating_sub(self.runs).min(batch))
            .min(left_here);
        if budget == 0 {
            self.untestable[t] = true;
            return Ok(false);
        }
        let mut classes = oracle.run(t, &sig, budget, &self.target)?;
        // An oracle that ran more than asked is held to what was asked.
        classes.truncate(budget as usize);
        let done = classes.len() as u32;
        self.runs += done;
        self.groups[g].runs_here += done;
        self.seconds += done as f64 * oracle.run_cost();
        self.record(g, &classes);
        // A batch that moved nothing would be chosen again and again.
        if !classes.iter().any(|c| matches!(c, RunClass::Match | RunClass::Ok)) {
            for c in &classes {
                self.silent.add(*c);
            }
            self.untestable[t] = true;
            return Ok(false);
        }
        self.silent = ClassCounts::default();
        self.ever_told = true;
        Ok(true)
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

    /// Runs needed on a clean kernel to rule out, at the pessimistic end of
    /// p under hypothesis k, that it crashes: fewer than that many ok runs in
    /// a row leave more than 1 - confidence.
    fn needed_clean_runs(&self, post: &Posterior, k: usize) -> u32 {
        let p_low = post.p_quantile(k, 0.05);
        ((1.0 - self.model.confidence).ln() / (1.0 - p_low).max(1e-9).ln()).ceil() as u32
    }

    /// What still stands between the most likely culprit `k` and naming it
    /// (KernelCI's boundary check, over every parent): `k` and each parent
    /// built (their kernels then differ, or k would be impossible), `k` seen
    /// changed and every parent seen unchanged with the model's confidence.
    /// Cause: a match on k's kernel, enough ok runs on each parent's that
    /// at the pessimistic end of p it is clean with chance above the
    /// confidence. Fix: the mirror (enough ok runs on k's, a match on each
    /// parent's). A base parent is checked the same way while no range
    /// kernel was seen unchanged, and one that shows the opposite side ends
    /// the search.
    fn boundary_gap(&self, post: &Posterior, k: usize) -> Gap {
        let parents = self.graph.parents(k);
        let check_base = !self.range_seen_unchanged();
        let checked = |i: &&usize| check_base || self.graph.in_range(**i);
        for &i in std::iter::once(&k).chain(parents.iter().filter(checked)) {
            match self.kernels[i] {
                Kernel::Unknown => return Gap::Build(i),
                Kernel::Broken => return Gap::Broken,
                Kernel::Signed(_) => {}
            }
        }
        let clean_needed = self.needed_clean_runs(post, k);
        let (changed_crashes, parents_crash) = match self.direction {
            Direction::Cause => (true, false),
            Direction::Fix => (false, true),
        };
        for (&i, crashes) in std::iter::once(&k)
            .map(|i| (i, changed_crashes))
            .chain(parents.iter().map(|i| (i, parents_crash)))
        {
            if !self.graph.in_range(i) {
                if self.base_is_contradicted(i) {
                    return Gap::Base(i);
                }
                if !check_base {
                    continue; // assumed, as in git bisect
                }
            }
            let (Some(g), Some(counts)) = (self.group[i], self.counts_of(i)) else {
                return Gap::Build(i); // not reached: the loop above saw it signed
            };
            let want = if crashes {
                (counts.matched == 0).then_some(self.model.runs.max(1))
            } else {
                (counts.ok < clean_needed).then(|| clean_needed - counts.ok)
            };
            if let Some(n) = want {
                if self.groups[g].runs_here >= self.model.kernel_cap() {
                    return Gap::Capped;
                }
                // In batches: a test that tells nothing is seen early.
                return Gap::Run(i, n.min(self.model.runs.max(1)));
            }
        }
        Gap::Named {
            merge: parents.len() > 1,
        }
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
            let n = self.model.runs.max(self.needed_clean_runs(post, k));
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
