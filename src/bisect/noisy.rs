//! The noisy search ([`super::bayes`]) on a real repository: the range is
//! the bad commit's first-parent line down to the good side, commits are
//! built and tested through the cache ([`CommitEvaluator`]), and runs are
//! pooled per kernel as in every kcache bisection.
//!
//! Invariant: only adapts git and the cache to [`bayes::Oracle`]; every
//! decision is `bayes`'s.

use crate::key::CommitId;
use crate::signature::KernelSignature;
use std::time::Instant;

use serde::Serialize;

use super::bayes::{self, Kernel, Oracle};
use super::exec::{BuildSource, Evaluation};
use super::{logfile, BisectError, CommitEvaluator, Evidence, Options, Outcome, Purpose, Step, Summary, Verdict};
use crate::crash::{ClassCounts, RunClass, Target};
use crate::git::Repo;
use crate::store::{Cache, RunRecord, StoreError};

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
    pub policy: &'static str,
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

struct GitOracle<'a> {
    repo: &'a Repo,
    cache: &'a Cache,
    evaluator: &'a mut CommitEvaluator,
    line: Vec<String>,
    steps: Vec<Step>,
    log: logfile::LogFile,
    progress: &'a mut dyn FnMut(&str),
    build_seconds: (f64, u32),
    run_seconds: (f64, u32),
    estimates: (f64, f64),
    /// Evaluations made (builds), by index.
    evals: Vec<Option<Evaluation>>,
    /// Whether a commit's build already shows in a step.
    reported: Vec<bool>,
    /// What the cache knew of every commit before the search (one look-up).
    known: Vec<Kernel>,
}

impl GitOracle<'_> {
    fn subject(&self, i: usize) -> String {
        self.repo.subject(&self.line[i]).unwrap_or_default()
    }

    fn record_step(&mut self, i: usize, eval: Evaluation, purpose: Purpose) -> Result<(), BisectError> {
        self.log.step(&self.line[i], &eval, purpose)?;
        let subject = self.subject(i);
        self.steps.push(Step {
            commit: self.line[i].as_str().into(),
            subject,
            purpose,
            eval,
        });
        Ok(())
    }

    /// What the cache knows of every commit of the line: one read of the
    /// local index; the remote is asked for the rest only on short lines
    /// (each commit is a request).
    fn look_up_all(&mut self) -> Result<Vec<Kernel>, BisectError> {
        let trees = self.repo.tree_ids(&self.line)?;
        let keys: Vec<crate::key::BuildKey> = trees
            .iter()
            .map(|(_, tree)| self.evaluator.inputs_for_tree(tree).key())
            .collect();
        // The remote's answers come in parallel, and only for short lines
        // (each commit is a listing).
        let records = self.cache.builds(&keys, self.line.len() <= REMOTE_LOOKUP_LIMIT)?;
        Ok(records
            .into_iter()
            .map(|r| r.map_or(Kernel::Unknown, |r| kernel_of(r.signature)))
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
        if let Some(e) = &self.evals[i] {
            return Ok(kernel_of(e.signature.clone()));
        }
        let line = format!(
            "[{}] {} {}",
            self.steps.len() + 1,
            super::short(&self.line[i]),
            self.subject(i)
        );
        (self.progress)(&line);
        let eval = self
            .evaluator
            .build_or_predict(self.repo, self.cache, &self.line[i], false, &mut *self.progress)?;
        if eval.build == BuildSource::Built {
            self.build_seconds.0 += eval.effort.build_seconds;
            self.build_seconds.1 += 1;
        }
        let kernel = kernel_of(eval.signature.clone());
        self.evals[i] = Some(eval.clone());
        // A kernel's build shows in the step of its first test batch; a
        // build that failed is a step of its own (it will not be tested).
        if kernel == Kernel::Broken {
            self.reported[i] = true;
            self.record_step(i, eval, Purpose::Bisect)?;
        }
        Ok(kernel)
    }

    fn build_cost(&self, i: usize) -> f64 {
        if self.evals[i].is_some() {
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

    fn pooled(&mut self, signature: &str, target: &Target) -> Result<Vec<RunClass>, BisectError> {
        // The remote is asked too while the local runs are fewer than a batch.
        let wanted = self.evaluator.runs_wanted();
        let runs = self.cache.runs_shared(signature, &self.evaluator.test_key(), wanted)?;
        Ok(runs
            .iter()
            .map(|r| target.classify(r.outcome, r.title.as_deref()))
            .collect())
    }

    fn run(&mut self, i: usize, signature: &str, n: u32, target: &Target) -> Result<Vec<RunClass>, BisectError> {
        let matched = |r: &RunRecord| target.classify(r.outcome, r.title.as_deref()) == RunClass::Match;
        // The search's kernels are the signatures this oracle gave it.
        let signature = signature_of(signature)?;
        let runs = self.batch(i, &signature, n, &matched, target)?;
        Ok(runs
            .iter()
            .map(|r| target.classify(r.outcome, r.title.as_deref()))
            .collect())
    }
}

impl GitOracle<'_> {
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
        let runs = self.evaluator.test_batch(
            self.repo,
            self.cache,
            &self.line[i],
            signature,
            n,
            stop,
            &mut *self.progress,
        )?;
        let seconds: f64 = runs.iter().map(|r| r.seconds).sum();
        self.run_seconds.0 += seconds;
        self.run_seconds.1 += runs.len() as u32;
        let counts = ClassCounts::of(target, &runs);
        (self.progress)(&format!(
            "  {} run(s) on {}: {} ({:.1}s)",
            runs.len(),
            super::short(&self.line[i]),
            counts.describe(),
            start.elapsed().as_secs_f64()
        ));
        let mut eval = match &self.evals[i] {
            Some(built) if !self.reported[i] => built.clone(),
            _ => placeholder(signature),
        };
        self.reported[i] = true;
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
        self.record_step(i, eval, Purpose::Bisect)?;
        Ok(runs)
    }
}

