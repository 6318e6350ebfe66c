//! A simulated history for measuring bisection policies in-process: a
//! known culprit, spans of commits with identical kernels, stretches that
//! do not build, a reproducer that matches with probability `p` per run on
//! a bad kernel, and an unrelated crash with probability `e` per run on
//! every kernel. Seeded, so every trial can be replayed.
//!
//! The noisy search runs here through the same [`bayes::search`] the CLI
//! uses; [`classic`] is today's rule (any crash is bad, half the runs ok is
//! good, no-op parents inherit the verdict) on the same line of commits,
//! and [`plain`] is `git bisect` (one build and one verdict per step).
//!
//! Maintainer-style DAGs ([`dag`]) run the same search over the graph in
//! both directions, against [`git_bisect`], `git bisect`'s own choice on a
//! DAG (the commit whose ancestor count among the candidates is closest to
//! half).
//!
//! [`wallclock`] adds a clock, run and build slots and speculative builds
//! (issue 24): wall time of kcache sequential, kcache parallel and syzbot's
//! shape.
//!
//! Invariant: deterministic for a seed; touches no file, process or cache.

pub mod confirm;
pub mod dag;
pub mod timed;
pub mod wallclock;

use serde::Serialize;

use super::bayes::{self, Kernel, Oracle};
use super::graph::{Direction, Graph};
use crate::crash::{RunClass, Target};
use crate::signature::KernelSignature;

/// SplitMix64: small, fast, good enough for simulation, seedable.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The shape of one simulated bisection.
#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    /// Commits after the good endpoint (the range length).
    pub commits: usize,
    /// Fraction of commits that leave the kernel unchanged.
    pub noop: f64,
    /// Per-run chance that a bad kernel's run matches the target.
    pub p: f64,
    /// Per-run chance of an unrelated crash, on every kernel.
    pub e: f64,
    /// Fraction of commits in broken-build stretches.
    pub broken: f64,
    pub runs: u32,
    pub build_seconds: f64,
    pub run_seconds: f64,
}

impl Setting {
    /// Issue 24's wall-clock grid: `commits` on the range, a reproducer
    /// rate `p`, the given build and run seconds; 20% no-op commits, an
    /// unrelated crash in 1% of runs, 2% of commits in broken stretches,
    /// 10 runs a batch.
    pub fn wallclock(commits: usize, p: f64, build_seconds: f64, run_seconds: f64) -> Setting {
        Setting {
            commits,
            noop: 0.2,
            p,
            e: 0.01,
            broken: 0.02,
            runs: 10,
            build_seconds,
            run_seconds,
        }
    }
}

/// One simulated history with its truth: a graph (a line, or a
/// maintainer-style DAG from [`dag`]), a kernel per node, the culprit (the
/// first changed node: every node it is an ancestor of is changed).
#[derive(Debug, Clone)]
pub struct History {
    pub graph: Graph,
    /// Kernel id per node (equal ids: identical kernels).
    pub kernel: Vec<u32>,
    pub broken: Vec<bool>,
    pub culprit: usize,
    pub direction: Direction,
    pub p: f64,
    pub e: f64,
    pub build_seconds: f64,
    pub run_seconds: f64,
}

pub const TARGET_TITLE: &str = "KASAN: slab-out-of-bounds Read in target_function";
pub const OTHER_TITLE: &str = "WARNING in unrelated_function";

impl History {
    /// A line of `s.commits` commits after the good end (cause direction).
    pub fn generate(s: &Setting, rng: &mut Rng) -> History {
        let n = s.commits;
        let mut kernel = vec![0u32; n + 1];
        let mut id = 0;
        for k in kernel.iter_mut().skip(1) {
            if rng.uniform() >= s.noop {
                id += 1;
            }
            *k = id;
        }
        // Broken stretches: a few runs of consecutive commits.
        let mut broken = vec![false; n + 1];
        let want = (s.broken * n as f64).round() as usize;
        let mut placed = 0;
        while placed < want {
            let len = (want - placed).min(1 + rng.below(8.max(want / 3)));
            let start = 1 + rng.below(n.saturating_sub(len).max(1));
            for b in broken.iter_mut().skip(start).take(len).filter(|b| !**b) {
                *b = true;
                placed += 1;
            }
        }
        // The culprit changes the kernel, builds, and so does its parent
        // (else no bisection could name it).
        let changing: Vec<usize> = (1..n)
            .filter(|&i| kernel[i] != kernel[i - 1] && !broken[i] && !broken[i - 1])
            .collect();
        let culprit = if changing.is_empty() {
            n
        } else {
            changing[rng.below(changing.len())]
        };
        broken[n] = false;
        History {
            graph: Graph::line(n + 1),
            kernel,
            broken,
            culprit,
            direction: Direction::Cause,
            p: s.p,
            e: s.e,
            build_seconds: s.build_seconds,
            run_seconds: s.run_seconds,
        }
    }

