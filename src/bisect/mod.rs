//! Bisection: the drivers with their opening and closing. [`entry::run`]
//! is a whole bisection as the CLI runs it: the record's setup, the
//! driver of the chosen [`Policy`] ([`classic`], git's selection and
//! rule; [`noisy`], the posterior search of `crate::search::bayes` on a
//! real repository, asking `oracle.rs`, with its ends settled by
//! `ends.rs`) between [`session`]'s opening and closing, the `--log`
//! (`logfile.rs`) and the [`record`] kept. This file is the shared
//! vocabulary: options, steps, outcomes, summaries, errors, totals, and
//! where a repository's build tree lives.
//!
//! All state lives in the cache: a bisection killed at any point and run
//! again replays every completed build and run from it and carries on.
//!
//! Invariant: commits are evaluated only through `crate::exec` and chosen
//! only by `crate::search` or git's selection; this file names things,
//! decides nothing, and uses none of its submodules (the files of
//! `bisect/` import one another without a circle: `tests/layering.rs`).

pub mod classic;
pub mod confirm;
mod ends;
pub mod entry;
pub mod history;
mod logfile;
pub mod noisy;
mod oracle;
pub mod record;
pub mod session;

use crate::crash::ClassCounts;
use crate::key::CommitId;
use crate::signature::KernelSignature;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::exec::{self, EvalError, Evaluation, Evidence, Verdict};

use crate::git::GitError;
use crate::search::graph::{self, Direction};
use crate::store::Cache;

#[derive(Debug, thiserror::Error)]
pub enum BisectError {
    /// Git, the cache, a build or a test failed (git and cache errors
    /// between steps are carried the same way: see the `From`s below).
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(
        "bad commit {bad} is an ancestor of good commit {good}: nothing to bisect for a cause; if {good} is \
             where the crash stopped, look for the fix: kcache bisect --fix --bad {bad} --good {good}"
    )]
    BadBeforeGood { bad: CommitId, good: CommitId },
    #[error("a fix bisection needs the crashing --bad to be an ancestor of the fixed --good, and {bad} is not an \
             ancestor of {good}{}", if *reversed { " (the other way round: for the commit that brought the crash, \
             drop --fix)" } else { "" })]
    FixNotDescendant {
        bad: CommitId,
        good: CommitId,
        reversed: bool,
    },
    #[error("a fix bisection takes exactly one --good (the newer commit where the crash is gone), not {0}")]
    FixGoods(usize),
    #[error("{0}")]
    NoGoodEnd(String),
    #[error("the merge base {} of the good commit {} and the bad commit reproduces the crash ({matched} of {runs} \
             runs matched): the bug is older than {}'s branch, which must have fixed it; to find that fix run \
             kcache bisect --fix --bad {base} --good {good}", base.short(), good.short(), good.short())]
    MergeBaseBad {
        good: CommitId,
        base: CommitId,
        matched: u32,
        runs: u32,
    },
    #[error("the range's commit graph: {0}")]
    Graph(#[from] graph::GraphError),
    #[error("{0}")]
    Unsupported(String),
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
    /// Empty: the noisy search finds a good end over `good_tags`.
    pub goods: Vec<String>,
    pub bad: String,
    /// Cause: `bad` crashes and descends from the goods. Fix: `bad` is the
    /// older, crashing end and the good end descends from it.
    pub direction: Direction,
    /// Release tags (git's wildcards) to walk back over without a good end.
    pub good_tags: String,
    pub first_parent: bool,
    pub log: Option<PathBuf>,
    /// No-op prediction from kbuild input sets.
    pub predict: bool,
    /// Check a named culprit by reverting it on the crashing end (a fix:
    /// applying it there) and testing (`confirm`).
    pub confirm: bool,
    /// Runs on the patched kernel (else chosen from the culprit's crash rate).
    pub confirm_runs: Option<u32>,
}