/// The search's label for a kernel: its signature's text (`bayes` knows
/// nothing of signatures), or unknown.
fn kernel_of(signature: Option<KernelSignature>) -> Kernel {
    Kernel::of_signature(signature.map(KernelSignature::into_string))
}

/// A label `kernel_of` made, back as a signature.
fn signature_of(label: &str) -> Result<KernelSignature, BisectError> {
    KernelSignature::parse(label).map_err(|e| StoreError::BadSignature(e.0).into())
}

/// A step for runs on a kernel this search did not build (it was known).
fn placeholder(signature: &str) -> Evaluation {
    Evaluation {
        signature: KernelSignature::parse(signature).ok(),
        ..Evaluation::empty(crate::key::BuildKey(crate::key::digest(b"")))
    }
}

/// The bad commit's first-parent line down to the good side: index 0 is
/// the first commit reachable from a good commit (assumed good).
fn first_parent_line(repo: &Repo, bad: &str, goods: &[String]) -> Result<Vec<String>, BisectError> {
    let mut args = vec!["rev-list", "--first-parent", "--reverse", bad];
    let nots: Vec<String> = goods.iter().map(|g| format!("^{g}")).collect();
    args.extend(nots.iter().map(String::as_str));
    let listed: Vec<String> = repo.run(&args)?.lines().map(str::to_string).collect();
    let Some(oldest) = listed.first() else {
        return Ok(vec![bad.to_string()]);
    };
    let parent = repo
        .parents(oldest)?
        .into_iter()
        .next()
        .unwrap_or_else(|| goods[0].clone());
    let mut line = vec![parent];
    line.extend(listed);
    Ok(line)
}

/// The target: `--crash-title`, else the titles that dominate the bad
/// commit's crashes (its kernel is built and tested for it, up to three
/// batches while no title dominates).
fn learn_target(o: &mut GitOracle, noisy: &NoisyOptions, runs: u32) -> Result<Target, BisectError> {
    if !noisy.crash_titles.is_empty() {
        return Ok(Target::new(&noisy.crash_titles));
    }
    let bad = o.line.len() - 1;
    let Kernel::Signed(sig) = o.build(bad)? else {
        let failure = o.evals[bad].as_ref().and_then(|e| e.failure.clone());
        return Err(BisectError::NoTarget(format!(
            "the bad commit {} does not build{}",
            super::short(&o.line[bad]),
            failure.map_or_else(
                || " (a recorded failure; --retry-failed builds it again)".to_string(),
                |f| format!(": {}; the last lines of {}:\n{}", f.reason, f.log.display(), f.tail)
            )
        )));
    };
    let sig = signature_of(&sig)?;
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
        o.batch(bad, &sig, runs, &|_| false, &Target::default())?;
    }
    Err(BisectError::NoTarget(format!(
        "the bad commit {} does not show one dominant crash in {} runs: give --crash-title",
        super::short(&o.line[bad]),
        o.cache.runs(&sig, &o.evaluator.test_key())?.len()
    )))
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
fn check_good_side(o: &GitOracle, goods: &[String], target: &Target) -> Result<(), BisectError> {
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
                commit: g.as_str().into(),
                signature,
                evidence: Evidence::of(&runs),
                verdict: Verdict::Bad,
            });
        }
    }
    Ok(())
}

