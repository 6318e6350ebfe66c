//! The noisy search: a posterior over where the first bad kernel is, and
//! the next action chosen for the most information per second.
//!
//! The range is a line of commits, index 0 the good endpoint (assumed good,
//! as in `git bisect`) and `n` the bad one. Hypothesis `k` (1..=n) says
//! commit `k` is the first whose kernel has the target bug; hypothesis
//! *none* says no commit in the range brought it (the bad endpoint's crash
//! is not this bug, or it does not reproduce). Commits whose kernels are
//! identical are one node: when commits `i < j` have the same signature,
//! no `k` in `i+1..=j` is possible, so a no-op commit can never be the
//! boundary.
//!
//! Likelihood of the runs, classified against the target ([`crate::crash`]):
//! on the bad side a run matches with an unknown rate `p` (a prior over a
//! grid of `p` from 0.05 to 1, updated from the pooled runs of every kernel
//! on that side); on the good side a run matches only through a small error
//! rate [`Model::epsilon`]. Runs that crashed with another bug, and runs
//! that say nothing (infrastructure, boot failure), do not move the
//! boundary: a kernel where the target never shows while other crashes
//! dominate stays unknown, never good.
//!
//! Actions: more runs on a kernel already built, or building a commit (free
//! when the cache has it, predicted or remote) and testing it; each scored
//! by the mutual information between its outcome (a match within the batch
//! or not) and the boundary, per second of expected cost. Everything is
//! computed in O(n) per step with prefix sums, for ranges of 10,000 commits.
//!
//! Invariant: knows nothing of git, builds or the cache: it sees a
//! [`Range`] and asks an [`Oracle`] for builds and runs.

use serde::Serialize;

use crate::crash::{ClassCounts, RunClass, Target};

/// The prior over `p`, the rate at which a run on a bad kernel matches.
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
    /// Built: its signature.
    Signed(String),
    /// Cannot be built: no information, ever.
    Broken,
}

impl Kernel {
    /// A built kernel by its signature; no signature: it does not build.
    pub fn of_signature(signature: Option<String>) -> Kernel {
        signature.map_or(Kernel::Broken, Kernel::Signed)
    }
}

/// A range of commits, oldest first: index 0 is the good endpoint.
pub trait Range {
    /// Commits including both endpoints.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where builds and runs come from (git and the cache, or a simulation).
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
    /// Every run already pooled for a kernel: classes.
    fn pooled(&mut self, signature: &str, target: &Target) -> Result<Vec<RunClass>, Self::Error>;
    /// Runs the test on commit `i`'s kernel up to `n` times, stopping at the
    /// first run that matches the target; the classes of the runs done.
    fn run(&mut self, i: usize, signature: &str, n: u32, target: &Target) -> Result<Vec<RunClass>, Self::Error>;
    /// Where the search stands before a test: how many commits still hold
    /// 95% of the mass, and the likeliest culprit's probability.
    fn standing(&mut self, _credible: usize, _best: f64) {}
}

/// Settings of the search.
#[derive(Debug, Clone)]
pub struct Model {
    /// A good kernel's chance per run of a crash that matches the target.
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

/// How the search ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Ending {
    /// The first bad commit, with its probability.
    Culprit { index: usize, probability: f64 },
    /// The target bug was not brought by any commit of the range.
    NoCulprit { probability: f64 },
    /// A budget ran out, or no action could tell more (untestable commits):
    /// the fewest commits holding 95% of the mass.
    Undecided {
        why: String,
        credible: Vec<usize>,
        mass: f64,
    },
}

/// Per kernel: where it is in the range and what its runs say.
#[derive(Debug, Clone, Serialize)]
pub struct KernelEvidence {
    pub signature: String,
    /// Commits of the range with this kernel (indices).
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

/// The search's state.
pub struct Search<'m> {
    model: &'m Model,
    target: Target,
    kernels: Vec<Kernel>,
    /// Evidence by signature, in first-seen order.
    evidence: Vec<(String, ClassCounts)>,
    builds: u32,
    runs: u32,
    seconds: f64,
    /// Commits whose last batch said nothing (every run timed out, could not
    /// boot, or crashed with another bug): not chosen again.
    untestable: Vec<bool>,
}

