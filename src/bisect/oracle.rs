//! The noisy search's [`Oracle`] on a real repository: the commits the
//! search's indices name, each evaluated through the cache
//! ([`CommitEvaluator`]: built, or its kernel known, and tested), with the
//! steps and the log the bisection reports; the costs of a build and a run
//! learnt as they are met; a batch of tests at once on the run slots
//! (`at_once`). Both the search ([`super::noisy`]) and the settling of its
//! ends ([`super::ends`]) ask it.
//!
//! Invariant: answers what it is asked and decides nothing: which commit
//! to test is `bayes`'s, which end to try is `ends`'s.

use crate::key::{BuildKey, CommitId};
use crate::signature::KernelSignature;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::{logfile, BisectError, Purpose, Step};
use crate::crash::{ClassCounts, RunClass, Target};
use crate::exec::speculate::{Ahead, Speculator};
use crate::exec::{BuildSource, Evaluation};
use crate::exec::{CommitEvaluator, Evidence, Verdict};
use crate::git::Repo;
use crate::search::bayes::{Kernel, Oracle};
use crate::store::{Cache, RunId, RunRecord};

mod at_once;
#[cfg(test)]
mod oracle_tests;
mod predictions;

/// Up to this many commits, what the remote knows of every commit is asked
/// before the search starts.
const REMOTE_LOOKUP_LIMIT: usize = 500;

pub(super) struct GitOracle<'a> {
    pub(super) repo: &'a Repo,
    pub(super) cache: &'a Cache,
    pub(super) evaluator: &'a mut CommitEvaluator,
    /// The commits the search's indices name: the graph's nodes, in its
    /// order (before the graph is loaded: the ends being checked).
    pub(super) nodes: Vec<CommitId>,
    pub(super) steps: Vec<Step>,
    pub(super) log: logfile::LogFile,
    pub(super) progress: &'a mut dyn FnMut(&str),
    pub(super) build_seconds: (f64, u32),
    pub(super) run_seconds: (f64, u32),
    pub(super) estimates: (f64, f64),
    /// Evaluations made (builds), by commit.
    pub(super) evals: HashMap<CommitId, Evaluation>,
    /// Commits whose build already shows in a step.
    pub(super) reported: HashSet<CommitId>,
    /// What the cache knew of every node before the search (one look-up).
    pub(super) known: Vec<Kernel>,
    /// Every run (by id) the search has been given: runs another process
    /// pooled since are given to it before any new run is made.
    pub(super) seen_runs: HashSet<RunId>,
    /// Runs this bisection made, per kernel (its batches): the search's
    /// cap on one kernel counts those made before it started.
    pub(super) runs_made: HashMap<KernelSignature, u32>,
    /// `--build-jobs` > 1: the build slots that build what `prefetch` asks.
    pub(super) speculator: Option<Speculator>,
    /// No-op prediction in the search: which commits cost no build.
    pub(super) predictions: Predictions,
}

/// Which of the search's commits a reference build predicts (same kernel,
/// no build: `exec::predict`), so the search's cost model counts them free.
/// Each commit is checked against each reference once, when the reference
/// is met.
#[derive(Default)]
pub(super) struct Predictions {
    /// Per node: whether prediction may be asked about it (the range's
    /// commits; never an end being settled).
    pub(super) range: Vec<bool>,
    /// Nodes some reference predicts.
    nodes: HashSet<usize>,
    /// The references every node of the range was checked against.
    checked: HashSet<BuildKey>,
}