/// Runs the noisy search on a repository.
pub fn bisect(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &Options,
    noisy: &NoisyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, BisectError> {
    let start = Instant::now();
    cache.hold_index();
    let (bad, goods) = super::resolve_endpoints(repo, opts)?;
    cache.clean_stale();
    evaluator.set_prediction(false);
    let line = first_parent_line(repo, &bad, &goods)?;
    let runs = evaluator.runs_wanted();
    let len = line.len();
    let mut oracle = GitOracle {
        repo,
        cache,
        evaluator,
        line,
        steps: Vec::new(),
        log: logfile::LogFile::new(opts.log.as_deref(), &bad),
        progress,
        build_seconds: (0.0, 0),
        run_seconds: (0.0, 0),
        estimates: (noisy.build_cost, noisy.run_cost),
        evals: vec![None; len],
        reported: vec![false; len],
        known: Vec::new(),
    };
    oracle.known = oracle.look_up_all()?;
    let cached = oracle.known.iter().filter(|k| **k != Kernel::Unknown).count();
    (oracle.progress)(&super::cached_line(cached, len));
    (oracle.progress)(&format!(
        "noisy search over {} commits (first-parent line), confidence {}",
        len - 1,
        noisy.confidence
    ));
    let target = learn_target(&mut oracle, noisy, runs)?;
    check_good_side(&oracle, &goods, &target)?;
    let model = bayes::Model {
        confidence: noisy.confidence,
        runs,
        max_runs: noisy.max_runs,
        max_builds: noisy.max_builds,
        ..bayes::Model::default()
    };
    let graph = super::graph::Graph::line(len);
    let out = bayes::search(
        &model,
        target.clone(),
        &graph,
        super::graph::Direction::Cause,
        &mut oracle,
    )?;
    // Builds the search made but never tested (a parent built for the
    // boundary check whose kernel had runs already) are steps too.
    for i in 0..len {
        if let (Some(e), false) = (&oracle.evals[i], oracle.reported[i]) {
            let e = e.clone();
            oracle.record_step(i, e, Purpose::SignatureCheck)?;
        }
    }
    let commit_of = |i: usize| oracle.line[i].clone();
    let (outcome, probability, undecided) = match &out.ending {
        bayes::Ending::Culprit { index, probability, .. } => {
            let commit = commit_of(*index);
            let parent = commit_of(index - 1);
            let sig_of = |i: usize| {
                out.kernels
                    .iter()
                    .find(|k| k.commits.contains(&i))
                    .and_then(|k| KernelSignature::parse(&k.signature).ok())
            };
            (
                Outcome::Culprit {
                    subject: repo.subject(&commit).unwrap_or_default(),
                    signature: sig_of(*index),
                    parents: vec![(parent.into(), sig_of(index - 1))],
                    commit: commit.into(),
                },
                Some(*probability),
                None,
            )
        }
        bayes::Ending::NoCulprit { probability, .. } => (
            Outcome::NoBoundary {
                reason: super::NoCulprit::DoesNotReproduce {
                    probability: *probability,
                },
            },
            Some(*probability),
            None,
        ),
        bayes::Ending::Undecided { why, credible, .. } => (
            Outcome::Inconclusive {
                candidates: credible.iter().map(|&i| commit_of(i).into()).collect(),
            },
            None,
            Some(why.clone()),
        ),
        other => (
            Outcome::Inconclusive {
                candidates: out.credible.iter().map(|&i| commit_of(i).into()).collect(),
            },
            None,
            Some(other.to_string()),
        ),
    };
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
            commits: k.commits.iter().map(|&i| commit_of(i).into()).collect(),
            counts: ClassCounts::of(&target, &runs),
            mass: k.mass,
        });
    }
    let report = SearchReport {
        policy: "bayes",
        target: target.titles.clone(),
        probability,
        credible_set: out.credible.iter().map(|&i| commit_of(i).into()).collect(),
        undecided,
        kernels,
    };
    for line in log_lines(&report) {
        oracle.log.note(&line)?;
    }
    oracle
        .log
        .finish(&outcome, &oracle.steps, repo, start.elapsed().as_secs_f64())?;
    let totals = super::totals(&oracle.steps);
    Ok(Summary {
        outcome,
        totals,
        wall_seconds: start.elapsed().as_secs_f64(),
        notes: Vec::new(),
        steps: oracle.steps,
        search: Some(report),
    })
}
