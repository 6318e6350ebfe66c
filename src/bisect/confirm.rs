//! After the culprit: the check a kernel developer does next by hand.
//! A cause bisection's culprit C is reverted (its diff against its first
//! parent, backwards: `git revert -m 1` for a merge) on the crashing end
//! (`--bad`), a fix bisection's fix is applied (its diff against its first
//! parent) on the crashing end, and the test is run there: the crash must
//! be gone.
//!
//! Why the crashing end and not C itself: C with C reverted is exactly C's
//! parent's tree, which the bisection already tested, so it would tell
//! nothing; on the crashing end (KernelCI's and a maintainer's check) a
//! wrong culprit shows: the crash stays, or the revert conflicts with
//! later work.
//!
//! The patched kernel is a build with a patch layer (`exec::Patch`), keyed
//! by the patch's content: a warm re-run reuses its build and pools its
//! runs, and two bisections naming the same culprit on the same end share
//! it.
//!
//! Invariant: checks a named culprit; never changes the search's outcome,
//! only reports beside it.

use super::{ConfirmChange as Change, ConfirmVerdict as Verdict, Confirmation, Outcome, Summary};
use crate::crash::{rate_low, ClassCounts, RunClass, Target};
use crate::exec::{BuildSource, CommitEvaluator, EvalError, Evaluation, Patch};
use crate::git::Repo;
use crate::key::CommitId;
use crate::search::graph::Direction;
use crate::signature::KernelSignature;
use crate::store::{Cache, RunRecord};

pub use crate::exec::evidence::{MAX_RUNS, MIN_RUNS};

pub use crate::exec::evidence::runs_to_see as runs_for;

/// The check of `summary`'s culprit (none when it named none): `runs`
/// overrides the run count chosen from the culprit's crash rate.
pub fn check(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    summary: &Summary,
    crashing_end: &CommitId,
    runs: Option<u32>,
    progress: &mut dyn FnMut(&str),
) -> Result<Option<Confirmation>, EvalError> {
    let Outcome::Culprit {
        commit,
        signature,
        parents,
        ..
    } = &summary.outcome
    else {
        return Ok(None);
    };
    let Some(parent) = repo.parents(commit)?.into_iter().next() else {
        return Ok(None);
    };
    let (change, diff) = match summary.direction {
        Direction::Cause => (Change::Revert, repo.diff(commit, &parent)?),
        Direction::Fix => (Change::ApplyFix, repo.diff(&parent, commit)?),
    };
    let patch = Patch {
        name: format!("{} of {}", crate::serde_word(&change), commit.short()),
        diff: diff.into_bytes(),
    };
    // The crash bisected (the noisy search's target; classic: any crash).
    let target = Target::new(summary.search.iter().flat_map(|s| s.target.iter()));
    // If C is the wrong commit, the reverted kernel crashes about as the
    // crashing end does; if it is right, C's kernel showed the crash's
    // rate: both kernels' runs measure it.
    let end_signature = summary
        .steps
        .iter()
        .find(|s| &s.commit == crashing_end)
        .and_then(|s| s.eval.signature.clone());
    let kernels: Vec<&KernelSignature> = signature.iter().chain(end_signature.iter()).collect();
    let (crash_rate, rate_low) = crash_rate(cache, evaluator, &target, &kernels)?;
    let runs_wanted = runs.unwrap_or_else(|| runs_for(rate_low, evaluator.runs_wanted()));
    progress(&format!(
        "confirming {}: {} on {} ({runs_wanted} run(s))",
        commit.short(),
        patch.name,
        crashing_end.short()
    ));
    let mut c = Confirmation {
        verdict: Verdict::Untested,
        change,
        culprit: commit.clone(),
        on: crashing_end.clone(),
        patch_blake3: patch.digest(),
        crash_rate,
        runs_wanted,
        build_key: None,
        signature: None,
        build: None,
        runs: ClassCounts::default(),
        builds_done: 0,
        runs_done: 0,
        runs_reused: 0,
        conflicts: Vec::new(),
        reason: None,
    };
    // The existing no-op rule: a culprit whose kernel is its parent's
    // changed nothing a test could see, so no test can confirm it.
    let parent_signature = parents.first().and_then(|(_, s)| s.as_ref());
    if diff_is_empty(&patch) || (signature.is_some() && signature.as_ref() == parent_signature) {
        c.verdict = Verdict::NoOp;
        c.reason = Some("the culprit does not change the kernel (its signature is its parent's)".into());
        return Ok(Some(c));
    }
    let mut eval = match evaluator.evaluate_patched(repo, cache, crashing_end, &[patch], runs_wanted, progress) {
        Ok(e) => e,
        Err(EvalError::PatchDoesNotApply { failure, .. }) => {
            c.verdict = Verdict::CannotRevert;
            c.conflicts = failure.files();
            c.reason = Some(failure.message);
            return Ok(Some(c));
        }
        Err(e @ EvalError::DiskFull { .. }) => return Err(e),
        Err(e) => {
            c.reason = Some(e.to_string());
            return Ok(Some(c));
        }
    };
    run_until_informative(
        repo,
        cache,
        evaluator,
        crashing_end,
        &mut eval,
        &target,
        runs_wanted,
        progress,
    )?;
    c.build_key = Some(eval.build_key);
    c.build = Some(eval.build);
    c.builds_done = u32::from(matches!(eval.build, BuildSource::Built | BuildSource::Failed));
    c.runs_done = eval.effort.runs_done;
    c.runs_reused = eval.effort.runs_reused;
    c.signature = eval.signature.clone();
    c.runs = ClassCounts::of(&target, &eval.runs);
    c.verdict = match (&eval.signature, eval.failure) {
        (None, failure) => {
            c.reason = Some(match failure {
                Some(f) => format!("the patched kernel did not build: {}", f.reason),
                None => "the patched kernel is known not to build".into(),
            });
            Verdict::Untested
        }
        _ if c.runs.matched > 0 => Verdict::NotConfirmed,
        _ if c.runs.ok == 0 => {
            c.reason = Some("no run gave information".into());
            Verdict::Untested
        }
        _ => Verdict::Confirmed,
    };
    Ok(Some(c))
}