impl GitOracle<'_> {
    /// What a build of this range costs, learnt from every build the
    /// search meets: its own, and the recorded time of one it reuses.
    /// Counting reused builds too is what keeps two searches of one range
    /// in step: one builds a kernel, the other reuses it, and both learn
    /// the same seconds (with only its own builds the second kept the
    /// 600 s default, chose other tests, and the two did 25 runs where one
    /// does 15).
    fn learn_build_seconds(&mut self, eval: &Evaluation) {
        let seconds = match eval.build {
            BuildSource::Built => eval.effort.build_seconds,
            BuildSource::Reused => eval.effort.saved_build_seconds,
            _ => return,
        };
        if seconds > 0.0 {
            self.build_seconds.0 += seconds;
            self.build_seconds.1 += 1;
        }
    }

    /// What a run costs, learnt from every run the search is given (its
    /// own and those another process did), each run's recorded seconds.
    fn learn_run_seconds(&mut self, runs: &[RunRecord]) {
        self.run_seconds.0 += runs.iter().map(|r| r.seconds).sum::<f64>();
        self.run_seconds.1 += runs.len() as u32;
    }

    fn subject(&self, i: usize) -> String {
        self.repo.subject(&self.nodes[i]).unwrap_or_default()
    }

    /// The node of `commit`, added (after the graph's nodes, where the
    /// search never looks) when it is not one.
    pub(super) fn node(&mut self, commit: &CommitId) -> usize {
        match self.nodes.iter().position(|c| c == commit) {
            Some(i) => i,
            None => {
                self.nodes.push(commit.clone());
                self.nodes.len() - 1
            }
        }
    }

    pub(super) fn eval(&self, i: usize) -> Option<&Evaluation> {
        self.evals.get(&self.nodes[i])
    }

    pub(super) fn record_step(&mut self, i: usize, eval: Evaluation, purpose: Purpose) -> Result<(), BisectError> {
        self.log.step(&self.nodes[i], &eval, purpose)?;
        let subject = self.subject(i);
        self.steps.push(Step {
            commit: self.nodes[i].clone(),
            subject,
            purpose,
            eval,
        });
        Ok(())
    }

    /// What the cache knows of every node: one read of the local index;
    /// the remote is asked for the rest only on short ranges (each commit
    /// is a request).
    pub(super) fn look_up_all(&mut self) -> Result<Vec<Kernel>, BisectError> {
        // One read of git for every tree, then each node's key.
        self.repo.tree_ids(&self.nodes)?;
        let keys = self
            .nodes
            .iter()
            .map(|c| self.evaluator.key_of(self.repo, c))
            .collect::<Result<Vec<crate::key::BuildKey>, _>>()?;
        let records = self.cache.builds(&keys, self.nodes.len() <= REMOTE_LOOKUP_LIMIT)?;
        // Every kernel the cache knows predicts others: a warm re-run
        // predicts what the first run predicted, building nothing.
        for r in records.iter().flatten() {
            self.evaluator.learn_reference(self.cache, r)?;
        }
        Ok(records
            .into_iter()
            .map(|r| r.map_or(Kernel::Unknown, |r| Kernel::of_signature(r.signature)))
            .collect())
    }
}

