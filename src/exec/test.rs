//! Testing a built kernel: restoring its artifacts (building again when
//! they were evicted), running the test command in batches, pooling the
//! runs other kcache processes did on the same kernel, classifying each
//! run's exit, and keeping its console.
//!
//! Invariant: runs on a kernel happen only under its test claim (one
//! tester per kernel and test across processes), and every completed run
//! is recorded, even when a later run of its batch fails.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{claim, io_err, parallel, CommitEvaluator, EvalError};
use crate::child::{self, Ending};
use crate::git::Repo;
use crate::key::{BuildKey, CommitId};
use crate::signature::KernelSignature;
use crate::store::{self, BuildRecord, Cache, Counter, Outcome, RunRecord, StoreError};

use super::build::Built;

/// How long completed runs may wait to be written. Runs are written in one
/// batch per kernel when they are quick (an index open costs milliseconds,
/// a toy run less), and each on its own when a run takes longer than this:
/// a killed bisection loses at most this much testing.
const RUN_SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// Prefix of the directories tests run in under the cache: removed when a
/// killed kcache left them behind (`store::Cache::clean_stale`).
pub const ARTIFACTS_PREFIX: &str = crate::store::ARTIFACTS_PREFIX;

impl CommitEvaluator {
    /// Runs the test up to `want` times (run numbers from `first_run`),
    /// stopping after a run for which `stop` is true. The caller holds the
    /// kernel's test claim.
    #[allow(clippy::too_many_arguments)]
    fn test(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        record: &BuildRecord,
        signature: &KernelSignature,
        first_run: u32,
        want: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let artifacts_dir = tempfile::Builder::new()
            .prefix(ARTIFACTS_PREFIX)
            .tempdir_in(cache.dir())
            .map_err(io_err("artifacts dir"))?;
        // Held while testing: `Cache::clean_stale` leaves a locked directory alone.
        let in_use = artifacts_dir.path().join(store::ARTIFACTS_LOCK);
        let _in_use = std::fs::File::create(&in_use)
            .and_then(|f| f.try_lock().map_err(std::io::Error::other).map(|_| f))
            .map_err(io_err(format!("artifacts lock {}", in_use.display())))?;
        let restored = cache.restore_build(record, artifacts_dir.path());
        let env = self.environment_of(repo, &record.commit)?;
        let env_patches: Vec<_> = env
            .iter()
            .flat_map(|e| e.patches.iter().map(super::Patch::digest))
            .collect();
        if restored.as_ref().is_err_and(StoreError::is_gone) && record.patches != env_patches {
            // Its patches are not kept with the record: the caller builds it again.
            progress("  artifacts of a patched build were evicted: build it again with its patches");
            return Ok(Vec::new());
        }
        if restored.as_ref().is_err_and(StoreError::is_gone) {
            // Artifacts gone (evicted, or quarantined as corrupt): build again to test.
            progress("  artifacts were evicted: rebuilding to test");
            // The record's own commit: a predicted kernel's artifacts are its reference's.
            let inputs = self.inputs_of(repo, &record.commit)?;
            let patches: Vec<_> = env.iter().flat_map(|e| e.patches.iter().cloned()).collect();
            let built = self.build(repo, cache, &record.commit, &inputs, &patches, env.as_deref(), progress)?;
            cache.count(&[(Counter::BuildMisses, 1)]);
            let took = match &built {
                Built::Ok(r, _) => r.build_seconds,
                Built::Failed { seconds, .. } => *seconds,
            };
            let mut rebuilt = self.rebuilt_to_test.lock().unwrap_or_else(|e| e.into_inner());
            *rebuilt = (rebuilt.0 + 1, rebuilt.1 + took);
            drop(rebuilt);
            match built {
                Built::Ok(fresh, _) => {
                    cache.restore(&fresh.artifacts, artifacts_dir.path())?;
                }
                _ => {
                    progress("  the rebuild failed: no test");
                    return Ok(Vec::new());
                }
            }
        } else {
            restored?;
        }
        // Timed-out runs are not recorded: bound the attempts on a hung kernel.
        let batch = parallel::Batch {
            first_run,
            want,
            attempts: want.saturating_mul(2).max(want + 2),
        };
        let slots = self.slots.total().min(want);
        progress(&match slots {
            1 => format!("  testing {want} run(s)..."),
            n => format!("  testing {want} run(s), {n} at once..."),
        });
        let artifacts = artifacts_dir.path();
        let mut out: Vec<RunRecord> = Vec::new();
        let (mut unsaved, mut saved_at) = (0, Instant::now());
        let (mut failed, mut unwritten) = (None, None);
        parallel::run_batch(
            &self.slots,
            batch,
            |run| self.run_test(cache, commit, signature, artifacts, run),
            stop,
            &mut |parallel::Event::Ended(run, ended)| match ended {
                Ok(Some(r)) => {
                    out.push(r);
                    unsaved += 1;
                    // Written as they complete (in groups while runs are
                    // quick): a kill loses at most the runs in flight and
                    // this interval's.
                    if saved_at.elapsed() >= RUN_SAVE_INTERVAL {
                        match cache.record_runs(&out[out.len() - unsaved..]) {
                            Ok(()) => (unsaved, saved_at) = (0, Instant::now()),
                            Err(e) => unwritten = Some(e),
                        }
                    }
                }
                Ok(None) => {
                    self.timed_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let after = (self.recipe.test_timeout)
                        .map(|t| format!(" after {}s", t.as_secs_f64()))
                        .unwrap_or_default();
                    progress(&format!("  run {run} timed out{after}: no information (not recorded)"));
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            },
        );
        if let Some(e) = failed {
            self.save_runs(cache, &out[out.len() - unsaved..]);
            return Err(e);
        }
        match cache.record_runs(&out[out.len() - unsaved..]) {
            Ok(()) => {}
            Err(e) => return Err(unwritten.unwrap_or(e).into()),
        }
        Ok(out)
    }

    /// Best effort on the way out of a failed test batch: the runs that
    /// did complete are evidence worth keeping.
    fn save_runs(&self, cache: &Cache, runs: &[RunRecord]) {
        if let Err(e) = cache.record_runs(runs) {
            crate::warn(&format!("{} completed run(s) not recorded: {e}", runs.len()));
        }
    }

    /// Runs the test on a built kernel up to `want` times, stopping after a
    /// run for which `stop` is true; every run is recorded as it completes.
    /// Runs another process did on the kernel while this one waited for
    /// its test claim count as the batch's (returned first): a concurrent
    /// search of the range does not run a full batch again (issue 27).
    #[allow(clippy::too_many_arguments)]
    pub fn test_batch(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        signature: &KernelSignature,
        want: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let key = self.key_of(repo, commit)?;
        self.test_batch_of(repo, cache, commit, key, signature, want, stop, progress)
    }

    /// [`CommitEvaluator::test_batch`] on the kernel of build `key` (a
    /// patched build of `commit`: the revert check's).
    #[allow(clippy::too_many_arguments)]
    pub fn test_batch_of(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        key: BuildKey,
        signature: &KernelSignature,
        want: u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<RunRecord>, EvalError> {
        let before: std::collections::HashSet<store::RunId> = cache
            .view(|v| v.runs(signature, &self.test_key))?
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        let landed = |pooled: &[RunRecord]| -> Vec<RunRecord> {
            pooled.iter().filter(|r| !before.contains(&r.run_id)).cloned().collect()
        };
        let more = |pooled: &[RunRecord]| {
            let landed = landed(pooled);
            match landed.iter().any(stop) {
                true => 0,
                false => want.saturating_sub(landed.len() as u32),
            }
        };
        let (pooled, new_runs) = self.test_claimed(repo, cache, commit, key, signature, &more, stop, progress)?;
        let mut runs = landed(&pooled);
        if !runs.is_empty() {
            progress(&format!(
                "  {} run(s) another kcache process did on this kernel meanwhile: counted",
                runs.len()
            ));
        }
        runs.extend(new_runs);
        Ok(runs)
    }

    /// Under the kernel's test claim (one tester per kernel and test across
    /// processes: a concurrent bisection testing it finishes first, and its
    /// runs are pooled here): the pooled runs, then `more(pooled)` new runs
    /// on the artifacts of build `record_key`, stopping after a run for
    /// which `stop` is true.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn test_claimed(
        &self,
        repo: &Repo,
        cache: &Cache,
        commit: &CommitId,
        record_key: BuildKey,
        signature: &KernelSignature,
        more: &dyn Fn(&[RunRecord]) -> u32,
        stop: &dyn Fn(&RunRecord) -> bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(Vec<RunRecord>, Vec<RunRecord>), EvalError> {
        let _claim = claim(cache, &format!("test-{signature}-{}", self.test_key.to_hex()), progress)?;
        let (pooled, local) = cache.view(|v| Ok((v.runs(signature, &self.test_key)?, v.build(&record_key)?)))?;
        let want = more(&pooled);
        if want == 0 {
            return Ok((pooled, Vec::new()));
        }
        let record = match local {
            Some(r) => Some(r),
            None => cache.build(&record_key)?,
        };
        let record = record.ok_or_else(|| EvalError::Io {
            what: format!("build record {record_key} of {commit}"),
            source: std::io::Error::other("not in the cache: the kernel must be built before it is tested"),
        })?;
        let first = pooled.len() as u32;
        let new_runs = match self.engine.clone() {
            Some(engine) => self.test_on_engine(
                &engine, repo, cache, commit, &record, signature, first, want, &pooled, progress,
            )?,
            None => self.test(repo, cache, commit, &record, signature, first, want, stop, progress)?,
        };
        Ok((pooled, new_runs))
    }

    /// One run of the test; `None` when it timed out (no information).
    /// The test's stdout and stderr go to a file; its console is the file
    /// it leaves at `KCACHE_CONSOLE`, or else that output. A crash's title
    /// is the last `crash: TITLE` line it printed, or else the console's
    /// ([`crate::title`]); the console is kept in the cache (bounded).
    fn run_test(
        &self,
        cache: &Cache,
        commit: &CommitId,
        signature: &KernelSignature,
        artifacts: &Path,
        run: u32,
    ) -> Result<Option<RunRecord>, EvalError> {
        if let Some(repro) = &self.recipe.repro {
            return crate::exec::repro::run(repro, cache, self.test_key, commit, signature, artifacts, run);
        }
        let start = Instant::now();
        let scratch = tempfile::Builder::new()
            .prefix("kcache-run-")
            .tempdir()
            .map_err(io_err("test run scratch directory"))?;
        let output = scratch.path().join("output.log");
        let console_file = scratch.path().join("console.log");
        let work = run_directory(scratch.path(), artifacts)?;
        let ending = child::run(
            &child::Spec {
                script: &self.recipe.test,
                dir: &work,
                env: vec![
                    ("KCACHE_ARTIFACTS", artifacts.as_os_str().to_owned()),
                    ("KCACHE_SIGNATURE", signature.as_str().into()),
                    ("KCACHE_COMMIT", commit.as_str().into()),
                    ("KCACHE_RUN", run.to_string().into()),
                    ("KCACHE_CONSOLE", console_file.as_os_str().to_owned()),
                ],
                timeout: self.recipe.test_timeout,
                log: Some(output.clone()),
            },
            |_| {},
        )
        .map_err(io_err(format!("test command `{}`", self.recipe.test)))?;
        let mut title = crate::title::console::printed_title(&output);
        let code = match ending {
            Ending::TimedOut(_) => return Ok(None),
            Ending::Exited(code) => code,
        };
        let outcome = match code {
            0 => Outcome::Ok,
            125 => Outcome::Infra,
            // sh's "cannot execute" and "not found": a broken test setup
            // (a relative path, say: tests run in the artifacts directory),
            // never a crash of the kernel.
            c @ (126 | 127) => {
                return Err(EvalError::TestAborted {
                    commit: commit.clone(),
                    run,
                    how: format!(
                        "exit status {c}: the shell could not run `{}`: {}",
                        self.recipe.test,
                        child::why_not_run(&self.recipe.test, &work)
                    ),
                })
            }
            c if (1..128).contains(&c) => Outcome::Crash,
            c => {
                return Err(EvalError::TestAborted {
                    commit: commit.clone(),
                    run,
                    how: format!("exit status {c} (killed by signal {})", c - 128),
                })
            }
        };
        let console = crate::title::console::tail(if console_file.is_file() { &console_file } else { &output });
        if outcome == Outcome::Crash && title.is_none() {
            title = crate::title::title(&console).map(|r| r.title);
        }
        if outcome == Outcome::Crash && title.is_none() {
            title = Some(format!("crash (exit status {code})"));
        }
        let title = if outcome == Outcome::Crash { title } else { None };
        let seconds = start.elapsed().as_secs_f64();
        let mut run = RunRecord::new(signature, self.test_key, outcome, title, seconds, Some(commit));
        if !console.is_empty() {
            match cache.put_console(&console) {
                Ok(key) => run.log_blob = Some(key),
                Err(e) => crate::warn(&format!(
                    "the console of run {run} on {commit} was not kept: {e}",
                    run = run.run_id
                )),
            }
        }
        Ok(Some(run))
    }
}

/// The directory one test run works in: its own (runs of a batch go on at
/// once, and a script that writes `out.txt` in its working directory must
/// not read another run's), holding a symlink to every entry of the
/// kernel's artifacts directory, so `./vmlinux` still names the artifact.
/// The artifacts directory exists whether the kernel was built here,
/// restored from the local cache or fetched from the remote.
fn run_directory(scratch: &Path, artifacts: &Path) -> Result<PathBuf, EvalError> {
    let work = scratch.join("work");
    std::fs::create_dir(&work).map_err(io_err(format!("test run directory {}", work.display())))?;
    let entries =
        std::fs::read_dir(artifacts).map_err(io_err(format!("artifacts directory {}", artifacts.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("artifacts directory {}", artifacts.display())))?;
        let link = work.join(entry.file_name());
        std::os::unix::fs::symlink(entry.path(), &link).map_err(io_err(format!("test run link {}", link.display())))?;
    }
    Ok(work)
}
