//! No-op prediction in the noisy search: which of the range's commits a
//! reference build predicts (`exec::predict`: same kernel, no build), kept
//! current as references are met so the search's cost model counts them
//! free; and the check that no answer rests on a prediction a real build
//! contradicts.
//!
//! A predicted commit takes its reference's signature, and so its pooled
//! runs. Before a culprit is reported, the culprit and its parents are
//! built for real when they were predicted (the answer rests on their
//! kernels), and every other predicted commit that got a real build
//! meanwhile (a speculative slot, another process) is compared too. A real
//! signature that differs from the predicted one is a loud alarm: the
//! caller drops every prediction, turns prediction off, and searches again
//! from the real evidence (every build and run replayed from the cache).

use super::GitOracle;
use crate::bisect::{BisectError, Purpose};
use crate::exec::BuildSource;
use crate::key::{short, CommitId};
use crate::search::bayes::Kernel;
use crate::store::{BuildStatus, Counter};

impl GitOracle<'_> {
    /// Predicts what the references met since the last call predict: each
    /// range node whose kernel is unknown is checked against each new
    /// reference once.
    pub(in crate::bisect) fn refresh_predictions(&mut self) -> Result<(), BisectError> {
        if !self.evaluator.predicting() {
            return Ok(());
        }
        let keys = self.evaluator.reference_keys();
        if keys.iter().all(|k| self.predictions.checked.contains(k)) {
            return Ok(());
        }
        for i in 0..self.predictions.range.len().min(self.nodes.len()) {
            let unknown = self.known.get(i).is_none_or(|k| *k == Kernel::Unknown);
            if !self.predictions.range[i]
                || !unknown
                || self.predictions.nodes.contains(&i)
                || self.evals.contains_key(&self.nodes[i])
            {
                continue;
            }
            if self
                .evaluator
                .predictable(self.repo, &self.nodes[i], &self.predictions.checked)?
                .is_some()
            {
                self.predictions.nodes.insert(i);
            }
        }
        self.predictions.checked.extend(keys);
        Ok(())
    }

    /// Checks the predictions an answer rests on by real builds: the
    /// commits of `boundary` (the culprit and its parents) are built when
    /// they were predicted, and every other predicted commit is compared
    /// with a real build of it when the cache has one by now. The alarms
    /// raised (empty: every prediction held).
    pub(in crate::bisect) fn check_predictions(&mut self, boundary: &[usize]) -> Result<Vec<String>, BisectError> {
        let mut predicted: Vec<(usize, CommitId)> = self
            .evals
            .iter()
            .filter(|(_, e)| e.build == BuildSource::Predicted)
            .filter_map(|(c, _)| Some((self.nodes.iter().position(|n| n == c)?, c.clone())))
            .collect();
        predicted.sort();
        let mut alarms = Vec::new();
        for (i, commit) in predicted {
            let guess = self.evals[&commit].clone();
            let real = if boundary.contains(&i) {
                let line = format!(
                    "[{}] {} {}",
                    self.steps.len() + 1,
                    short(&commit),
                    self.repo.subject(&commit).unwrap_or_default()
                );
                (self.progress)(&line);
                (self.progress)("  predicted, and the answer rests on it: built for real to check");
                let eval =
                    self.evaluator
                        .build_or_predict(self.repo, self.cache, &commit, false, &mut *self.progress)?;
                self.learn_build_seconds(&eval);
                self.evals.insert(commit.clone(), eval.clone());
                self.reported.insert(commit.clone());
                self.record_step(i, eval.clone(), Purpose::SignatureCheck)?;
                Some(eval.signature)
            } else {
                self.cache
                    .build(&guess.build_key)?
                    .filter(|r| r.status == BuildStatus::Ok)
                    .map(|r| r.signature)
            };
            match real {
                Some(signature) if signature != guess.signature => {
                    alarms.push(self.alarm(&commit, guess.predicted_from.as_ref(), &guess.signature, &signature));
                }
                _ => {}
            }
        }
        Ok(alarms)
    }

    /// Says loudly that a prediction was wrong, and counts it.
    fn alarm(
        &mut self,
        commit: &CommitId,
        reference: Option<&CommitId>,
        predicted: &Option<crate::signature::KernelSignature>,
        real: &Option<crate::signature::KernelSignature>,
    ) -> String {
        let note = format!(
            "PREDICTION CONTRADICTED: {} was predicted to have the kernel of {} (signature {}), but its real build \
             has signature {}. This is a kcache bug (a file the build read is missing from the recorded input \
             set); prediction is off for the rest of this bisection, which searches again from real builds",
            short(commit),
            reference.map_or("?", |r| short(r)),
            predicted.as_deref().unwrap_or("-"),
            real.as_deref().unwrap_or("none (build failed)")
        );
        crate::warn(&note);
        (self.progress)(&note);
        self.cache.count(&[(Counter::PredictionContradictions, 1)]);
        note
    }

    /// Forgets every prediction and turns prediction off: what the search
    /// knows is what the cache knows from real builds.
    pub(in crate::bisect) fn drop_predictions(&mut self) -> Result<(), BisectError> {
        self.evaluator.set_prediction(false);
        let dropped: Vec<CommitId> = self
            .evals
            .iter()
            .filter(|(_, e)| e.build == BuildSource::Predicted)
            .map(|(c, _)| c.clone())
            .collect();
        for c in &dropped {
            self.evals.remove(c);
            // Built later, its build shows in a step again.
            self.reported.remove(c);
        }
        self.predictions.nodes.clear();
        self.known = self.look_up_all()?;
        Ok(())
    }
}