/// The posterior: P(first bad = k) for k in 0..=n (0 is always 0) and P(none).
#[derive(Debug, Clone)]
pub struct Posterior {
    pub mass: Vec<f64>,
    pub none: f64,
    /// Per hypothesis k: weights over the `p` grid (normalized), given its bad side.
    p_weights: Vec<[f64; P_GRID]>,
}

impl<'m> Search<'m> {
    pub fn new(model: &'m Model, target: Target, len: usize) -> Search<'m> {
        Search {
            model,
            target,
            kernels: vec![Kernel::Unknown; len],
            evidence: Vec::new(),
            builds: 0,
            runs: 0,
            seconds: 0.0,
            untestable: vec![false; len],
        }
    }

    fn n(&self) -> usize {
        self.kernels.len() - 1
    }

    fn counts_mut(&mut self, sig: &str) -> &mut ClassCounts {
        if let Some(i) = self.evidence.iter().position(|(s, _)| s == sig) {
            return &mut self.evidence[i].1;
        }
        self.evidence.push((sig.to_string(), ClassCounts::default()));
        &mut self.evidence.last_mut().expect("just pushed").1
    }

    /// Adds runs (their classes) to a kernel's evidence.
    fn record(&mut self, sig: &str, classes: &[RunClass]) {
        let counts = self.counts_mut(sig);
        for c in classes {
            counts.add(*c);
        }
    }

    fn counts(&self, sig: &str) -> ClassCounts {
        self.evidence
            .iter()
            .find(|(s, _)| s == sig)
            .map(|(_, c)| c.clone())
            .unwrap_or_default()
    }

    /// Learns commit `i`'s kernel (and its pooled runs, the first time).
    fn learn<O: Oracle>(&mut self, oracle: &mut O, i: usize, k: Kernel) -> Result<(), O::Error> {
        if let Kernel::Signed(sig) = &k {
            if !self.evidence.iter().any(|(s, _)| s == sig) {
                let pooled = oracle.pooled(sig, &self.target)?;
                self.record(sig, &pooled);
            }
        }
        self.kernels[i] = k;
        Ok(())
    }

    /// Positions of each known signature: (first, last) index.
    fn spans(&self) -> Vec<(usize, usize, &str)> {
        let mut spans: Vec<(usize, usize, &str)> = Vec::new();
        for (i, k) in self.kernels.iter().enumerate() {
            if let Kernel::Signed(s) = k {
                match spans.iter_mut().find(|(_, _, t)| *t == s.as_str()) {
                    Some(span) => span.1 = i,
                    None => spans.push((i, i, s.as_str())),
                }
            }
        }
        spans
    }

    /// The posterior over the boundary.
    pub fn posterior(&self) -> Posterior {
        let n = self.n();
        // Which k are possible: not inside a span of one kernel.
        let mut possible = vec![true; n + 1];
        possible[0] = false;
        // Evidence at positions: matches and oks per index (a kernel's runs
        // count once, at its first commit).
        let mut m_at = vec![0u32; n + 1];
        let mut o_at = vec![0u32; n + 1];
        for (first, last, sig) in self.spans() {
            for p in possible.iter_mut().take(last + 1).skip(first + 1) {
                *p = false;
            }
            let c = self.counts(sig);
            m_at[first] += c.matched;
            o_at[first] += c.ok;
        }
        // Suffix sums: bad side of k is every index >= k.
        let mut m_suffix = vec![0u32; n + 2];
        let mut o_suffix = vec![0u32; n + 2];
        for i in (0..=n).rev() {
            m_suffix[i] = m_suffix[i + 1] + m_at[i];
            o_suffix[i] = o_suffix[i + 1] + o_at[i];
        }
        let (m_all, o_all) = (m_suffix[0], o_suffix[0]);
        let eps = self.model.epsilon;
        let log_good = |m: u32, o: u32| m as f64 * eps.ln() + o as f64 * (1.0 - eps).ln();
        let mut log_mass = vec![f64::NEG_INFINITY; n + 1];
        let mut p_weights = vec![[0.0; P_GRID]; n + 1];
        let possible_count = possible.iter().filter(|p| **p).count().max(1) as f64;
        let prior_k = ((1.0 - self.model.prior_none) / possible_count).ln();
        for k in 1..=n {
            let (mb, ob) = (m_suffix[k], o_suffix[k]);
            let (mg, og) = (m_all - mb, o_all - ob);
            // log sum_j w_j p_j^mb (1-p_j)^ob, with uniform w_j.
            let mut logs = [0.0; P_GRID];
            for (j, l) in logs.iter_mut().enumerate() {
                let p = p_at(j);
                let q = (1.0 - p).max(1e-12);
                *l = mb as f64 * p.ln() + ob as f64 * q.ln();
            }
            let top = logs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = logs.iter().map(|l| (l - top).exp()).sum();
            for (j, w) in p_weights[k].iter_mut().enumerate() {
                *w = (logs[j] - top).exp() / sum;
            }
            if possible[k] {
                log_mass[k] = prior_k + top + (sum / P_GRID as f64).ln() + log_good(mg, og);
            }
        }
        let log_none = self.model.prior_none.ln() + log_good(m_all, o_all);
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

impl Ending {
    /// Stopped without a culprit: the credible set instead.
    fn undecided(post: &Posterior, why: impl Into<String>) -> Ending {
        let (credible, mass) = post.credible(0.95);
        Ending::Undecided {
            why: why.into(),
            credible,
            mass,
        }
    }
}

impl Posterior {
    /// The most likely first bad commit and its probability.
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
        let mut order: Vec<usize> = (1..self.mass.len()).collect();
        order.sort_by(|a, b| self.mass[*b].total_cmp(&self.mass[*a]));
        let mut out = Vec::new();
        let mut held = 0.0;
        for k in order {
            if held >= level || self.mass[k] <= 0.0 {
                break;
            }
            held += self.mass[k];
            out.push(k);
        }
        (out, held)
    }

    /// E[(1-p)^n | k]: the chance a bad kernel shows no match in n runs.
    fn miss_bad(&self, k: usize, n: u32) -> f64 {
        self.p_weights[k]
            .iter()
            .enumerate()
            .map(|(j, w)| w * (1.0 - p_at(j)).powi(n as i32))
            .sum()
    }

    /// The `q`-quantile of p under hypothesis k (the pessimistic end).
    fn p_quantile(&self, k: usize, q: f64) -> f64 {
        let mut acc = 0.0;
        for (j, w) in self.p_weights[k].iter().enumerate() {
            acc += w;
            if acc >= q {
                return p_at(j);
            }
        }
        1.0
    }
}

fn entropy2(q: f64) -> f64 {
    let h = |x: f64| if x <= 0.0 || x >= 1.0 { 0.0 } else { -x * x.log2() };
    h(q) + h(1.0 - q)
}

/// The next thing to do.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Action {
    /// Build commit i (if needed) and test it with a batch of runs.
    Test(usize, u32),
    Done,
}

impl Search<'_> {
    /// Mutual information (bits) between "no match in n runs at position
    /// t" and the boundary, for every t; O(n).
    fn information(&self, post: &Posterior, n: u32) -> Vec<f64> {
        let len = post.mass.len();
        let miss_good = (1.0 - self.model.epsilon).powi(n as i32);
        // For t: P(no) = sum_{k<=t} P(k) mb(k) + (sum_{k>t} P(k) + none) mg
        //        H(Y|K) = sum_{k<=t} P(k) h(mb(k)) + (sum_{k>t} P(k) + none) h(mg)
        let mut pref_miss = vec![0.0; len + 1];
        let mut pref_h = vec![0.0; len + 1];
        let mut pref_mass = vec![0.0; len + 1];
        for k in 0..len {
            let mb = if k == 0 { miss_good } else { post.miss_bad(k, n) };
            pref_miss[k + 1] = pref_miss[k] + post.mass[k] * mb;
            pref_h[k + 1] = pref_h[k] + post.mass[k] * entropy2(mb);
            pref_mass[k + 1] = pref_mass[k] + post.mass[k];
        }
        let total = pref_mass[len];
        (0..len)
            .map(|t| {
                let rest = total - pref_mass[t + 1] + post.none;
                let p_no = pref_miss[t + 1] + rest * miss_good;
                let h_cond = pref_h[t + 1] + rest * entropy2(miss_good);
                (entropy2(p_no.clamp(0.0, 1.0)) - h_cond).max(0.0)
            })
            .collect()
    }

