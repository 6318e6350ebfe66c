//! `bisect --repro`: one run of the reproducer harness ([`crate::vm`]) as
//! a bisection's test run, on the restored boot image.
//!
//! Invariant: maps the harness's outcome to a run record and keeps the
//! console; decides nothing about verdicts.

use std::path::Path;

use super::EvalError;
use crate::key::{CommitId, TestKey};
use crate::signature::KernelSignature;
use crate::store::{Cache, Outcome, RunRecord};
use crate::vm::{NoInfo, ReproTest, RunOutcome};

/// A crash with its title, ok, or no information: a kernel that did not
/// boot is `boot-failed`; a VM that hung without a report is `None` (not
/// recorded, like a timed-out test); other no-info runs are `infra`. The
/// console is kept in the cache as the run's log. A config the harness
/// cannot boot, or a harness that cannot start QEMU, stops the bisection.
pub(super) fn run(
    repro: &ReproTest,
    cache: &Cache,
    test_key: TestKey,
    commit: &CommitId,
    signature: &KernelSignature,
    artifacts: &Path,
    run: u32,
) -> Result<Option<RunRecord>, EvalError> {
    let failed = |how: String| EvalError::Repro {
        commit: commit.clone(),
        how,
    };
    repro.check_config(artifacts).map_err(|e| failed(e.to_string()))?;
    let image = artifacts.join(&repro.boot_image);
    let r = repro.harness.run_one(&image, run).map_err(|e| failed(e.to_string()))?;
    let (outcome, title) = match r.outcome {
        RunOutcome::Crash { title, .. } => (Outcome::Crash, Some(title)),
        RunOutcome::Ok { .. } => (Outcome::Ok, None),
        RunOutcome::NoInfo(NoInfo::TimedOut(_)) => return Ok(None),
        RunOutcome::NoInfo(NoInfo::BootCrash(_) | NoInfo::DidNotBoot(_)) => (Outcome::BootFailed, None),
        RunOutcome::NoInfo(_) => (Outcome::Infra, None),
    };
    let mut record = RunRecord::new(signature, test_key, outcome, title, r.seconds, Some(commit));
    // Straight from memory: no file in the shared artifacts directory, so
    // runs at once on one kernel cannot collide.
    record.log_blob = cache
        .put_console(&r.console)
        .inspect_err(|e| crate::warn(&format!("run {run}'s console not kept: {e}")))
        .ok();
    Ok(Some(record))
}