impl Oracle for GitOracle<'_> {
    type Error = BisectError;

    fn standing(&mut self, credible: usize, best: f64) {
        (self.progress)(&format!(
            "bisecting: the culprit is one of {credible} commit{} (95% of the probability), the likeliest at {best:.2}",
            if credible == 1 { "" } else { "s" }
        ));
    }

    fn known(&mut self, i: usize) -> Result<Kernel, BisectError> {
        Ok(self.known.get(i).cloned().unwrap_or(Kernel::Unknown))
    }

    fn build(&mut self, i: usize) -> Result<Kernel, BisectError> {
        if let Some(e) = self.eval(i) {
            return Ok(Kernel::of_signature(e.signature.clone()));
        }
        let line = format!(
            "[{}] {} {}",
            self.steps.len() + 1,
            crate::key::short(&self.nodes[i]),
            self.subject(i)
        );
        self.show_speculation();
        (self.progress)(&line);
        if self.speculator.as_ref().is_some_and(|s| s.foreground(&self.nodes[i])) {
            (self.progress)("  built speculatively: its build is reused (waited for while it still ran)");
        }
        let may_predict = self.predictions.nodes.contains(&i);
        let eval =
            self.evaluator
                .build_or_predict(self.repo, self.cache, &self.nodes[i], may_predict, &mut *self.progress)?;
        self.learn_build_seconds(&eval);
        if matches!(eval.build, BuildSource::Built | BuildSource::Reused) {
            self.refresh_predictions()?;
        }
        if eval.build == BuildSource::Built {
            if let Some(s) = &self.speculator {
                s.count_foreground_build();
            }
        }
        let kernel = Kernel::of_signature(eval.signature.clone());
        self.evals.insert(self.nodes[i].clone(), eval.clone());
        // A kernel's build shows in the step of its first test batch; a
        // build that failed is a step of its own (it will not be tested).
        if kernel == Kernel::Broken {
            self.reported.insert(self.nodes[i].clone());
            self.record_step(i, eval, Purpose::Bisect)?;
        }
        Ok(kernel)
    }

    /// Nothing for a commit known, predicted or built ahead; what is left
    /// of one being built ahead (the search then prefers what the build
    /// slots already made, as the simulator's oracle does).
    fn build_cost(&self, i: usize) -> f64 {
        if self.eval(i).is_some() || self.predictions.nodes.contains(&i) {
            return 0.0;
        }
        let full = match self.build_seconds {
            (total, n) if n > 0 => total / n as f64,
            _ => self.estimates.0,
        };
        let ahead = match (&self.speculator, self.nodes.get(i)) {
            (Some(s), Some(c)) => s.ahead(c),
            _ => Ahead::No,
        };
        match ahead {
            Ahead::No => full,
            Ahead::Building(seconds) => (full - seconds).max(0.0),
            Ahead::Done => 0.0,
        }
    }

    fn run_cost(&self) -> f64 {
        match self.run_seconds {
            (total, n) if n > 0 => (total / n as f64).max(1e-3),
            _ => self.estimates.1,
        }
    }

    fn runs_made(&self, signature: &KernelSignature) -> u32 {
        self.runs_made.get(signature).copied().unwrap_or(0)
    }

    fn pooled(&mut self, signature: &KernelSignature, target: &Target) -> Result<Vec<RunClass>, BisectError> {
        // The remote is asked too while the local runs are fewer than a batch.
        let wanted = self.evaluator.runs_wanted();
        let runs = self.cache.runs_shared(signature, &self.evaluator.test_key(), wanted)?;
        self.seen_runs.extend(runs.iter().map(|r| r.run_id.clone()));
        self.learn_run_seconds(&runs);
        Ok(runs
            .iter()
            .map(|r| target.classify(r.outcome, r.title.as_deref()))
            .collect())
    }

    fn run(
        &mut self,
        i: usize,
        signature: &KernelSignature,
        n: u32,
        target: &Target,
    ) -> Result<Vec<RunClass>, BisectError> {
        let matched = |r: &RunRecord| target.classify(r.outcome, r.title.as_deref()) == RunClass::Match;
        let unseen = self.runs_not_yet_seen(signature)?;
        if !unseen.is_empty() {
            // Another kcache process tested this kernel since the search
            // last looked: its runs are this batch (the search thinks again
            // before asking for more), never run twice.
            (self.progress)(&format!(
                "  {} run(s) another kcache process did on {}: counted",
                unseen.len(),
                crate::key::short(&self.nodes[i])
            ));
            self.learn_run_seconds(&unseen);
            return Ok(unseen
                .iter()
                .map(|r| target.classify(r.outcome, r.title.as_deref()))
                .collect());
        }
        let runs = self.batch(i, signature, n, &matched, target)?;
        Ok(classes_of_batch(&runs, n, target))
    }

    fn slots(&self) -> u32 {
        self.evaluator.jobs()
    }

    /// The foreground build and the speculator's background slots that are
    /// idle (none without a speculator), so the search costs a set's
    /// builds side by side only when a slot is free to build beside the
    /// foreground: a started guess is never stopped, and a set costed on a
    /// busy slot would build one kernel after the other. A commit a busy
    /// slot is building costs only what is left of it (`build_cost`).
    fn build_slots(&self) -> u32 {
        match &self.speculator {
            Some(s) => 1 + s.idle_slots(),
            None => 1,
        }
    }

    fn run_set(
        &mut self,
        batches: &[(usize, KernelSignature, u32)],
        target: &Target,
    ) -> Result<Vec<Vec<RunClass>>, BisectError> {
        if batches.len() < 2 || self.evaluator.jobs() < 2 {
            return batches
                .iter()
                .map(|(i, sig, n)| self.run(*i, sig, *n, target))
                .collect();
        }
        self.run_batches_at_once(batches, target)
    }

    fn builds_ahead(&self) -> bool {
        self.speculator.is_some()
    }

    fn prefetch(&mut self, wanted: &[usize]) {
        let Some(s) = &self.speculator else { return };
        let commits: Vec<CommitId> = wanted
            .iter()
            .filter(|i| !self.predictions.nodes.contains(i))
            .filter_map(|&i| self.nodes.get(i))
            .filter(|c| !self.evals.contains_key(*c))
            .cloned()
            .collect();
        s.prefetch(&commits);
        self.show_speculation();
    }
}

