//! Cache-accelerated bisection that cannot blame a no-op commit.
//!
//! Commit selection is git's own (`rev-list --bisect-all`), so merges and
//! `--first-parent` behave as in `git bisect`. Every commit is evaluated
//! through the cache: a known build key reuses its signature and
//! artifacts, a known-broken one is skipped without building, and test runs
//! are pooled per (signature, test key), so commits with the same kernel
//! always get the same verdict. The culprit's parents are built and signed;
//! one whose signature equals the culprit's inherits the culprit's verdict
//! and bisection continues to a real signature boundary.
//!
//! A commit whose diff against an already-built commit touches nothing
//! that build read (its kbuild input set) is *predicted* to have that
//! build's kernel and is neither built nor tested (`predict`). The culprit
//! and its parents are always really built; a real build that contradicts
//! a prediction is reported, counted, and the bisection starts over from
//! its real evidence with prediction off.
//!
//! All state lives in the cache: a bisection killed at any point and run
//! again replays every completed build and run from it and carries on.

pub mod bayes;
pub mod evidence;
pub mod exec;
mod logfile;
pub mod lookup;
pub mod noisy;
pub mod predict;
pub mod record;
mod repro;
pub mod sim;

use crate::key::CommitId;
use crate::signature::KernelSignature;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

pub use evidence::{Evidence, Verdict};
pub use exec::{BuildSource, CommitEvaluator, EvalError, Evaluation, Recipe as BisectRecipe};

use crate::git::{GitError, Repo};
use crate::store::Cache;

/// How many commits near the best split are checked for cache hits.
const NEAR_BEST_LIMIT: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    /// Git, the cache, a build or a test failed (git and cache errors
    /// between steps are carried the same way: see the `From`s below).
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error("bad commit {bad} is an ancestor of good commit {good}: nothing to bisect")]
    BadBeforeGood { bad: String, good: String },
    #[error("no target crash to bisect: {0}")]
    NoTarget(String),
    #[error("cannot write the log {}: {source}", path.display())]
    Log { path: PathBuf, source: std::io::Error },
    #[error("the {side} commit {commit} is not {side} by the cache's own evidence: its kernel {} already has {} \
             under this test, which makes it {}; check the range (or the test) before bisecting",
        short(signature), exec::describe(evidence), verdict.as_str())]
    EndpointContradicted {
        side: &'static str,
        commit: CommitId,
        signature: KernelSignature,
        evidence: Evidence,
        verdict: Verdict,
    },
    #[error("stopping early: {builds} builds in a row failed the same way ({reason}), none succeeded{}; \
             the last lines of {}:\n{tail}\nfix the build (or --retry-failed once it is fixed) and run again",
        if *bad_checked { ", the bad commit's own build included" } else { "" }, log.display())]
    BuildsFailing {
        builds: usize,
        reason: String,
        bad_checked: bool,
        log: PathBuf,
        tail: String,
    },
}

/// Builds that failed the same way in a row before any succeeded: after
/// [`FAILURE_STREAK`] of them the build, not the commits, is broken.
const FAILURE_STREAK: usize = 3;

#[derive(Debug, Clone)]
pub struct Options {
    pub goods: Vec<String>,
    pub bad: String,
    pub first_parent: bool,
    pub log: Option<PathBuf>,
    /// No-op prediction from kbuild input sets.
    pub predict: bool,
}

/// Why a commit was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Purpose {
    Bisect,
    /// Built only to compare the culprit's signature with its parents'.
    SignatureCheck,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub commit: CommitId,
    pub subject: String,
    pub purpose: Purpose,
    #[serde(flatten)]
    pub eval: Evaluation,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Outcome {
    Culprit {
        commit: CommitId,
        subject: String,
        signature: Option<KernelSignature>,
        /// (parent, its signature) for every parent of the culprit.
        #[serde(serialize_with = "crate::serde_pairs::parents")]
        parents: Vec<(CommitId, Option<KernelSignature>)>,
    },
    Inconclusive {
        candidates: Vec<CommitId>,
    },
    /// The good side has the same kernel as the bad side: no commit in the
    /// range changed the kernel, so there is no culprit to name.
    NoBoundary {
        reason: NoCulprit,
    },
}

