//! The noisy search: a posterior over which commit of a DAG first changed
//! the kernel's behaviour, and the next action chosen for the most
//! information per second.
//!
//! The range is a [`Graph`]: commits in topological order, the *base* side
//! (parents of range commits outside the range: the good end of a cause
//! bisection, the still-crashing end of a fix bisection) and the range
//! itself, whose last node is the tip. Hypothesis `k` (a range node) says
//! `k` is the first *changed* commit: node `x` is changed exactly when `k` is
//! `x` or an ancestor of `x` (changed = has the bug for [`Direction::Cause`],
//! is fixed for [`Direction::Fix`]); hypothesis *none* says no commit of the
//! range changed it (cause: the tip does not reproduce this bug; fix: the
//! tip still crashes). Nodes with identical kernels must get one verdict, so
//! `k` is impossible when it is an ancestor of one and not of the other (on a
//! line: no `k` in `i+1..=j` for equal kernels at `i < j`): a merge whose
//! kernel equals a parent's, or a no-op commit, is never blamed.
//!
//! Likelihood of the runs, classified against the target ([`crate::crash`]):
//! on the crashing side (cause: changed; fix: unchanged) a run matches with
//! an unknown rate `p` (a prior over a grid of `p` from 0.05 to 1, updated
//! from the pooled runs of every kernel on that side); on the other side a
//! run matches only through a small error rate [`Model::epsilon`]. Runs that
//! crashed with another bug, and runs that say nothing (infrastructure,
//! boot failure), do not move the boundary.
//!
//! Actions: more runs on a kernel already built, or building a commit (free
//! when the cache has it) and testing it; each scored by the mutual
//! information between its outcome (a match within the batch or not) and
//! the hypotheses, per second of expected cost. A test of `x` speaks about
//! the posterior mass of `x`'s ancestor set: with the graph's chain
//! decomposition every such sum is `W` prefix-sum look-ups, so a step is
//! O(n·W) ([`graph`](super::graph)). With several run slots the search
//! chooses a set of tests for one wave, by joint information per wall
//! second, and before each test it wishes for the builds it will likely
//! ask next ([`Oracle::prefetch`]); both in `plan`.
//!
//! Termination is a property of the search, whatever the oracle answers
//! ([`boundary`] has the bound): every commit is built at most once, every
//! kernel gets at most [`Model::kernel_cap`] runs from one search, a batch
//! that tells nothing retires its commit, and eight failed builds in a row
//! (while none succeeded; 24 once one did) or `2 × runs` test runs in a row
//! that tell nothing end the search with an [`Ending`] that says so.
//!
//! Invariant: knows nothing of git, builds or the cache: it sees a
//! [`Graph`] and asks an [`Oracle`] for builds and runs.

#[cfg(test)]
mod adversarial;
pub mod boundary;
mod choose;
mod plan;
mod posterior;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::Serialize;

use super::graph::{Direction, Graph};
use crate::crash::{ClassCounts, RunClass, Target};
use crate::signature::KernelSignature;
pub use posterior::Posterior;
use posterior::Search;

/// The prior over `p`, the rate at which a run on a crashing kernel matches.
const P_GRID: usize = 20;

/// An action that tells less than this (bits) is not worth its cost: the
/// search is as sure as its tests can make it.
const MIN_GAIN: f64 = 0.005;

/// A kernel tested before gets `runs / RETEST_SHARE` more runs at a time.
const RETEST_SHARE: u32 = 2;

fn p_at(j: usize) -> f64 {
    (j + 1) as f64 / P_GRID as f64
}

/// What the search is told about one commit of the range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kernel {
    /// Not built (or not known) yet.
    Unknown,
    /// Built: its signature (a simulation mints its own,
    /// [`KernelSignature::of_label`]).
    Signed(KernelSignature),
    /// Cannot be built: no information, ever.
    Broken,
}

impl Kernel {
    /// A built kernel by its signature; no signature: it does not build.
    pub fn of_signature(signature: Option<KernelSignature>) -> Kernel {
        signature.map_or(Kernel::Broken, Kernel::Signed)
    }

    /// A test's kernel named by a short label (its signature minted).
    #[cfg(test)]
    fn labelled(label: &str) -> Kernel {
        Kernel::Signed(KernelSignature::of_label(label))
    }
}

