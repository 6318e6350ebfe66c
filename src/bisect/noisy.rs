//! The noisy search ([`crate::search::bayes`]) on a real repository: the range is
//! the commit graph between the ends (`git rev-list bad ^good`, merged
//! branches included; with `--first-parent` the bad commit's first-parent
//! line), read in one in-process walk ([`Repo::range_graph`]); commits are
//! built and tested through the cache ([`CommitEvaluator`]), and runs are
//! pooled per kernel as in every kcache bisection. Before the search, the
//! ends are settled ([`super::ends`]): the target learnt from the crashing
//! end, a good end found over release tags when none was given, merge
//! bases of a `--good` off the ancestry tested.
//!
//! Invariant: only adapts git and the cache to [`bayes::Oracle`]; every
//! decision is `bayes`'s.

use crate::key::CommitId;
use crate::serde_word;
use crate::signature::KernelSignature;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use super::{ends, history, logfile, BisectError, MergeStep, NoCulprit, Options, Outcome, Purpose, Step, Summary};
use crate::crash::{ClassCounts, RunClass, Target};
use crate::exec::speculate::Speculator;
use crate::exec::{BuildSource, Evaluation};
use crate::exec::{CommitEvaluator, Evidence, Verdict};
use crate::git::Repo;
use crate::search::bayes::{self, Kernel, Oracle};
use crate::search::graph::{Direction, Graph};
use crate::store::{Cache, RunId, RunRecord};

mod at_once;
#[cfg(test)]
mod oracle_tests;

/// Up to this many commits, what the remote knows of every commit is asked
/// before the search starts.
const REMOTE_LOOKUP_LIMIT: usize = 500;

/// Settings of the noisy search that the user gives.
#[derive(Debug, Clone)]
pub struct NoisyOptions {
    /// `--crash-title`: the target; empty: learned from the bad commit.
    pub crash_titles: Vec<String>,
    pub confidence: f64,
    pub max_runs: Option<u32>,
    pub max_builds: Option<u32>,
    /// Estimates of a build's and a run's seconds before any is measured.
    pub build_cost: f64,
    pub run_cost: f64,
}

impl Default for NoisyOptions {
    fn default() -> NoisyOptions {
        NoisyOptions {
            crash_titles: Vec::new(),
            confidence: 0.95,
            max_runs: None,
            max_builds: None,
            build_cost: 600.0,
            run_cost: 60.0,
        }
    }
}

/// What the noisy search adds to a bisection's summary.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    pub policy: super::session::Policy,
    /// The normalized titles runs were matched against.
    pub target: Vec<String>,
    /// The culprit's probability (or "no culprit"'s), when one was named.
    pub probability: Option<f64>,
    /// The fewest commits holding 95% of the posterior, most likely first.
    pub credible_set: Vec<CommitId>,
    /// Why the search stopped without a culprit, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<String>,
    /// Per kernel: its commits in the range and its runs under the target.
    pub kernels: Vec<KernelReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct KernelReport {
    pub signature: KernelSignature,
    pub commits: Vec<CommitId>,
    #[serde(flatten)]
    pub counts: ClassCounts,
    /// The posterior probability that the culprit is one of `commits`.
    pub mass: f64,
}

