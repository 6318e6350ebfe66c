//! Bisection: the shared vocabulary of every driver (options, steps,
//! outcomes, summaries, errors, totals) and where a repository's build tree
//! lives. The drivers are [`classic`] (git's selection and rule) and
//! [`noisy`] (the posterior search, [`bayes`]); [`session`] is the opening
//! and closing they share.
//!
//! All state lives in the cache: a bisection killed at any point and run
//! again replays every completed build and run from it and carries on.
//!
//! Invariant: this module decides nothing; it names things.

pub mod bayes;
pub mod classic;
pub mod evidence;
pub mod exec;
pub mod graph;
mod logfile;
pub mod lookup;
pub mod noisy;
pub mod predict;
pub mod record;
pub mod session;
pub mod sim;

use crate::key::CommitId;
use crate::signature::KernelSignature;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use evidence::{Evidence, Verdict};
pub use exec::{BuildSource, CommitEvaluator, EvalError, Evaluation, Recipe as BisectRecipe};

use crate::git::GitError;
use crate::store::Cache;
pub use classic::bisect;

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

pub(crate) fn totals(steps: &[Step]) -> Totals {
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