/// Where builds and runs come from (git and the cache, or a simulation).
/// Indices are the [`Graph`]'s nodes; base nodes may be asked too (to check
/// that the good end really is good).
pub trait Oracle {
    type Error;
    /// What is known of commit `i` without building (cached or predicted).
    fn known(&mut self, i: usize) -> Result<Kernel, Self::Error>;
    /// Builds commit `i` (or reuses it): its kernel.
    fn build(&mut self, i: usize) -> Result<Kernel, Self::Error>;
    /// Seconds building commit `i` would cost now (0 when known).
    fn build_cost(&self, i: usize) -> f64;
    /// Seconds one test run costs.
    fn run_cost(&self) -> f64;
    /// Runs this bisection already made on a kernel before the search
    /// learnt it (to learn the target on the bad end): they count toward
    /// [`Model::kernel_cap`] with the search's own.
    fn runs_made(&self, _signature: &KernelSignature) -> u32 {
        0
    }
    /// Every run already pooled for a kernel: classes.
    fn pooled(&mut self, signature: &KernelSignature, target: &Target) -> Result<Vec<RunClass>, Self::Error>;
    /// Runs the test on commit `i`'s kernel up to `n` times, stopping at the
    /// first run that matches the target; the classes of the runs done.
    fn run(&mut self, i: usize, sig: &KernelSignature, n: u32, target: &Target) -> Result<Vec<RunClass>, Self::Error>;
    /// Where the search stands before a test: how many commits still hold
    /// 95% of the mass, and the likeliest culprit's probability.
    fn standing(&mut self, _credible: usize, _best: f64) {}

    // --- Parallel work (issue 24). Defaults: one thing at a time. ---

    /// Test runs this oracle can do at once (run slots: processes or VMs).
    /// A batch of `n` runs then costs `ceil(n / slots)` run times of wall
    /// clock, and a set of batches on different kernels can share the slots.
    fn slots(&self) -> u32 {
        1
    }
    /// Runs several batches at once, one per entry `(node, signature, n)`,
    /// each stopping (starting no new run) at its first match; the classes
    /// of each batch's runs, in the order asked. Runs already in flight when
    /// a batch matches are finished and counted (they are evidence about
    /// `p`), so a batch may return more than one match.
    fn run_set(
        &mut self,
        batches: &[(usize, KernelSignature, u32)],
        target: &Target,
    ) -> Result<Vec<Vec<RunClass>>, Self::Error> {
        batches
            .iter()
            .map(|(i, sig, n)| self.run(*i, sig, *n, target))
            .collect()
    }
    /// The commits the search will most likely ask to build next, most
    /// wanted first (under each outcome of the tests about to run, then the
    /// next level). An oracle with idle build slots may build them now, in
    /// the background; a later `build` of one of them waits for it. Called
    /// before each test; each call replaces the previous wish list.
    fn prefetch(&mut self, _wanted: &[usize]) {}
    /// Whether `prefetch` builds anything. The lookahead behind it costs
    /// as much thinking as a step's own choice: a search whose oracle
    /// does not build ahead skips it.
    fn builds_ahead(&self) -> bool {
        false
    }
    /// Builds this oracle can make at once (build slots). With more than
    /// one, the search counts a set's builds as running side by side (it
    /// asks for them through `prefetch` first, then `build`s each).
    fn build_slots(&self) -> u32 {
        1
    }
}

/// Settings of the search.
#[derive(Debug, Clone)]
pub struct Model {
    /// A kernel without the bug: its chance per run of a crash that matches the target.
    pub epsilon: f64,
    /// Prior mass of "no culprit in the range".
    pub prior_none: f64,
    /// Stop when the most likely culprit has this probability.
    pub confidence: f64,
    /// Runs per batch.
    pub runs: u32,
    pub max_runs: Option<u32>,
    pub max_builds: Option<u32>,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            epsilon: 0.01,
            prior_none: 0.05,
            confidence: 0.95,
            runs: 10,
            max_runs: None,
            max_builds: None,
        }
    }
}

impl Model {
    /// The most runs one search makes on one kernel: enough for the boundary
    /// check's worst case at confidence 0.95 (89 ok runs to tell a clean
    /// kernel from one that crashes at the bottom of the prior, p = 0.05),
    /// never more.
    pub fn kernel_cap(&self) -> u32 {
        (10 * self.runs.max(1)).max(100)
    }
}