pub(super) struct GitOracle<'a> {
    pub(super) repo: &'a Repo,
    pub(super) cache: &'a Cache,
    pub(super) evaluator: &'a mut CommitEvaluator,
    /// The commits the search's indices name: the graph's nodes, in its
    /// order (before the graph is loaded: the ends being checked).
    nodes: Vec<CommitId>,
    steps: Vec<Step>,
    log: logfile::LogFile,
    pub(super) progress: &'a mut dyn FnMut(&str),
    build_seconds: (f64, u32),
    run_seconds: (f64, u32),
    estimates: (f64, f64),
    /// Evaluations made (builds), by commit.
    evals: HashMap<CommitId, Evaluation>,
    /// Commits whose build already shows in a step.
    reported: HashSet<CommitId>,
    /// What the cache knew of every node before the search (one look-up).
    known: Vec<Kernel>,
    /// Every run (by id) the search has been given: runs another process
    /// pooled since are given to it before any new run is made.
    seen_runs: HashSet<RunId>,
    /// `--build-jobs` > 1: the build slots that build what `prefetch` asks.
    speculator: Option<Speculator>,
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

    fn eval(&self, i: usize) -> Option<&Evaluation> {
        self.evals.get(&self.nodes[i])
    }

    fn record_step(&mut self, i: usize, eval: Evaluation, purpose: Purpose) -> Result<(), BisectError> {
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
    fn look_up_all(&mut self) -> Result<Vec<Kernel>, BisectError> {
        let trees = self.repo.tree_ids(&self.nodes)?;
        let keys: Vec<crate::key::BuildKey> = trees
            .iter()
            .map(|(_, tree)| self.evaluator.inputs_for_tree(tree).key())
            .collect();
        let records = self.cache.builds(&keys, self.nodes.len() <= REMOTE_LOOKUP_LIMIT)?;
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
        let eval =
            self.evaluator
                .build_or_predict(self.repo, self.cache, &self.nodes[i], false, &mut *self.progress)?;
        self.learn_build_seconds(&eval);
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

    fn build_cost(&self, i: usize) -> f64 {
        if self.eval(i).is_some() {
            return 0.0;
        }
        match self.build_seconds {
            (total, n) if n > 0 => total / n as f64,
            _ => self.estimates.0,
        }
    }

    fn run_cost(&self) -> f64 {
        match self.run_seconds {
            (total, n) if n > 0 => (total / n as f64).max(1e-3),
            _ => self.estimates.1,
        }
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

    /// The foreground build and the speculator's background slots (none
    /// without a speculator), so the search costs a set's builds side by side.
    fn build_slots(&self) -> u32 {
        match self.speculator {
            Some(_) => self.evaluator.recipe().build_jobs.max(1),
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
    fn show_speculation(&mut self) {
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
    fn batch(
        &mut self,
        i: usize,
        signature: &KernelSignature,
        n: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        target: &Target,
    ) -> Result<Vec<RunRecord>, BisectError> {
        let start = Instant::now();
        let rebuilt_before = self.evaluator.rebuilds_to_test();
        let runs = self.evaluator.test_batch(
            self.repo,
            self.cache,
            &self.nodes[i],
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

/// The target: `--crash-title`, else the titles that dominate the
/// crashing end's crashes (its kernel is built and tested for it, up to
/// three batches while no title dominates).
fn learn_target(o: &mut GitOracle, noisy: &NoisyOptions, bad: usize, runs: u32) -> Result<Target, BisectError> {
    if !noisy.crash_titles.is_empty() {
        return Ok(Target::new(&noisy.crash_titles));
    }
    let Kernel::Signed(sig) = o.build(bad)? else {
        let failure = o.eval(bad).and_then(|e| e.failure.clone());
        return Err(BisectError::NoTarget(format!(
            "the bad commit {} does not build{}",
            crate::key::short(&o.nodes[bad]),
            failure.map_or_else(
                || " (a recorded failure; --retry-failed builds it again)".to_string(),
                |f| format!(": {}; the last lines of {}:\n{}", f.reason, f.log.display(), f.tail)
            )
        )));
    };
    let mut asked = 0;
    let mut timed_out = 0;
    for _ in 0..3 {
        let runs_now = o.cache.runs_shared(&sig, &o.evaluator.test_key(), runs)?;
        let titles: Vec<&str> = runs_now
            .iter()
            .filter(|r| r.outcome == crate::store::Outcome::Crash)
            .map(|r| r.title.as_deref().unwrap_or("crash"))
            .collect();
        if let Some(t) = Target::learn(&titles, 0.3) {
            if titles.len() >= 2 || runs_now.len() as u32 >= runs {
                (o.progress)(&format!("  target: {}", t.titles.join(" | ")));
                return Ok(t);
            }
        }
        // Runs without stopping at a crash: the titles' shares matter here.
        // (Until there is a target, every crash counts as a match.)
        let got = o.batch(bad, &sig, runs, &|_| false, &Target::default())?.len() as u32;
        asked += runs;
        timed_out += runs - got.min(runs);
    }
    let recorded = o.cache.runs(&sig, &o.evaluator.test_key())?;
    Err(BisectError::NoTarget(no_dominant_crash(
        &o.nodes[bad],
        &recorded,
        asked,
        timed_out,
    )))
}

/// Why no target could be learnt, in words that say what the runs did.
fn no_dominant_crash(bad: &CommitId, recorded: &[RunRecord], asked: u32, timed_out: u32) -> String {
    let counts = ClassCounts::of(&Target::default(), recorded);
    let what = if timed_out > 0 && timed_out == asked && recorded.is_empty() {
        format!("every one of its {asked} test runs timed out (no result): check the test and --test-timeout, or")
    } else if counts.matched == 0 && counts.ok == 0 && !recorded.is_empty() {
        format!(
            "none of its {} recorded runs told anything (infrastructure or boot failures){}: check the test, or",
            recorded.len(),
            if timed_out > 0 {
                format!(", and {timed_out} more timed out")
            } else {
                String::new()
            }
        )
    } else {
        format!(
            "it does not show one dominant crash in {} runs ({}{}):",
            recorded.len(),
            counts.describe(),
            if timed_out > 0 {
                format!(", {timed_out} timed out")
            } else {
                String::new()
            }
        )
    };
    format!("the bad commit {}: {what} give --crash-title", crate::key::short(bad))
}

/// The search's view as `# kcache:` lines of the syzkaller-style log.
fn log_lines(r: &SearchReport) -> Vec<String> {
    let mut out = vec![format!("target: {}", r.target.join(" | "))];
    if let Some(p) = r.probability {
        out.push(format!("probability: {p:.4}"));
    }
    out.push(format!(
        "credible set (95%): {}",
        r.credible_set.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" ")
    ));
    for k in &r.kernels {
        out.push(format!("kernel {}: {}", k.signature, k.counts.describe()));
    }
    out
}

/// A good commit whose kernel the cache already saw crash with the target
/// (twice: once could be the error rate) stops the search before it blames
/// anything. Other crashes there are no contradiction; a bad side that does
/// not reproduce is the search's own "no culprit" answer.
fn check_good_side(o: &GitOracle, goods: &[CommitId], target: &Target) -> Result<(), BisectError> {
    for g in goods {
        let Some(record) = o.evaluator.cached_build_local(o.repo, o.cache, g)? else {
            continue;
        };
        let Some(signature) = record.signature else { continue };
        let runs = o.cache.runs(&signature, &o.evaluator.test_key())?;
        let counts = ClassCounts::of(target, &runs);
        if counts.matched >= 2 {
            return Err(BisectError::EndpointContradicted {
                side: "good",
                commit: g.clone(),
                signature,
                evidence: Evidence::of(&runs),
                verdict: Verdict::Bad,
            });
        }
    }
    Ok(())
}

/// Runs the noisy search on a repository: a cause bisection (`--bad`
/// crashes, `--good` does not) or a fix bisection (`--bad` is the older,
/// crashing end, `--good` the newer one that does not).
pub fn bisect(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &Options,
    noisy: &NoisyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, BisectError> {
    let mut session = super::session::Session::open(repo, cache, opts)?;
    cache.clean_stale();
    evaluator.set_prediction(false);
    let runs = evaluator.runs_wanted();
    let crashing = session.bad.clone();
    let speculator = Speculator::start(evaluator, repo, cache, noisy.max_builds)?;
    let mut oracle = GitOracle {
        repo,
        cache,
        evaluator,
        nodes: vec![crashing.clone()],
        steps: Vec::new(),
        log: session.take_log(),
        progress,
        build_seconds: (0.0, 0),
        run_seconds: (0.0, 0),
        estimates: (noisy.build_cost, noisy.run_cost),
        evals: HashMap::new(),
        reported: HashSet::new(),
        known: Vec::new(),
        seen_runs: HashSet::new(),
        speculator,
    };
    let target = learn_target(&mut oracle, noisy, 0, runs)?;
    let mut notes = Vec::new();
    if session.goods.is_empty() {
        let good = ends::walk_back_tags(&mut oracle, &crashing, &opts.good_tags, &target, &mut notes)?;
        session.goods = vec![good];
    }
    let goods = session.goods.clone();
    let direction = opts.direction;
    if direction == Direction::Cause {
        check_good_side(&oracle, &goods, &target)?;
        ends::check_merge_bases(&mut oracle, &crashing, &goods, &target, &mut notes)?;
    }
    let (tip, bases) = match direction {
        Direction::Cause => (session.bad.clone(), goods.clone()),
        Direction::Fix => (goods[0].clone(), vec![session.bad.clone()]),
    };
    let mut range = repo.range_graph(&tip, &bases, opts.first_parent)?;
    if direction == Direction::Fix {
        // The crashing end is a base node (checked, and the target's source).
        range.ensure_base(&crashing);
    }
    let graph = Graph::new(range.parents.clone(), range.in_range.clone())?;
    oracle.nodes = range.commits.clone();
    oracle.known = oracle.look_up_all()?;
    let cached = oracle.known.iter().filter(|k| **k != Kernel::Unknown).count();
    (oracle.progress)(&super::session::cached_line(cached, graph.len()));
    let merges = (0..graph.len()).filter(|&i| graph.parents(i).len() > 1).count();
    (oracle.progress)(&format!(
        "noisy {} search over {} commits ({}), confidence {}",
        serde_word(&direction),
        graph.range_len(),
        match (opts.first_parent, merges) {
            (true, _) => "first-parent line".to_string(),
            (false, 0) => "a line".to_string(),
            (false, m) => format!("a DAG with {m} merge{}", if m == 1 { "" } else { "s" }),
        },
        noisy.confidence
    ));
    let model = bayes::Model {
        confidence: noisy.confidence,
        runs,
        max_runs: noisy.max_runs,
        max_builds: noisy.max_builds,
        ..bayes::Model::default()
    };
    let out = bayes::search(&model, target.clone(), &graph, direction, &mut oracle)?;
    record_untested_builds(&mut oracle)?;
    oracle.show_speculation();
    if let Some(note) = oracle.speculator.take().map(Speculator::finish).and_then(|s| s.note()) {
        notes.push(note);
    }
    let (outcome, probability, undecided) = outcome_of(&oracle, &graph, &out);
    let mut kernels = Vec::new();
    // The search's kernels are the signatures the oracle gave it.
    for (k, signature) in out
        .kernels
        .iter()
        .filter_map(|k| Some((k, KernelSignature::parse(&k.signature).ok()?)))
    {
        let runs = cache.runs(&signature, &oracle.evaluator.test_key())?;
        kernels.push(KernelReport {
            signature,
            commits: k.commits.iter().map(|&i| oracle.nodes[i].clone()).collect(),
            counts: ClassCounts::of(&target, &runs),
            mass: k.mass,
        });
    }
    let report = SearchReport {
        policy: super::session::Policy::Bayes,
        target: target.titles.clone(),
        probability,
        credible_set: out.credible.iter().map(|&i| oracle.nodes[i].clone()).collect(),
        undecided,
        kernels,
    };
    for line in log_lines(&report) {
        oracle.log.note(&line)?;
    }
    session.log = oracle.log;
    let mut summary = session.close(repo, outcome, oracle.steps, notes, Some(report))?;
    summary.good = goods;
    summary.direction = direction;
    Ok(summary)
}

/// Builds the search made but never tested (a parent built for the
/// boundary check whose kernel had runs already) are steps too.
fn record_untested_builds(o: &mut GitOracle) -> Result<(), BisectError> {
    let mut untested: Vec<(usize, Evaluation)> = o
        .evals
        .iter()
        .filter(|(c, _)| !o.reported.contains(*c))
        .filter_map(|(c, e)| Some((o.nodes.iter().position(|n| n == c)?, e.clone())))
        .collect();
    untested.sort_by_key(|(i, _)| *i);
    for (i, e) in untested {
        o.reported.insert(o.nodes[i].clone());
        o.record_step(i, e, Purpose::SignatureCheck)?;
    }
    Ok(())
}

/// The search's ending as the bisection's outcome, the culprit's
/// probability, and the ending in words when it names no culprit.
fn outcome_of(o: &GitOracle, graph: &Graph, out: &bayes::Outcome) -> (Outcome, Option<f64>, Option<String>) {
    let commit_of = |i: usize| o.nodes[i].clone();
    let sig_of = |i: usize| {
        o.eval(i).and_then(|e| e.signature.clone()).or_else(|| {
            out.kernels
                .iter()
                .find(|k| k.commits.contains(&i))
                .and_then(|k| KernelSignature::parse(&k.signature).ok())
        })
    };
    match &out.ending {
        bayes::Ending::Culprit {
            index,
            probability,
            merge,
            ..
        } => {
            let merged_by = history::merge_path(graph, *index, graph.tip())
                .into_iter()
                .map(|m| MergeStep {
                    subject: o.repo.subject(&o.nodes[m]).unwrap_or_default(),
                    commit: commit_of(m),
                })
                .collect();
            let outcome = Outcome::Culprit {
                commit: commit_of(*index),
                subject: o.repo.subject(&o.nodes[*index]).unwrap_or_default(),
                signature: sig_of(*index),
                parents: graph
                    .parents(*index)
                    .iter()
                    .map(|&p| (commit_of(p), sig_of(p)))
                    .collect(),
                combined: *merge,
                merged_by,
            };
            (outcome, Some(*probability), None)
        }
        bayes::Ending::NoCulprit { probability, direction } => {
            let reason = match direction {
                Direction::Cause => NoCulprit::DoesNotReproduce {
                    probability: *probability,
                },
                Direction::Fix => NoCulprit::NotFixed {
                    probability: *probability,
                },
            };
            (Outcome::NoBoundary { reason }, Some(*probability), None)
        }
        bayes::Ending::Undecided { credible, .. } => (
            Outcome::Inconclusive {
                candidates: credible.iter().map(|&i| commit_of(i)).collect(),
            },
            None,
            Some(out.ending.to_string()),
        ),
        other => (
            Outcome::Stopped {
                reason: other.to_string(),
            },
            None,
            Some(other.to_string()),
        ),
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