    /// Per commit: the chance its build fails, from its nearest commit with
    /// a known outcome (a broken one makes a break likely, 0.8; else 0.05).
    fn broken_odds(&self) -> Vec<f64> {
        let n = self.kernels.len();
        let mut nearest: Vec<(usize, bool)> = vec![(usize::MAX, false); n];
        // Two sweeps: the nearest known commit on the left, then on the right.
        let mut last: Option<(usize, bool)> = None;
        for (i, (k, near)) in self.kernels.iter().zip(nearest.iter_mut()).enumerate() {
            if *k != Kernel::Unknown {
                last = Some((i, *k == Kernel::Broken));
            }
            if let Some((j, b)) = last {
                *near = (i - j, b);
            }
        }
        last = None;
        for (i, (k, near)) in self.kernels.iter().zip(nearest.iter_mut()).enumerate().rev() {
            if *k != Kernel::Unknown {
                last = Some((i, *k == Kernel::Broken));
            }
            if let Some((j, b)) = last {
                if j - i < near.0 {
                    *near = (j - i, b);
                }
            }
        }
        nearest.iter().map(|&(_, b)| if b { 0.8 } else { 0.05 }).collect()
    }

    /// Picks the next position to test, or `Done`.
    fn next<O: Oracle>(&self, oracle: &O, post: &Posterior) -> Action {
        // A new kernel gets a full batch; one with runs already gets more in
        // smaller steps (it is usually near the boundary, being confirmed).
        let (full, retest) = (self.model.runs, (self.model.runs / RETEST_SHARE).max(1));
        let info_full = self.information(post, full);
        let info_retest = self.information(post, retest);
        let run = oracle.run_cost().max(1e-6);
        let broken_odds = self.broken_odds();
        let mut best: Option<(usize, u32, f64)> = None;
        for t in 0..self.kernels.len() {
            if self.untestable[t] {
                continue;
            }
            let (gain, batch, build) = match self.kernels[t] {
                Kernel::Broken => continue,
                Kernel::Signed(_) => (info_retest[t], retest, 0.0),
                Kernel::Unknown => {
                    if self.model.max_builds.is_some_and(|m| self.builds >= m) && oracle.build_cost(t) > 0.0 {
                        continue;
                    }
                    // Builds break in stretches: next to a broken commit, expect another.
                    (info_full[t] * (1.0 - broken_odds[t]), full, oracle.build_cost(t))
                }
            };
            if gain < MIN_GAIN {
                continue;
            }
            let score = gain / (build + run * batch as f64);
            if best.is_none_or(|(_, _, s)| score > s) {
                best = Some((t, batch, score));
            }
        }
        best.map_or(Action::Done, |(t, batch, _)| Action::Test(t, batch))
    }