    /// Whether node i is changed: the culprit is i or an ancestor of i.
    pub fn changed(&self, i: usize) -> bool {
        self.graph.is_ancestor(self.culprit, i)
    }

    /// Whether node i's kernel has the target bug (cause: changed; fix: not
    /// changed, the fix not in it yet).
    pub fn bad(&self, i: usize) -> bool {
        self.changed(i) == (self.direction == Direction::Cause)
    }

    fn signature(&self, i: usize) -> KernelSignature {
        kernel_signature(self.kernel[i])
    }

    /// What building commit i gives.
    pub fn kernel_of(&self, i: usize) -> Kernel {
        if self.broken[i] {
            Kernel::Broken
        } else {
            Kernel::Signed(self.signature(i))
        }
    }

    /// One run on commit i's kernel: a title when it crashed.
    pub fn run(&self, i: usize, rng: &mut Rng) -> Option<&'static str> {
        self.run_kernel(self.bad(i), rng)
    }

    /// One run on a kernel that has the bug or not (a node's, or one the
    /// history has no node for: a culprit reverted on the crashing end).
    pub fn run_kernel(&self, bad: bool, rng: &mut Rng) -> Option<&'static str> {
        if rng.uniform() < self.e {
            return Some(OTHER_TITLE);
        }
        (bad && rng.uniform() < self.p).then_some(TARGET_TITLE)
    }
}

/// The simulation as an [`Oracle`]: nothing cached at the start; every
/// kernel's runs pooled by signature.
/// The signature the simulation mints for its kernel number `kernel`.
fn kernel_signature(kernel: u32) -> KernelSignature {
    KernelSignature::of_label(&format!("simulated kernel {kernel}"))
}

pub struct SimOracle<'h> {
    pub history: &'h History,
    pub rng: Rng,
    built: Vec<bool>,
    runs: SimRuns,
}

impl<'h> SimOracle<'h> {
    pub fn new(history: &'h History, seed: u64) -> SimOracle<'h> {
        SimOracle {
            history,
            rng: Rng::new(seed),
            built: vec![false; history.kernel.len()],
            runs: Default::default(),
        }
    }
}

/// Every simulated run's raw title (None: ok) per kernel id: what a
/// simulated oracle pools by signature.
#[derive(Default)]
pub(crate) struct SimRuns(std::collections::HashMap<u32, Vec<Option<&'static str>>>);

impl SimRuns {
    /// Records a run on `kernel` and classifies it against `target`.
    pub(crate) fn add(&mut self, kernel: u32, title: Option<&'static str>, target: &Target) -> RunClass {
        self.0.entry(kernel).or_default().push(title);
        classify(target, title)
    }

    /// Every run so far on the kernel with this signature, classified.
    pub(crate) fn pooled(&self, signature: &KernelSignature, target: &Target) -> Vec<RunClass> {
        self.0
            .iter()
            .find(|(kernel, _)| kernel_signature(**kernel) == *signature)
            .map(|(_, v)| v.iter().map(|t| classify(target, *t)).collect())
            .unwrap_or_default()
    }
}

fn classify(target: &Target, title: Option<&str>) -> RunClass {
    match title {
        None => RunClass::Ok,
        Some(t) => target.classify_crash(Some(t)),
    }
}

impl Oracle for SimOracle<'_> {
    type Error = std::convert::Infallible;

    fn known(&mut self, _i: usize) -> Result<Kernel, Self::Error> {
        Ok(Kernel::Unknown)
    }

    fn build(&mut self, i: usize) -> Result<Kernel, Self::Error> {
        self.built[i] = true;
        Ok(self.history.kernel_of(i))
    }

    fn build_cost(&self, i: usize) -> f64 {
        if self.built[i] {
            0.0
        } else {
            self.history.build_seconds
        }
    }

    fn run_cost(&self) -> f64 {
        self.history.run_seconds
    }

    fn pooled(&mut self, signature: &KernelSignature, target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        Ok(self.runs.pooled(signature, target))
    }

    fn run(&mut self, i: usize, _sig: &KernelSignature, n: u32, target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        let mut out = Vec::new();
        for _ in 0..n {
            let title = self.history.run(i, &mut self.rng);
            let class = self.runs.add(self.history.kernel[i], title, target);
            out.push(class);
            if class == RunClass::Match {
                break;
            }
        }
        Ok(out)
    }
}

/// What one policy did on one history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trial {
    pub culprit: Option<usize>,
    pub right: bool,
    pub builds: u32,
    pub runs: u32,
}

