//! The noisy search's batches on several kernels at once
//! (`Oracle::run_set`, issue 24): each batch on its own thread under its
//! kernel's test claim, all sharing the evaluator's run slots (`--jobs`),
//! each recorded as its own step in the order asked.
//!
//! Invariant: runs only what the search asked for, through the evaluator's
//! `test_batch`; decides nothing.

use std::time::Instant;

use super::{BisectError, GitOracle};
use crate::crash::{RunClass, Target};
use crate::signature::KernelSignature;
use crate::store::RunRecord;

impl GitOracle<'_> {
    /// Several kernels' batches at once, sharing the evaluator's run slots
    /// (each under its kernel's test claim, each with its own artifacts
    /// directory); each batch becomes a step, in the order asked.
    pub(super) fn run_batches_at_once(
        &mut self,
        batches: &[(usize, KernelSignature, u32)],
        target: &Target,
    ) -> Result<Vec<Vec<RunClass>>, BisectError> {
        let mut out: Vec<Option<Vec<RunClass>>> = vec![None; batches.len()];
        let mut to_run = Vec::new();
        for (k, (i, signature, n)) in batches.iter().enumerate() {
            let signature = signature.clone();
            let unseen = self.runs_not_yet_seen(&signature)?;
            if unseen.is_empty() {
                to_run.push((k, *i, signature, *n));
            } else {
                // As in `run`: another process's runs are this batch.
                (self.progress)(&format!(
                    "  {} run(s) another kcache process did on {}: counted",
                    unseen.len(),
                    crate::key::short(&self.nodes[*i])
                ));
                out[k] = Some(
                    unseen
                        .iter()
                        .map(|r| target.classify(r.outcome, r.title.as_deref()))
                        .collect(),
                );
            }
        }
        let start = Instant::now();
        let rebuilt_before = self.evaluator.rebuilds_to_test();
        let tested = self.test_at_once(&to_run, target);
        // Every batch that completed is recorded, even when another failed.
        let mut first_error = None;
        let mut rebuilt_from = rebuilt_before;
        for ((k, i, signature, n), result) in to_run.into_iter().zip(tested) {
            match result {
                Ok(runs) => {
                    // Rebuilds of evicted artifacts cannot be told apart per
                    // batch here: the first batch recorded carries them.
                    let runs = self.record_batch(i, &signature, runs, target, start, rebuilt_from)?;
                    rebuilt_from = self.evaluator.rebuilds_to_test();
                    out[k] = Some(super::classes_of_batch(&runs, n, target));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// The test batches of `to_run` on threads at once; progress lines come
    /// back to this thread (prefixed with the commit) as they are written.
    fn test_at_once(
        &mut self,
        to_run: &[(usize, usize, KernelSignature, u32)],
        target: &Target,
    ) -> Vec<Result<Vec<RunRecord>, BisectError>> {
        let (repo, cache, evaluator) = (self.repo, self.cache, &*self.evaluator);
        let nodes = &self.nodes;
        let progress = &mut *self.progress;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::scope(|scope| {
            let handles: Vec<_> = to_run
                .iter()
                .map(|(_, i, signature, n)| {
                    let tx = tx.clone();
                    let commit = &nodes[*i];
                    scope.spawn(move || {
                        let matched = |r: &RunRecord| target.classify(r.outcome, r.title.as_deref()) == RunClass::Match;
                        let mut say = |line: &str| {
                            let _ = tx.send(format!("  {}: {}", crate::key::short(commit), line.trim_start()));
                        };
                        evaluator
                            .test_batch(repo, cache, commit, signature, *n, &matched, &mut say)
                            .map_err(BisectError::from)
                    })
                })
                .collect();
            drop(tx);
            for line in rx {
                progress(&line);
            }
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        })
    }
}