    /// Tests position `t` with one batch (building it first if needed).
    fn test<O: Oracle>(&mut self, oracle: &mut O, t: usize, batch: u32) -> Result<bool, O::Error> {
        if self.kernels[t] == Kernel::Unknown {
            self.ensure_built(oracle, t)?;
            // A kernel the search already has runs for (a no-op commit):
            // what it tells is new already (a span collapsed); think again
            // before running more.
            if let Kernel::Signed(sig) = &self.kernels[t] {
                let c = self.counts(sig);
                if c.matched + c.ok > 0 {
                    return Ok(true);
                }
            }
        }
        let Kernel::Signed(sig) = self.kernels[t].clone() else {
            return Ok(false);
        };
        let budget = self
            .model
            .max_runs
            .map_or(batch, |m| m.saturating_sub(self.runs).min(batch));
        if budget == 0 {
            return Ok(false);
        }
        let classes = oracle.run(t, &sig, budget, &self.target)?;
        self.runs += classes.len() as u32;
        self.seconds += classes.len() as f64 * oracle.run_cost();
        self.record(&sig, &classes);
        // A batch that moved nothing would be chosen again and again.
        if !classes.iter().any(|c| matches!(c, RunClass::Match | RunClass::Ok)) {
            self.untestable[t] = true;
            return Ok(false);
        }
        Ok(true)
    }