/// How the search ended. `Display` says it in one sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ending {
    /// The first changed commit, with its probability. `merge`: it is a merge
    /// whose every parent was seen unchanged (the change comes from
    /// combining the branches).
    Culprit {
        index: usize,
        probability: f64,
        merge: bool,
        direction: Direction,
    },
    /// No commit of the range changed the kernel (cause: the tip does not
    /// reproduce this bug; fix: the tip still crashes).
    NoCulprit { probability: f64, direction: Direction },
    /// The base side is not what it is assumed to be (cause: the good end
    /// reproduces the crash; fix: the bad end does not): base node `index`'s
    /// kernel, `matched` of `runs` runs matched.
    BaseContradicted {
        index: usize,
        matched: u32,
        runs: u32,
        direction: Direction,
    },
    /// Test runs in a row told nothing (timeouts, boot failures, other
    /// crashes). `all`: no run of this search told anything.
    Untestable {
        runs: u32,
        no_info: u32,
        other: u32,
        all: bool,
    },
    /// Builds in a row failed. `all`: no build of this search succeeded.
    Unbuildable { failed: u32, all: bool },
    /// A budget ran out, or no action could tell more (untestable commits):
    /// the fewest commits holding 95% of the mass.
    Undecided {
        why: String,
        credible: Vec<usize>,
        mass: f64,
    },
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ending::Culprit {
                probability,
                merge,
                direction,
                ..
            } => {
                let what = match direction {
                    Direction::Cause => "first bad commit",
                    Direction::Fix => "first fixed commit",
                };
                if *merge {
                    let parents = match direction {
                        Direction::Cause => "was seen good",
                        Direction::Fix => "was seen still crashing",
                    };
                    write!(
                        f,
                        "the {what} is a merge whose every parent {parents}: the change comes from combining \
                         the branches (probability {probability:.3})"
                    )
                } else {
                    write!(f, "found the {what} (probability {probability:.3})")
                }
            }
            Ending::NoCulprit {
                probability,
                direction: Direction::Cause,
            } => write!(
                f,
                "no commit of the range brought the crash: the bad end does not reproduce it \
                 (probability {probability:.3})"
            ),
            Ending::NoCulprit {
                probability,
                direction: Direction::Fix,
            } => write!(
                f,
                "no commit of the range fixed the crash: the good (new) end still reproduces it \
                 (probability {probability:.3})"
            ),
            Ending::BaseContradicted {
                matched,
                runs,
                direction,
                ..
            } => match direction {
                Direction::Cause => write!(
                    f,
                    "the good end reproduces the crash: {matched} of {runs} runs matched; give a --good \
                     from before the regression"
                ),
                Direction::Fix => write!(
                    f,
                    "the bad (old) end does not reproduce the crash: {matched} of {runs} runs matched"
                ),
            },
            Ending::Untestable {
                runs,
                no_info,
                other,
                all,
            } => write!(
                f,
                "{} timed out or told nothing: {runs} runs, {no_info} without a result (timeout, boot or \
                 infrastructure failure), {other} with another crash",
                if *all { "every test run" } else { "the last test runs" }
            ),
            Ending::Unbuildable { failed, all } => {
                if *all {
                    write!(f, "every build failed ({failed} builds): fix the build and run again")
                } else {
                    write!(f, "{failed} builds in a row failed: fix the build and run again")
                }
            }
            Ending::Undecided { why, credible, mass } => write!(
                f,
                "undecided ({why}): the culprit is one of {} commits with probability {mass:.2}",
                credible.len()
            ),
        }
    }
}

/// Per kernel: where it is in the range and what its runs say.
#[derive(Debug, Clone, Serialize)]
pub struct KernelEvidence {
    pub signature: KernelSignature,
    /// Nodes of the graph with this kernel (indices).
    pub commits: Vec<usize>,
    pub counts: ClassCounts,
    /// The posterior probability that the culprit is one of these commits.
    pub mass: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub ending: Ending,
    pub builds: u32,
    pub runs: u32,
    pub seconds: f64,
    pub kernels: Vec<KernelEvidence>,
    /// The fewest commits holding 95% of the final posterior, most likely first.
    pub credible: Vec<usize>,
}

/// Runs the noisy search to its end (within [`boundary::bound`]).
pub fn search<O: Oracle>(
    model: &Model,
    target: Target,
    graph: &Graph,
    direction: Direction,
    oracle: &mut O,
) -> Result<Outcome, O::Error> {
    let mut s = Search::new(model, target, graph, direction);
    for i in 0..graph.len() {
        let k = oracle.known(i)?;
        if k != Kernel::Unknown {
            s.learn(oracle, i, k)?;
        }
    }
    let ending = s.run(oracle)?;
    let post = s.posterior();
    let kernels = s
        .groups
        .iter()
        .map(|g| KernelEvidence {
            signature: g.signature.clone(),
            mass: g.members.iter().map(|&i| post.mass[i]).sum(),
            commits: g.members.clone(),
            counts: g.counts.clone(),
        })
        .collect();
    Ok(Outcome {
        ending,
        builds: s.builds,
        runs: s.runs,
        seconds: s.seconds,
        kernels,
        credible: post.credible(0.95).0,
    })
}

/// The posterior of a line of tested kernels (`Graph::line`, cause), for
/// judging syzbot logs: `kernels[i]` is node i's kernel (node 0 the good
/// end); `evidence` the runs per kernel label.
pub fn line_posterior(model: &Model, kernels: &[Kernel], evidence: &[(KernelSignature, ClassCounts)]) -> Posterior {
    let graph = Graph::line(kernels.len());
    let mut s = Search::new(model, Target::default(), &graph, Direction::Cause);
    for (i, k) in kernels.iter().enumerate() {
        s.set_kernel(i, k.clone());
    }
    for (sig, counts) in evidence {
        if let Some(g) = s.group_of_signature(sig) {
            s.groups[g].counts = counts.clone();
        }
    }
    s.posterior()
}