impl From<GitError> for BisectError {
    fn from(e: GitError) -> BisectError {
        BisectError::Eval(EvalError::Git(e))
    }
}

impl From<crate::store::StoreError> for BisectError {
    fn from(e: crate::store::StoreError) -> BisectError {
        BisectError::Eval(EvalError::Store(e))
    }
}

impl Outcome {
    /// The culprit's first parent's signature, when it was signed.
    pub fn parent_signature(&self) -> Option<&str> {
        match self {
            Outcome::Culprit { parents, .. } => parents.first().and_then(|(_, s)| s.as_deref()),
            _ => None,
        }
    }
}

/// Why a bisection names no culprit although the range has a bad end.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum NoCulprit {
    /// The bad commit's kernel equals its parent's, which is good (or an
    /// ancestor of a good commit): the verdicts contradict each other on
    /// one kernel.
    SameKernelAsGood {
        bad: CommitId,
        parent: CommitId,
        good: CommitId,
    },
    /// The target crash does not reproduce on the bad side.
    DoesNotReproduce { probability: f64 },
}

impl std::fmt::Display for NoCulprit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoCulprit::SameKernelAsGood { bad, parent, good } => write!(
                f,
                "commit {bad} was judged bad but has the same kernel signature as its parent {parent}, \
                 which is (an ancestor of) good commit {good}: the good and bad verdicts contradict each \
                 other on identical kernels, so no commit in the range can be blamed"
            ),
            NoCulprit::DoesNotReproduce { probability } => write!(
                f,
                "with probability {probability:.3} no commit in the range brought the target crash \
                 (it does not reproduce on the bad side)"
            ),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct Totals {
    pub steps: usize,
    pub builds_done: usize,
    pub builds_reused: usize,
    pub builds_failed: usize,
    /// Steps whose kernel was predicted, not built.
    pub builds_predicted: usize,
    /// Predictions a real build contradicted (each turns prediction off).
    pub prediction_contradictions: usize,
    #[serde(flatten)]
    pub effort: exec::Effort,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub outcome: Outcome,
    pub totals: Totals,
    pub wall_seconds: f64,
    /// Things the user must know about this result.
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    /// The noisy search's posterior view (absent under `--policy classic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<noisy::SearchReport>,
}