    /// Makes sure commit `i`'s kernel is known (building it if needed).
    fn ensure_built<O: Oracle>(&mut self, oracle: &mut O, i: usize) -> Result<(), O::Error> {
        if self.kernels[i] == Kernel::Unknown {
            let cost = oracle.build_cost(i);
            let k = oracle.build(i)?;
            if cost > 0.0 {
                self.builds += 1;
                self.seconds += cost;
            }
            self.learn(oracle, i, k)?;
        }
        Ok(())
    }

    /// What still stands between the most likely culprit `k` and naming it
    /// (KernelCI's boundary check): both kernels built and different, a
    /// match on `k`'s, and enough ok runs on its parent's that under the
    /// pessimistic end of p it is bad with chance below 1 - confidence.
    /// `Some((commit, runs))`: build that commit (runs 0) or run it that often.
    fn boundary_gap(&self, post: &Posterior, k: usize) -> Option<(usize, u32)> {
        for i in [k, k - 1] {
            if self.kernels[i] == Kernel::Unknown {
                return Some((i, 0));
            }
        }
        let (Kernel::Signed(bad), Kernel::Signed(good)) = (&self.kernels[k], &self.kernels[k - 1]) else {
            return None; // a broken side: cannot be checked
        };
        if self.counts(bad).matched == 0 {
            return Some((k, self.model.runs));
        }
        if k - 1 == 0 {
            return None; // the good endpoint is good by definition
        }
        let p_low = post.p_quantile(k, 0.05);
        let needed = ((1.0 - self.model.confidence).ln() / (1.0 - p_low).max(1e-9).ln()).ceil() as u32;
        let ok = self.counts(good).ok;
        (ok < needed).then_some((k - 1, needed - ok))
    }

    fn out_of_budget(&self) -> Option<String> {
        if self.model.max_runs.is_some_and(|m| self.runs >= m) {
            return Some(format!("--max-runs {} spent", self.runs));
        }
        None
    }
}