impl GitOracle<'_> {
    /// Shows what the build slots did since the last look.
    pub(super) fn show_speculation(&mut self) {
        for line in self.speculator.iter().flat_map(|s| s.take_lines()) {
            (self.progress)(&line);
        }
    }

    /// Runs pooled for a kernel that the search was not given yet (another
    /// process's, landed since), now marked as given.
    fn runs_not_yet_seen(&mut self, signature: &KernelSignature) -> Result<Vec<RunRecord>, BisectError> {
        let pooled = self.cache.runs(signature, &self.evaluator.test_key())?;
        let unseen: Vec<RunRecord> = pooled
            .into_iter()
            .filter(|r| !self.seen_runs.contains(&r.run_id))
            .collect();
        self.seen_runs.extend(unseen.iter().map(|r| r.run_id.clone()));
        Ok(unseen)
    }

    /// Up to `n` runs on commit `i`'s kernel (stopping after `stop`), shown
    /// and logged as one step, the commit's build with its first batch.
    pub(super) fn batch(
        &mut self,
        i: usize,
        signature: &KernelSignature,
        n: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        target: &Target,
    ) -> Result<Vec<RunRecord>, BisectError> {
        let start = Instant::now();
        let rebuilt_before = self.evaluator.rebuilds_to_test();
        // A predicted kernel's artifacts are its reference's build.
        let built_as = self
            .eval(i)
            .and_then(|e| e.predicted_from.clone())
            .unwrap_or_else(|| self.nodes[i].clone());
        let runs = self.evaluator.test_batch(
            self.repo,
            self.cache,
            &built_as,
            signature,
            n,
            stop,
            &mut *self.progress,
        )?;
        self.record_batch(i, signature, runs, target, start, rebuilt_before)
    }

    /// A batch's runs as a step (shown and logged), its build with it the
    /// first time; `rebuilt_before`: the evaluator's rebuild count before
    /// the batch (artifacts that were gone were built again to test).
    fn record_batch(
        &mut self,
        i: usize,
        signature: &KernelSignature,
        runs: Vec<RunRecord>,
        target: &Target,
        start: Instant,
        rebuilt_before: (u32, f64),
    ) -> Result<Vec<RunRecord>, BisectError> {
        self.seen_runs.extend(runs.iter().map(|r| r.run_id.clone()));
        *self.runs_made.entry(signature.clone()).or_default() += runs.len() as u32;
        let seconds: f64 = runs.iter().map(|r| r.seconds).sum();
        self.learn_run_seconds(&runs);
        let counts = ClassCounts::of(target, &runs);
        (self.progress)(&format!(
            "  {} run(s) on {}: {} ({:.1}s)",
            runs.len(),
            crate::key::short(&self.nodes[i]),
            counts.describe(),
            start.elapsed().as_secs_f64()
        ));
        let commit = self.nodes[i].clone();
        let mut eval = match self.evals.get(&commit) {
            Some(built) if !self.reported.contains(&commit) => built.clone(),
            _ => placeholder(signature),
        };
        if eval.build_env.is_none() {
            // The step's commit's environment, for the log and the summary.
            eval.build_env = self
                .evaluator
                .environment_of(self.repo, &commit)?
                .map(|e| e.shown.clone());
        }
        self.reported.insert(commit);
        eval.verdict = if counts.matched > 0 {
            Verdict::Bad
        } else if counts.ok > 0 {
            Verdict::Good
        } else {
            Verdict::Skip
        };
        eval.evidence = Evidence::of(&runs);
        eval.effort.runs_done = runs.len() as u32;
        eval.effort.test_seconds = seconds;
        eval.runs = runs.clone();
        let rebuilt = self.evaluator.rebuilds_to_test();
        if rebuilt.0 > rebuilt_before.0 {
            // Its artifacts were gone (evicted or quarantined): the kernel
            // was built again here, and the summary counts that build.
            eval.build = BuildSource::Built;
            eval.effort.build_seconds += rebuilt.1 - rebuilt_before.1;
            eval.effort.saved_build_seconds = 0.0;
        }
        self.record_step(i, eval, Purpose::Bisect)?;
        Ok(runs)
    }
}

/// A step for runs on a kernel this search did not build (it was known).
fn placeholder(signature: &KernelSignature) -> Evaluation {
    Evaluation {
        signature: Some(signature.clone()),
        ..Evaluation::empty(crate::key::BuildKey(crate::key::digest(b"")))
    }
}

/// A batch of up to `n` runs as the search sees it. A run that timed out
/// leaves no record: it told nothing, and the search must count it so (a
/// test that always hangs ends the search, not the runs).
fn classes_of_batch(runs: &[RunRecord], n: u32, target: &Target) -> Vec<RunClass> {
    let mut classes: Vec<RunClass> = runs
        .iter()
        .map(|r| target.classify(r.outcome, r.title.as_deref()))
        .collect();
    if !classes.contains(&RunClass::Match) {
        classes.resize(n as usize, RunClass::NoInfo);
    }
    classes
}