/// Why a commit was evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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
        /// A merge named because every parent was seen on the other side:
        /// the change comes from combining the branches.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        combined: bool,
        /// The merges the culprit came in by, from the tip's first-parent
        /// line inwards (empty: it is on that line).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        merged_by: Vec<MergeStep>,
    },
    Inconclusive {
        candidates: Vec<CommitId>,
    },
    /// The good side has the same kernel as the bad side: no commit in the
    /// range changed the kernel, so there is no culprit to name.
    NoBoundary {
        reason: NoCulprit,
    },
    /// The search stopped without an answer for a reason that is no
    /// commit's: the good end crashes, every run timed out, every build
    /// failed. `reason` says which, in words.
    Stopped {
        reason: String,
    },
}

/// ", which came in by merge X (subject), then merge Y" for people.
pub fn merged_by_words(merges: &[MergeStep]) -> String {
    if merges.is_empty() {
        return String::new();
    }
    let each: Vec<String> = merges
        .iter()
        .map(|m| format!("{} (\"{}\")", m.commit.short(), m.subject))
        .collect();
    format!(", which came in by merge {}", each.join(", then merge "))
}

/// A merge on the way from a culprit to the tip.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct MergeStep {
    pub commit: CommitId,
    pub subject: String,
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
    /// A fix bisection whose newer end still crashes.
    NotFixed { probability: f64 },
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
            NoCulprit::NotFixed { probability } => write!(
                f,
                "with probability {probability:.3} no commit in the range fixed the target crash \
                 (it still reproduces on the good, newer side)"
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
    /// Cause (first bad commit) or fix (first fixed commit).
    pub direction: Direction,
    /// The good ends the range was bisected from (given, or found over
    /// release tags).
    pub good: Vec<CommitId>,
    pub outcome: Outcome,
    pub totals: Totals,
    pub wall_seconds: f64,
    /// Things the user must know about this result.
    pub notes: Vec<String>,
    pub steps: Vec<Step>,
    /// The noisy search's posterior view (absent under `--policy classic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchReport>,
    /// The culprit checked by reverting it (or applying the fix) on the
    /// crashing end (absent: no culprit, or `--no-confirm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmation: Option<Confirmation>,
}

/// What the revert (or fix) check of a culprit found (`confirm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfirmVerdict {
    /// The crash is gone on the patched kernel: 0 crashes in the runs.
    Confirmed,
    /// The patched kernel still crashes: the culprit is likely wrong (or
    /// not the only cause).
    NotConfirmed,
    /// The change does not apply on the crashing end (conflicts).
    CannotRevert,
    /// The culprit's kernel is its parent's (the existing no-op rule): no
    /// test can tell, so the check is not run.
    NoOp,
    /// The patched kernel could not be built or tested (its reason).
    Untested,
}

/// What the check changed on the crashing end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConfirmChange {
    /// A cause bisection's culprit, reverted.
    Revert,
    /// A fix bisection's fix, applied.
    ApplyFix,
}

/// The revert (or fix) check of a bisection's culprit: in the summary, and
/// as it is in the bisection record (`kcache/bisection/v3`'s
/// `confirmation`).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Confirmation {
    pub verdict: ConfirmVerdict,
    pub change: ConfirmChange,
    pub culprit: CommitId,
    /// The crashing end the change was applied on.
    pub on: CommitId,
    /// BLAKE3 of the patch layer (the revert's or the fix's diff).
    pub patch_blake3: crate::key::Key,
    /// The bisected crash's measured rate on the culprit's and the
    /// crashing end's kernels; the run count is chosen for the low end of
    /// its 95% interval.
    pub crash_rate: Option<f64>,
    pub runs_wanted: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_key: Option<crate::key::BuildKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<KernelSignature>,
    pub build: Option<exec::BuildSource>,
    /// The patched kernel's runs against the crash bisected.
    pub runs: ClassCounts,
    pub builds_done: u32,
    pub runs_done: u32,
    pub runs_reused: u32,
    /// Cannot revert: the files (and hunks) that conflict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<String>,
    /// Why: git's words for a conflict, the build's for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How a bisection decides: which driver runs the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// The posterior search over the commit graph ([`noisy`]).
    Bayes,
    /// `git bisect`'s selection and rule ([`classic`]).
    Classic,
}

/// What the noisy search adds to a bisection's summary.
#[derive(Debug, Clone, Serialize)]
pub struct SearchReport {
    pub policy: Policy,
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

use crate::key::short;

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