/// Runs the noisy search to its end.
pub fn search<O: Oracle>(model: &Model, target: Target, len: usize, oracle: &mut O) -> Result<Outcome, O::Error> {
    let mut s = Search::new(model, target, len);
    for i in 0..len {
        let k = oracle.known(i)?;
        if k != Kernel::Unknown {
            s.learn(oracle, i, k)?;
        }
    }
    let ending = loop {
        let post = s.posterior();
        let (k, prob) = post.best();
        if post.none >= model.confidence {
            break Ending::NoCulprit { probability: post.none };
        }
        if let Some(why) = s.out_of_budget() {
            break Ending::undecided(&post, why);
        }
        if prob < model.confidence {
            oracle.standing(post.credible(0.95).0.len(), prob);
            match s.next(oracle, &post) {
                // A commit that cannot be built or tested is excluded from
                // then on, so the search always ends.
                Action::Test(t, batch) => s.test(oracle, t, batch).map(drop)?,
                Action::Done if s.model.max_builds.is_some_and(|m| s.builds >= m) => {
                    break Ending::undecided(&post, "--max-builds spent")
                }
                Action::Done => {
                    break Ending::undecided(
                        &post,
                        "no test can tell more (commits that do not build or cannot be tested)",
                    )
                }
            }
            continue;
        }
        if [k - 1, k].iter().any(|&i| s.kernels[i] == Kernel::Broken) {
            break Ending::undecided(
                &post,
                "the most likely culprit or its parent does not build: the boundary cannot be checked",
            );
        }
        match s.boundary_gap(&post, k) {
            None => {
                break Ending::Culprit {
                    index: k,
                    probability: prob,
                }
            }
            Some((i, _)) if s.kernels[i] == Kernel::Unknown => s.ensure_built(oracle, i)?,
            Some((i, runs)) => {
                if !s.test(oracle, i, runs)? && s.out_of_budget().is_none() {
                    break Ending::undecided(
                        &post,
                        "the boundary cannot be checked: its tests tell nothing (timeouts, boot failures, \
                         other crashes)",
                    );
                }
            }
        }
    };
    let post = s.posterior();
    let kernels = s
        .evidence
        .iter()
        .map(|(sig, counts)| {
            let commits: Vec<usize> = (0..len)
                .filter(|i| matches!(&s.kernels[*i], Kernel::Signed(x) if x == sig))
                .collect();
            KernelEvidence {
                signature: sig.clone(),
                mass: commits.iter().map(|&i| post.mass[i]).sum(),
                commits,
                counts: counts.clone(),
            }
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

/// The posterior of a line of tested kernels (node 0 the good end, assumed
/// good), for judging syzbot logs (issue 26). `kernels[i]`: what node i's
/// kernel is; `evidence`: runs per kernel label (pooled).
///
/// TEMPORARY (helper judge): a thin wrapper over today's `Search` with the
/// signature helper dag exposes (DAG-API.md); dag's version replaces it at
/// merge.
pub fn line_posterior(model: &Model, kernels: &[Kernel], evidence: &[(String, ClassCounts)]) -> Posterior {
    let mut s = Search::new(model, Target::default(), kernels.len());
    s.kernels = kernels.to_vec();
    s.evidence = evidence.to_vec();
    s.posterior()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search_with(kernels: &[(usize, &str)], counts: &[(&str, u32, u32)], len: usize) -> Posterior {
        let model = Model::default();
        let mut s = Search::new(&model, Target::default(), len);
        for (i, sig) in kernels {
            s.kernels[*i] = Kernel::Signed(sig.to_string());
        }
        for (sig, m, o) in counts {
            let c = s.counts_mut(sig);
            c.matched = *m;
            c.ok = *o;
        }
        s.posterior()
    }

    #[test]
    fn equal_kernels_can_never_hold_the_boundary() {
        // 0 good .. 10 bad; 3 and 7 share a kernel: 4..=7 impossible.
        let post = search_with(&[(3, "a"), (7, "a")], &[], 11);
        for k in 4..=7 {
            assert_eq!(post.mass[k], 0.0, "k={k}");
        }
        assert!(post.mass[3] > 0.0 && post.mass[8] > 0.0);
    }

    #[test]
    fn a_match_moves_the_mass_left_and_oks_move_it_right() {
        let post = search_with(&[(5, "a")], &[("a", 1, 0)], 11);
        let left: f64 = post.mass[1..=5].iter().sum();
        assert!(left > 0.9, "{left}");
        let post = search_with(&[(5, "a")], &[("a", 0, 60)], 11);
        let right: f64 = post.mass[6..].iter().sum();
        assert!(right > 0.9, "{right}");
    }

    #[test]
    fn other_crashes_and_no_info_do_not_move_the_boundary() {
        let model = Model::default();
        let mut s = Search::new(&model, Target::new(["BUG in f"]), 11);
        s.kernels[5] = Kernel::Signed("a".into());
        let before = s.posterior().mass;
        s.record("a", &[RunClass::Other; 10]);
        s.record("a", &[RunClass::NoInfo; 5]);
        assert_eq!(s.posterior().mass, before);
    }

    #[test]
    fn credible_set_and_information() {
        let post = search_with(&[], &[], 5);
        let (set, mass) = post.credible(0.95);
        assert_eq!(set.len(), 4);
        assert!(mass > 0.94);
        let model = Model::default();
        let s = Search::new(&model, Target::default(), 5);
        let info = s.information(&post, 10);
        // Testing the middle tells most; the good endpoint tells least.
        assert!(info[2] >= info[1] && info[2] >= info[3], "{info:?}");
        assert!(info[0] < info[2]);
    }
}