/// Runs a bisection to its end. `progress` gets one line per event.
pub fn bisect(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, BisectError> {
    let start = Instant::now();
    cache.hold_index();
    let (bad, goods) = resolve_endpoints(repo, opts)?;
    check_endpoints(repo, cache, evaluator, &bad, &goods)?;
    let range: Vec<String> = repo
        .bisect_candidates(&bad, &goods, opts.first_parent)?
        .into_iter()
        .map(|c| c.commit.into_string())
        .collect();
    let cached = evaluator
        .cache_states(repo, cache, &range)?
        .into_iter()
        .filter(|s| *s != exec::CacheState::Unknown)
        .count();
    progress(&cached_line(cached, range.len()));
    cache.clean_stale();
    evaluator.set_prediction(opts.predict);
    let mut run = Run {
        repo,
        cache,
        evaluator,
        opts,
        steps: Vec::new(),
        seen: HashMap::new(),
        notes: Vec::new(),
        log: logfile::LogFile::new(opts.log.as_deref(), &bad),
        contradictions: 0,
        failures: Vec::new(),
        any_built: false,
        bad_checked: false,
    };
    let outcome = loop {
        if let Some(outcome) = run.search(bad.clone(), goods.clone(), progress)? {
            break outcome;
        }
        // A prediction was wrong: forget every prediction and redo the
        // search from real evidence (replayed from the cache).
        run.seen.retain(|_, e| e.build != exec::BuildSource::Predicted);
    };
    run.log
        .finish(&outcome, &run.steps, repo, start.elapsed().as_secs_f64())?;
    let mut totals = totals(&run.steps);
    totals.prediction_contradictions = run.contradictions;
    Ok(Summary {
        outcome,
        totals,
        steps: run.steps,
        wall_seconds: start.elapsed().as_secs_f64(),
        notes: run.notes,
        search: None,
    })
}

/// The bad and good commits as ids; the bad one must not be an ancestor of
/// a good one.
fn resolve_endpoints(repo: &Repo, opts: &Options) -> Result<(String, Vec<String>), BisectError> {
    let bad = repo.commit_id(&opts.bad)?;
    let goods: Vec<String> = opts.goods.iter().map(|g| repo.commit_id(g)).collect::<Result<_, _>>()?;
    for g in &goods {
        if repo.is_ancestor(&bad, g)? {
            return Err(BisectError::BadBeforeGood { bad, good: g.clone() });
        }
    }
    Ok((bad, goods))
}

/// Stops before searching when the cache's pooled runs already contradict
/// an endpoint: a bad commit whose kernel tested good, or a good one whose
/// kernel crashed. Only evidence already in the cache is read.
fn check_endpoints(
    repo: &Repo,
    cache: &Cache,
    evaluator: &CommitEvaluator,
    bad: &str,
    goods: &[String],
) -> Result<(), BisectError> {
    let sides =
        std::iter::once((bad, "bad", Verdict::Good)).chain(goods.iter().map(|g| (g.as_str(), "good", Verdict::Bad)));
    for (commit, side, contradiction) in sides {
        let Some((signature, evidence)) = evaluator.cached_evidence(repo, cache, commit)? else {
            continue;
        };
        if evidence.verdict() == Some(contradiction) {
            return Err(BisectError::EndpointContradicted {
                side,
                commit: commit.into(),
                signature,
                evidence,
                verdict: contradiction,
            });
        }
    }
    Ok(())
}

struct Run<'a> {
    repo: &'a Repo,
    cache: &'a Cache,
    evaluator: &'a mut CommitEvaluator,
    opts: &'a Options,
    steps: Vec<Step>,
    /// Evaluations already made in this bisection, by commit.
    seen: HashMap<String, Evaluation>,
    notes: Vec<String>,
    log: logfile::LogFile,
    contradictions: usize,
    /// Failed builds of this bisection so far, while none has succeeded.
    failures: Vec<exec::BuildFailure>,
    any_built: bool,
    /// The bad commit was built to tell a broken range from a broken build.
    bad_checked: bool,
}