/// What the user must know of a check that did not confirm the culprit.
pub fn note(c: &Confirmation) -> Option<String> {
    let undo = match c.change {
        Change::Revert => "reverting it",
        Change::ApplyFix => "applying it",
    };
    match c.verdict {
        Verdict::Confirmed => None,
        Verdict::NotConfirmed => Some(format!(
            "the culprit is NOT confirmed: with {undo} on {} the kernel still crashes ({} of {} run(s)); it may be the wrong commit",
            c.on.short(),
            c.runs.matched,
            c.runs.informative()
        )),
        Verdict::CannotRevert => Some(format!(
            "the culprit could not be checked: {undo} on {} conflicts in {}",
            c.on.short(),
            c.conflicts.join(", ")
        )),
        Verdict::NoOp => Some(format!(
            "the culprit could not be checked by {undo}: it does not change the kernel (its signature is its parent's)"
        )),
        Verdict::Untested => Some(format!(
            "the culprit could not be checked: {}",
            c.reason.as_deref().unwrap_or("the patched kernel was not tested")
        )),
    }
}

/// The evaluator stops testing at any crash (a crash decides a step's
/// verdict); an unrelated crash says nothing of the bisected one, so the
/// check runs on until that crash shows or `wanted` runs were informative
/// (ok or the crash), at most [`MAX_RUNS`] runs more. Pooled: a warm
/// re-run finds them all and runs none.
#[allow(clippy::too_many_arguments)]
fn run_until_informative(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    on: &CommitId,
    eval: &mut Evaluation,
    target: &Target,
    wanted: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<(), EvalError> {
    let Some(signature) = eval.signature.clone() else {
        return Ok(());
    };
    let matched = |r: &RunRecord| target.classify(r.outcome, r.title.as_deref()) == RunClass::Match;
    let mut more_runs = 0;
    loop {
        let counts = ClassCounts::of(target, &eval.runs);
        if counts.matched > 0 || counts.informative() >= wanted || more_runs >= MAX_RUNS {
            return Ok(());
        }
        let want = (wanted - counts.informative()).min(MAX_RUNS - more_runs);
        let key = eval.reference_key.unwrap_or(eval.build_key);
        let runs = evaluator.test_batch_of(repo, cache, on, key, &signature, want, &matched, progress)?;
        if runs.is_empty() {
            return Ok(());
        }
        more_runs += runs.len() as u32;
        eval.effort.runs_done += runs.len() as u32;
        eval.runs.extend(runs);
    }
}

/// The measured rate of the bisected crash over the pooled runs of
/// `kernels` (each counted once), and the low end of its 95% interval,
/// which the check's run count is chosen for.
fn crash_rate(
    cache: &Cache,
    evaluator: &CommitEvaluator,
    target: &Target,
    kernels: &[&KernelSignature],
) -> Result<(Option<f64>, Option<f64>), EvalError> {
    let (mut matched, mut informative) = (0, 0);
    for (i, signature) in kernels.iter().enumerate() {
        if kernels[..i].contains(signature) {
            continue;
        }
        let c = ClassCounts::of(target, &cache.runs(signature, &evaluator.test_key())?);
        matched += c.matched;
        informative += c.informative();
    }
    let rate = (matched > 0).then(|| matched as f64 / informative as f64);
    Ok((rate, rate_low(matched, informative)))
}

fn diff_is_empty(p: &Patch) -> bool {
    p.diff.iter().all(u8::is_ascii_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_show_the_crash_rate_with_99_percent() {
        assert_eq!(runs_for(Some(0.5), 10), 7); // 0.5^7 < 0.01 <= 0.5^6
        assert_eq!(runs_for(Some(1.0 / 3.0), 10), 12);
        assert_eq!(runs_for(Some(1.0), 10), MIN_RUNS);
        assert_eq!(runs_for(Some(0.001), 10), MAX_RUNS);
        assert_eq!(runs_for(None, 10), 10);
        for p in [0.05, 0.2, 0.5, 0.9] {
            let n = runs_for(Some(p), 10);
            assert!((1.0 - p).powi(n as i32) <= 0.01 || n == MAX_RUNS, "p {p} n {n}");
        }
    }
}
