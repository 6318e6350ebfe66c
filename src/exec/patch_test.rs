//! `kcache test-patch`: a patch applied on its base (given, or found from
//! the patch itself), built through the cache, tested beside the base:
//! is the crash gone?
//!
//! Invariant: evaluates the two kernels through the evaluator (keys,
//! claims, pooled runs) and reports; decides nothing about other commits.

use serde::Serialize;

use super::{evidence, CommitEvaluator, EvalError, Evaluation, Patch};
use crate::crash::{ClassCounts, Target};
use crate::git::{self, Repo};
use crate::key::{CommitId, Key};
use crate::store::Cache;

/// Commits looked at, newest first, for a base by blob ids.
pub const BASE_SEARCH_LIMIT: usize = 100_000;

/// How the base was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BaseFrom {
    /// `--base COMMIT`.
    Given,
    /// The patch's `base-commit:` trailer.
    Trailer,
    /// The newest commit with every pre-image blob of the diff.
    BlobIds,
}

/// Is the crash gone with the patch?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchVerdict {
    /// The base crashes with the bug; the patched kernel did not in any run.
    Fixed,
    /// The patched kernel still crashes with the bug.
    NotFixed,
    /// The base does not crash with the bug: nothing to fix here.
    BaseDoesNotCrash,
    /// A kernel could not be built, or no run gave information.
    Untested,
}

/// What `kcache test-patch` found.
#[derive(Debug, Clone, Serialize)]
pub struct PatchTest {
    pub base: CommitId,
    pub base_from: BaseFrom,
    pub patch_blake3: Key,
    pub verdict: PatchVerdict,
    /// The base's runs and the patched kernel's, against the crash.
    pub base_runs: ClassCounts,
    pub patched_runs: ClassCounts,
    pub base_eval: Evaluation,
    pub patched_eval: Evaluation,
}

/// Why no base could be found for a patch.
#[derive(Debug, thiserror::Error)]
pub enum BaseError {
    #[error("the patch names no base: no `base-commit:` trailer and no pre-image blob ids (`index` lines); give --base COMMIT")]
    NoHints,
    #[error("no commit reachable from {tip} has every pre-image blob the patch names ({}): it was made against a tree this repository does not have; give --base COMMIT", blobs.join(", "))]
    NotFound { tip: CommitId, blobs: Vec<String> },
    #[error(transparent)]
    Git(#[from] git::GitError),
}

/// The base of `patch` for `--base auto`: its `base-commit:` trailer when
/// the repository has that commit, else the newest commit from `tip`
/// whose blobs match every pre-image blob id in the diff.
pub fn find_base(repo: &Repo, tip: &CommitId, patch: &str) -> Result<(CommitId, BaseFrom), BaseError> {
    let (trailer, blobs) = git::patch_base_hints(patch);
    if let Some(c) = trailer.and_then(|t| repo.commit_id(&t).ok()) {
        return Ok((c, BaseFrom::Trailer));
    }
    if blobs.is_empty() {
        return Err(BaseError::NoHints);
    }
    match repo.base_for_blobs(tip, &blobs, BASE_SEARCH_LIMIT)? {
        Some(c) => Ok((c, BaseFrom::BlobIds)),
        None => Err(BaseError::NotFound {
            tip: tip.clone(),
            blobs: blobs.iter().map(|(p, b)| format!("{p} {b}")).collect(),
        }),
    }
}

/// Tests the base and the patched base (runs pooled with every earlier
/// test of either kernel). `titles`: the crash (empty: any crash).
pub fn test_patch(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    (base, base_from): (CommitId, BaseFrom),
    patch: &Patch,
    titles: &[String],
    progress: &mut dyn FnMut(&str),
) -> Result<PatchTest, EvalError> {
    let target = Target::new(titles);
    progress(&format!("base {}:", base.short()));
    let base_eval = evaluator.evaluate(repo, cache, &base, progress)?;
    let base_runs = ClassCounts::of(&target, &base_eval.runs);
    let rate = (base_runs.matched > 0).then(|| base_runs.matched as f64 / base_runs.informative() as f64);
    let runs = evidence::runs_to_see(rate, evaluator.runs_wanted());
    progress(&format!("{} on {}:", patch.name, base.short()));
    let patched_eval = evaluator.evaluate_patched(repo, cache, &base, std::slice::from_ref(patch), runs, progress)?;
    let patched_runs = ClassCounts::of(&target, &patched_eval.runs);
    let verdict = match () {
        _ if base_eval.signature.is_none() || patched_eval.signature.is_none() => PatchVerdict::Untested,
        _ if base_runs.matched == 0 => PatchVerdict::BaseDoesNotCrash,
        _ if patched_runs.matched > 0 => PatchVerdict::NotFixed,
        _ if patched_runs.ok == 0 => PatchVerdict::Untested,
        _ => PatchVerdict::Fixed,
    };
    Ok(PatchTest {
        base,
        base_from,
        patch_blake3: patch.digest(),
        verdict,
        base_runs,
        patched_runs,
        base_eval,
        patched_eval,
    })
}