impl Run<'_> {
    /// `None`: a prediction was contradicted; search again.
    fn search(
        &mut self,
        mut bad: String,
        mut goods: Vec<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<Outcome>, BisectError> {
        let contradictions = self.contradictions;
        let mut skipped: HashSet<String> = HashSet::new();
        loop {
            let candidates = self.repo.bisect_candidates(&bad, &goods, self.opts.first_parent)?;
            let open: Vec<_> = candidates
                .iter()
                .filter(|c| c.commit.as_str() != bad && !skipped.contains(c.commit.as_str()))
                .cloned()
                .collect();
            if open.is_empty() {
                let stuck: Vec<String> = candidates
                    .iter()
                    .filter(|c| c.commit.as_str() == bad || skipped.contains(c.commit.as_str()))
                    .map(|c| c.commit.to_string())
                    .collect();
                if stuck.len() > 1 {
                    return Ok(Some(Outcome::Inconclusive {
                        candidates: stuck.into_iter().map(CommitId::from).collect(),
                    }));
                }
                let same_kernel_parent = self.check_culprit(&bad, progress)?;
                if self.contradictions > contradictions {
                    return Ok(None);
                }
                match same_kernel_parent {
                    None => return self.culprit_outcome(&bad).map(Some),
                    Some(parent) => {
                        // The parent has the culprit's kernel, hence its
                        // verdict: move the bad end there and go on, unless
                        // the parent is on the good side already.
                        let mut blocking = Vec::new();
                        for g in &goods {
                            if self.repo.is_ancestor(&parent, g)? {
                                blocking.push(g.clone());
                            }
                        }
                        if !blocking.is_empty() {
                            return Ok(Some(Outcome::NoBoundary {
                                reason: NoCulprit::SameKernelAsGood {
                                    bad: CommitId::from(bad.as_str()),
                                    parent: CommitId::from(parent.as_str()),
                                    good: CommitId::from(blocking[0].as_str()),
                                },
                            }));
                        }
                        bad = parent;
                        continue;
                    }
                }
            }
            let pick = self.choose(&open)?;
            progress(&commits_left_line(open.len()));
            let eval = self.evaluate(&pick, Purpose::Bisect, progress)?;
            self.stop_if_every_build_fails(&bad, progress)?;
            match eval.verdict {
                Verdict::Bad => bad = pick,
                Verdict::Good => goods.push(pick),
                Verdict::Skip => {
                    skipped.insert(pick);
                }
            }
        }
    }

    /// After [`FAILURE_STREAK`] builds that failed the same way and none
    /// that succeeded, the build itself is broken: a transient cause (a
    /// missing tool, a timeout) stops at once; a compiler error stops when
    /// the bad commit fails the same way too (else it is a broken stretch
    /// of the range, which bisection skips over, as `git bisect` does).
    fn stop_if_every_build_fails(&mut self, bad: &str, progress: &mut dyn FnMut(&str)) -> Result<(), BisectError> {
        if self.any_built || self.failures.len() < FAILURE_STREAK {
            return Ok(());
        }
        let last = &self.failures[self.failures.len() - FAILURE_STREAK..];
        let tail = last[0].signature_tail();
        if last.iter().any(|f| f.signature_tail() != tail) {
            return Ok(());
        }
        let all_transient = last.iter().all(|f| !f.deterministic);
        if !all_transient {
            if self.bad_checked {
                return Ok(());
            }
            self.bad_checked = true;
            progress("  every build so far failed the same way: building the bad commit to tell a broken range from a broken build");
            let eval = self.evaluate(bad, Purpose::SignatureCheck, progress)?;
            if eval.signature.is_some() {
                return Ok(());
            }
        }
        let f = self.failures.last().expect("a streak").clone();
        Err(BisectError::BuildsFailing {
            builds: self.failures.len(),
            reason: f.reason,
            bad_checked: self.bad_checked,
            log: f.log,
            tail: f.tail,
        })
    }

    /// Picks the best split, preferring among nearly-best commits one
    /// whose build or test the cache already has.
    fn choose(&mut self, open: &[crate::git::Candidate]) -> Result<String, BisectError> {
        let best = open.iter().map(|c| c.dist).max().unwrap_or(0);
        let near: Vec<String> = open
            .iter()
            .filter(|c| c.dist * 10 >= best * 9)
            .take(NEAR_BEST_LIMIT)
            .map(|c| c.commit.to_string())
            .collect();
        // On a tie, the first in git's order (`rev().max_by_key` keeps the
        // first maximum): the commit `git bisect` itself would test, so a
        // kcache log and a plain bisection walk the same steps.
        let mut chosen = open
            .iter()
            .rev()
            .max_by_key(|c| c.dist)
            .map(|c| c.commit.to_string())
            .unwrap_or_default();
        if near.len() > 1 {
            let states = self.evaluator.cache_states(self.repo, self.cache, &near)?;
            let top = near.iter().zip(&states).rev().max_by_key(|(c, s)| {
                (
                    **s,
                    open.iter()
                        .find(|o| o.commit.as_str() == c.as_str())
                        .map_or(0, |o| o.dist),
                )
            });
            if let Some((c, s)) = top {
                if *s > exec::CacheState::Unknown {
                    chosen = c.clone();
                }
            }
        }
        Ok(chosen)
    }

    fn evaluate(
        &mut self,
        commit: &str,
        purpose: Purpose,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Evaluation, BisectError> {
        let predicted = match self.seen.get(commit) {
            // The culprit and its parents are never left predicted.
            Some(e) if purpose == Purpose::SignatureCheck && e.build == exec::BuildSource::Predicted => Some(e.clone()),
            Some(e) => return Ok(e.clone()),
            None => None,
        };
        let subject = self.repo.subject(commit).unwrap_or_default();
        progress(&format!("[{}] {} {}", self.steps.len() + 1, short(commit), subject));
        let mut eval = match purpose {
            Purpose::Bisect => self.evaluator.evaluate(self.repo, self.cache, commit, progress)?,
            Purpose::SignatureCheck => self
                .evaluator
                .build_or_predict(self.repo, self.cache, commit, false, progress)?,
        };
        if let Some(p) = predicted {
            self.check_prediction(commit, &p, &mut eval, progress)?;
        }
        match &eval.failure {
            Some(f) if !self.any_built => self.failures.push(f.clone()),
            _ => {}
        }
        if eval.build == exec::BuildSource::KnownBroken && !self.any_built {
            // A recorded failure: the same cause as when it was recorded.
            self.failures.push(exec::BuildFailure {
                deterministic: true,
                reason: "recorded build failure".into(),
                log: PathBuf::from("(the cache's record)"),
                tail: eval.log_tail.clone().unwrap_or_default(),
            });
        }
        self.any_built |= eval.signature.is_some() && eval.build != exec::BuildSource::Predicted;
        self.log.step(commit, &eval, purpose)?;
        self.steps.push(Step {
            commit: commit.into(),
            subject,
            purpose,
            eval: eval.clone(),
        });
        self.seen.insert(commit.to_string(), eval.clone());
        Ok(eval)
    }

    /// Compares a real build with the prediction made for it: equal, the
    /// commit keeps its verdict; different, prediction was wrong.
    fn check_prediction(
        &mut self,
        commit: &str,
        predicted: &Evaluation,
        real: &mut Evaluation,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), BisectError> {
        if real.signature == predicted.signature {
            real.verdict = predicted.verdict;
            real.evidence = predicted.evidence.clone();
            return Ok(());
        }
        let note = format!(
            "PREDICTION CONTRADICTED: {} was predicted to have the kernel of {} (signature {}), but its real build has \
             signature {}. This is a kcache bug (a file the build read is missing from the recorded input set); \
             prediction is off for the rest of this bisection, which starts over from real builds",
            short(commit),
            predicted.predicted_from.as_deref().map_or("?", short),
            predicted.signature.as_deref().unwrap_or("-"),
            real.signature.as_deref().unwrap_or("none (build failed)")
        );
        crate::warn(&note);
        progress(&note);
        self.notes.push(note);
        self.contradictions += 1;
        self.evaluator.set_prediction(false);
        self.cache
            .count(&[(crate::store::Counter::PredictionContradictions, 1)]);
        Ok(())
    }

    /// Builds the culprit's parents; returns a parent whose signature
    /// equals the culprit's, if any.
    fn check_culprit(&mut self, culprit: &str, progress: &mut dyn FnMut(&str)) -> Result<Option<String>, BisectError> {
        let contradictions = self.contradictions;
        let culprit_sig = self.evaluate(culprit, Purpose::SignatureCheck, progress)?.signature;
        if self.contradictions > contradictions {
            return Ok(None);
        }
        let mut parents = self.repo.parents(culprit)?;
        if self.opts.first_parent {
            parents.truncate(1);
        }
        for p in parents {
            let sig = self.evaluate(&p, Purpose::SignatureCheck, progress)?.signature;
            if sig.is_some() && sig == culprit_sig {
                let note = format!(
                    "{} has the same kernel signature as its parent {} ({}): it cannot be the culprit; bisecting on",
                    short(culprit),
                    short(&p),
                    sig.as_deref().unwrap_or("")
                );
                progress(&note);
                self.notes.push(note);
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    fn culprit_outcome(&self, culprit: &str) -> Result<Outcome, BisectError> {
        let mut parents = self.repo.parents(culprit)?;
        if self.opts.first_parent {
            parents.truncate(1);
        }
        let parents = parents
            .into_iter()
            .map(|p| {
                let sig = self.seen.get(&p).and_then(|e| e.signature.clone());
                (CommitId::from(p), sig)
            })
            .collect();
        Ok(Outcome::Culprit {
            commit: culprit.into(),
            subject: self.repo.subject(culprit).unwrap_or_default(),
            signature: self.seen.get(culprit).and_then(|e| e.signature.clone()),
            parents,
        })
    }
}

fn totals(steps: &[Step]) -> Totals {
    let mut t = Totals {
        steps: steps.len(),
        ..Totals::default()
    };
    for s in steps {
        let e = &s.eval;
        match e.build {
            exec::BuildSource::Built => t.builds_done += 1,
            exec::BuildSource::Failed | exec::BuildSource::TransientFailure => {
                t.builds_done += 1;
                t.builds_failed += 1;
            }
            exec::BuildSource::Reused | exec::BuildSource::KnownBroken => t.builds_reused += 1,
            exec::BuildSource::Predicted => t.builds_predicted += 1,
        }
        t.effort += e.effort;
    }
    t
}

pub use crate::key::short;

/// Said up front: how much of the range the cache already has built (a
/// prebuilt range costs no build).
/// Where the bisection stands, in `git bisect`'s words and arithmetic:
/// `open` commits may still be the first bad one besides the bad end.
fn commits_left_line(open: usize) -> String {
    let all = open + 1;
    let left = all - all / 2 - 1;
    let steps = estimate_bisect_steps(all);
    format!(
        "bisecting: {left} commit{} left to test after this (roughly {steps} step{})",
        if left == 1 { "" } else { "s" },
        if steps == 1 { "" } else { "s" }
    )
}

/// git's `estimate_bisect_steps`: about log2 of the commits, one less when
/// they are closer to the power of two below than to the one above.
fn estimate_bisect_steps(all: usize) -> usize {
    if all < 3 {
        return 0;
    }
    let n = (usize::BITS - 1 - all.leading_zeros()) as usize;
    let e = 1usize << n;
    if e < 3 * (all - e) {
        n
    } else {
        n - 1
    }
}

fn cached_line(cached: usize, commits: usize) -> String {
    match cached {
        0 => format!("none of the {commits} commits of the range is in the cache yet"),
        n if n == commits => format!("all {commits} commits of the range are in the cache: no builds needed"),
        n => format!("{n} of the {commits} commits of the range are in the cache"),
    }
}

/// Where a bisection keeps its worktree: one per repository, under the
/// cache, so warm runs find their build outputs again.
pub fn worktree_dir(cache: &Cache, repo: &Path) -> PathBuf {
    cache.dir().join("worktrees").join(repo_tag(repo))
}

/// Where builds of a repository keep their log and config copy.
pub fn state_dir(cache: &Cache, repo: &Path) -> PathBuf {
    cache.dir().join("worktrees").join(format!("{}.state", repo_tag(repo)))
}

fn repo_tag(repo: &Path) -> String {
    let canonical = repo.canonicalize().unwrap_or_else(|_| repo.to_path_buf());
    crate::key::digest(canonical.to_string_lossy().as_bytes()).to_hex()[..16].to_string()
}

#[cfg(test)]
mod progress_tests {
    use super::*;

    #[test]
    fn commits_left_reads_like_git_bisect() {
        // git bisect start on a 300-commit line: "Bisecting: 149 revisions
        // left to test after this (roughly 7 steps)".
        assert_eq!(
            commits_left_line(299),
            "bisecting: 149 commits left to test after this (roughly 7 steps)"
        );
        assert_eq!(
            commits_left_line(1),
            "bisecting: 0 commits left to test after this (roughly 0 steps)"
        );
        assert_eq!(estimate_bisect_steps(150), 6); // git: "74 revisions left ... (roughly 6 steps)"
        assert_eq!(estimate_bisect_steps(75), 5); // git: "37 revisions left ... (roughly 5 steps)"
    }
}