/// The noisy search on a history through a simulated oracle, the target
/// title known (syzbot knows it): the culprit it names, and its outcome.
pub(crate) fn search_with<O: Oracle<Error = std::convert::Infallible>>(
    h: &History,
    model: &bayes::Model,
    oracle: &mut O,
) -> (Option<usize>, bayes::Outcome) {
    let out = match bayes::search(model, Target::new([TARGET_TITLE]), &h.graph, h.direction, oracle) {
        Ok(o) => o,
        Err(never) => match never {},
    };
    let culprit = match out.ending {
        bayes::Ending::Culprit { index, .. } => Some(index),
        _ => None,
    };
    (culprit, out)
}

/// The noisy search on a history, the target title known (syzbot knows it).
pub fn bayes(h: &History, model: &bayes::Model, seed: u64) -> Trial {
    let (culprit, out) = search_with(h, model, &mut SimOracle::new(h, seed));
    Trial {
        culprit,
        right: culprit == Some(h.culprit),
        builds: out.builds,
        runs: out.runs,
    }
}

/// `git bisect run` on the history's graph: the candidates are the range
/// nodes that are ancestors of the bad end and of no good one; each step
/// tests the candidate whose ancestor count among the candidates is closest
/// to half (git's `--bisect` choice), one build and `runs` runs (stopping at
/// the first crash, any crash is bad), no pooling, no signature check;
/// a broken build is skipped. Fix direction: `git bisect --term-old=broken
/// --term-new=fixed`, the same with the verdict reversed.
pub fn git_bisect(h: &History, runs: u32, seed: u64) -> Trial {
    let g = &h.graph;
    let mut rng = Rng::new(seed);
    let mut t = Trial::default();
    let mut candidate: Vec<bool> = (0..g.len()).map(|i| g.in_range(i)).collect();
    let mut skipped = vec![false; g.len()];
    let mut tested = vec![false; g.len()];
    loop {
        let count = candidate.iter().filter(|c| **c).count();
        let values: Vec<[f64; 1]> = candidate.iter().map(|&c| [c as u8 as f64]).collect();
        let below = g.ancestor_sums(&values);
        if count == 1 {
            // One candidate left: the first new commit.
            t.culprit = candidate.iter().position(|c| *c);
            t.right = t.culprit == Some(h.culprit);
            return t;
        }
        // The current new end is the candidate every other descends to
        // (ancestor count = count); it needs no test.
        let best = (0..g.len())
            .filter(|&i| candidate[i] && !skipped[i] && (below[i][0] as usize) < count)
            .min_by(|&a, &b| {
                let d = |i: usize| (2.0 * below[i][0] - count as f64).abs();
                d(a).total_cmp(&d(b)).then(a.cmp(&b))
            });
        // Only skipped commits left: git names none.
        let Some(x) = best else { return t };
        if !tested[x] {
            tested[x] = true;
            t.builds += 1;
        }
        if h.broken[x] {
            skipped[x] = true;
            continue;
        }
        let mut crashed = false;
        for _ in 0..runs {
            t.runs += 1;
            if h.run(x, &mut rng).is_some() {
                crashed = true;
                break;
            }
        }
        // "new": has the bug (cause) or is fixed (fix).
        let new = crashed == (h.direction == Direction::Cause);
        for (i, c) in candidate.iter_mut().enumerate() {
            if *c {
                let anc = g.is_ancestor(i, x);
                *c = if new { anc } else { !anc };
            }
        }
    }
}

/// Today's rule on a line: pooled runs per kernel, any crash bad, half the
/// runs ok good, else skip; a culprit whose parent has its kernel passes
/// the blame to the parent (never a no-op culprit).
pub fn classic(h: &History, runs: u32, seed: u64) -> Trial {
    bisect_line(h, runs, seed, true)
}

/// `git bisect run` with the same test: one build and `runs` runs (stop at
/// the first crash) per step, no pooling, no signature check.
pub fn plain(h: &History, runs: u32, seed: u64) -> Trial {
    bisect_line(h, runs, seed, false)
}

struct Line<'h> {
    h: &'h History,
    runs: u32,
    pooled: bool,
    rng: Rng,
    built: Vec<bool>,
    /// Runs per kernel (or per commit without pooling): (crashes, oks).
    pool: std::collections::HashMap<u32, (u32, u32)>,
    t: Trial,
}

impl Line<'_> {
    fn build(&mut self, i: usize) {
        if !self.built[i] {
            self.built[i] = true;
            self.t.builds += 1;
        }
    }

    /// Bad (`Some(true)`), good, or skip (`None`) by the old rule.
    fn verdict(&mut self, i: usize) -> Option<bool> {
        self.build(i);
        if self.h.broken[i] {
            return None;
        }
        let key = if self.pooled {
            self.h.kernel[i]
        } else {
            i as u32 + 1_000_000
        };
        let e = self.pool.entry(key).or_default();
        while e.0 == 0 && e.0 + e.1 < self.runs {
            self.t.runs += 1;
            match self.h.run(i, &mut self.rng) {
                Some(_) => e.0 += 1,
                None => e.1 += 1,
            }
        }
        Some(e.0 > 0)
    }
}

fn bisect_line(h: &History, runs: u32, seed: u64, pooled: bool) -> Trial {
    let n = h.kernel.len() - 1;
    let mut l = Line {
        h,
        runs,
        pooled,
        rng: Rng::new(seed),
        built: vec![false; n + 1],
        pool: Default::default(),
        t: Trial::default(),
    };
    let (mut lo, mut hi) = (0usize, n);
    let mut skipped = std::collections::HashSet::new();
    loop {
        let open: Vec<usize> = (lo + 1..hi).filter(|i| !skipped.contains(i)).collect();
        if open.is_empty() {
            if (lo + 1..hi).any(|i| skipped.contains(&i)) {
                return l.t; // inconclusive
            }
            if pooled {
                // The culprit's parent: the same kernel inherits the verdict.
                let parent = hi - 1;
                l.build(hi);
                l.build(parent);
                if h.kernel[parent] == h.kernel[hi] && !h.broken[parent] {
                    if parent == lo {
                        return l.t; // no boundary
                    }
                    hi = parent;
                    continue;
                }
            }
            l.t.culprit = Some(hi);
            l.t.right = hi == h.culprit;
            return l.t;
        }
        // The midpoint of the open commits (git bisect's choice on a line).
        let mid = open[open.len() / 2];
        match l.verdict(mid) {
            Some(true) => hi = mid,
            Some(false) => lo = mid,
            None => {
                skipped.insert(mid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(p: f64, e: f64) -> Setting {
        Setting {
            commits: 300,
            noop: 0.2,
            p,
            e,
            broken: 0.02,
            runs: 10,
            build_seconds: 600.0,
            run_seconds: 60.0,
        }
    }

    #[test]
    fn histories_are_deterministic_and_sane() {
        let s = setting(1.0, 0.0);
        let a = History::generate(&s, &mut Rng::new(7));
        let b = History::generate(&s, &mut Rng::new(7));
        assert_eq!(a.kernel, b.kernel);
        assert_eq!(a.culprit, b.culprit);
        assert!(!a.broken[a.culprit] && a.kernel[a.culprit] != a.kernel[a.culprit - 1]);
        assert!(!a.bad(0) && a.bad(300));
    }

    #[test]
    fn with_a_perfect_reproducer_every_policy_is_right() {
        for seed in 0..20 {
            let h = History::generate(&setting(1.0, 0.0), &mut Rng::new(seed));
            let model = bayes::Model::default();
            assert!(bayes(&h, &model, seed).right, "bayes, seed {seed}");
            assert!(classic(&h, 10, seed).right, "classic, seed {seed}");
        }
    }

    #[test]
    fn the_noisy_search_survives_flakiness_and_unrelated_crashes() {
        let mut right = 0;
        for seed in 0..30 {
            let h = History::generate(&setting(0.3, 0.02), &mut Rng::new(seed));
            right += bayes(&h, &bayes::Model::default(), seed).right as u32;
        }
        assert!(right >= 28, "{right}/30");
    }
}
