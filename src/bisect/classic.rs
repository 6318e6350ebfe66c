//! The classic driver: `git bisect`'s own commit selection
//! (`rev-list --bisect-all`) and its rule (any crash is bad, half the runs
//! ok is good), through the cache.
//!
//! Commit selection is git's own, so merges and `--first-parent` behave as
//! in `git bisect`. Every commit is evaluated through the cache: a known
//! build key reuses its signature and artifacts, a known-broken one is
//! skipped without building, and test runs are pooled per (signature, test
//! key), so commits with the same kernel always get the same verdict. The
//! culprit's parents are built and signed; one whose signature equals the
//! culprit's inherits the culprit's verdict and bisection continues to a
//! real signature boundary.
//!
//! A commit whose diff against an already-built commit touches nothing
//! that build read (its kbuild input set) is *predicted* to have that
//! build's kernel and is neither built nor tested (`predict`). The culprit
//! and its parents are always really built; a real build that contradicts
//! a prediction is reported, counted, and the bisection starts over from
//! its real evidence with prediction off.
//!
//! Invariant: decides by git's selection and the verdict rule only; the
//! opening and closing (endpoints, log, summary) are [`super::session`]'s.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::{logfile, session, BisectError, NoCulprit, Options, Outcome, Purpose, Step, Summary};
use crate::exec::{self, CommitEvaluator, Evaluation, Verdict};
use crate::git::Repo;
use crate::key::short;
use crate::key::CommitId;
use crate::store::Cache;

/// How many commits near the best split are checked for cache hits.
const NEAR_BEST_LIMIT: usize = 64;

/// Builds that failed the same way in a row before any succeeded: after
/// [`FAILURE_STREAK`] of them the build, not the commits, is broken.
const FAILURE_STREAK: usize = 3;

/// Runs a bisection to its end. `progress` gets one line per event.
pub fn bisect(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
) -> Result<Summary, BisectError> {
    if opts.direction == crate::search::graph::Direction::Fix {
        return Err(BisectError::Unsupported(
            "--fix needs the default policy (bayes): --policy classic bisects for a cause only".into(),
        ));
    }
    if opts.goods.is_empty() {
        return Err(BisectError::Unsupported(
            "--policy classic needs --good (finding a good end over release tags is the default policy's)".into(),
        ));
    }
    let mut session = session::Session::open(repo, cache, opts)?;
    let (bad, goods) = (session.bad.clone(), session.goods.clone());
    session::check_endpoints(repo, cache, evaluator, &bad, &goods)?;
    let range: Vec<CommitId> = repo
        .bisect_candidates(&bad, &goods, opts.first_parent)?
        .into_iter()
        .map(|c| c.commit)
        .collect();
    let cached = evaluator
        .cache_states(repo, cache, &range)?
        .into_iter()
        .filter(|s| *s != exec::CacheState::Unknown)
        .count();
    progress(&session::cached_line(cached, range.len()));
    cache.clean_stale();
    evaluator.set_prediction(opts.predict);
    let speculator = exec::speculate::Speculator::start(evaluator, repo, cache, None)?;
    let mut run = Run {
        repo,
        cache,
        evaluator,
        opts,
        steps: Vec::new(),
        seen: HashMap::new(),
        notes: Vec::new(),
        log: session.take_log(),
        contradictions: 0,
        failures: Vec::new(),
        any_built: false,
        bad_checked: false,
        speculator,
    };
    let mut outcome = loop {
        if let Some(outcome) = run.search(bad.clone(), goods.clone(), progress)? {
            break outcome;
        }
        // A prediction was wrong: forget every prediction and redo the
        // search from real evidence (replayed from the cache).
        run.seen.retain(|_, e| e.build != exec::BuildSource::Predicted);
    };
    if let Outcome::Culprit { commit, merged_by, .. } = &mut outcome {
        *merged_by = session::merged_by(repo, &bad, &goods, opts.first_parent, commit)?;
    }
    if let Some(note) = run.speculator.take().map(|s| s.finish()).and_then(|s| s.note()) {
        run.notes.push(note);
    }
    session.log = run.log;
    let mut summary = session.close(repo, outcome, run.steps, run.notes, None)?;
    summary.totals.prediction_contradictions = run.contradictions;
    Ok(summary)
}

struct Run<'a> {
    repo: &'a Repo,
    cache: &'a Cache,
    evaluator: &'a mut CommitEvaluator,
    opts: &'a Options,
    steps: Vec<Step>,
    /// Evaluations already made in this bisection, by commit.
    seen: HashMap<CommitId, Evaluation>,
    notes: Vec<String>,
    log: logfile::LogFile,
    contradictions: usize,
    /// Failed builds of this bisection so far, while none has succeeded.
    failures: Vec<exec::BuildFailure>,
    any_built: bool,
    /// The bad commit was built to tell a broken range from a broken build.
    bad_checked: bool,
    /// `--build-jobs` > 1: builds both next midpoints while one is tested.
    speculator: Option<exec::speculate::Speculator>,
}

impl Run<'_> {
    /// `None`: a prediction was contradicted; search again.
    fn search(
        &mut self,
        mut bad: CommitId,
        mut goods: Vec<CommitId>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<Outcome>, BisectError> {
        let contradictions = self.contradictions;
        let mut skipped: HashSet<CommitId> = HashSet::new();
        loop {
            let candidates = self.repo.bisect_candidates(&bad, &goods, self.opts.first_parent)?;
            let open: Vec<_> = candidates
                .iter()
                .filter(|c| c.commit != bad && !skipped.contains(&c.commit))
                .cloned()
                .collect();
            if open.is_empty() {
                let stuck: Vec<CommitId> = candidates
                    .iter()
                    .filter(|c| c.commit == bad || skipped.contains(&c.commit))
                    .map(|c| c.commit.clone())
                    .collect();
                if stuck.len() > 1 {
                    return Ok(Some(Outcome::Inconclusive { candidates: stuck }));
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
                                    bad,
                                    parent,
                                    good: blocking[0].clone(),
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
            self.prefetch_next_midpoints(&pick, &bad, &goods, &skipped)?;
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
    fn stop_if_every_build_fails(&mut self, bad: &CommitId, progress: &mut dyn FnMut(&str)) -> Result<(), BisectError> {
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

    /// Chromium's bisect-builds' trick: while `pick` is built and tested,
    /// the build slots build the midpoint the search goes to if it is bad
    /// and the one if it is good (so the next step's build is ready either
    /// way; the other one is kept in the cache).
    fn prefetch_next_midpoints(
        &mut self,
        pick: &CommitId,
        bad: &CommitId,
        goods: &[CommitId],
        skipped: &HashSet<CommitId>,
    ) -> Result<(), BisectError> {
        if self.speculator.is_none() {
            return Ok(());
        }
        let mut with_pick = goods.to_vec();
        with_pick.push(pick.clone());
        let mut wanted = Vec::new();
        for (b, g) in [(pick, goods), (bad, with_pick.as_slice())] {
            let open: Vec<_> = self
                .repo
                .bisect_candidates(b, g, self.opts.first_parent)?
                .into_iter()
                .filter(|c| &c.commit != b && !skipped.contains(&c.commit))
                .filter(|c| !self.seen.contains_key(&c.commit))
                .collect();
            if !open.is_empty() {
                wanted.push(self.choose(&open)?);
            }
        }
        if let Some(s) = &self.speculator {
            s.prefetch(&wanted);
        }
        Ok(())
    }

    /// Shows what the build slots did since the last look.
    fn show_speculation(&self, progress: &mut dyn FnMut(&str)) {
        for line in self.speculator.iter().flat_map(|s| s.take_lines()) {
            progress(&line);
        }
    }

    /// Picks the best split, preferring among nearly-best commits one
    /// whose build or test the cache already has.
    fn choose(&mut self, open: &[crate::git::Candidate]) -> Result<CommitId, BisectError> {
        let best = open.iter().map(|c| c.dist).max().unwrap_or(0);
        let near: Vec<CommitId> = open
            .iter()
            .filter(|c| c.dist * 10 >= best * 9)
            .take(NEAR_BEST_LIMIT)
            .map(|c| c.commit.clone())
            .collect();
        // On a tie, the first in git's order (`rev().max_by_key` keeps the
        // first maximum): the commit `git bisect` itself would test, so a
        // kcache log and a plain bisection walk the same steps.
        let Some(mut chosen) = open.iter().rev().max_by_key(|c| c.dist).map(|c| c.commit.clone()) else {
            return Err(BisectError::Unsupported("git offered no commit to test".into()));
        };
        if near.len() > 1 {
            let states = self.evaluator.cache_states(self.repo, self.cache, &near)?;
            let top = near
                .iter()
                .zip(&states)
                .rev()
                .max_by_key(|(c, s)| (**s, open.iter().find(|o| o.commit == **c).map_or(0, |o| o.dist)));
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
        commit: &CommitId,
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
        self.show_speculation(progress);
        progress(&format!("[{}] {} {}", self.steps.len() + 1, short(commit), subject));
        if let Some(s) = &self.speculator {
            if s.foreground(commit) {
                progress("  built speculatively: its build is reused (waited for while it still ran)");
            }
        }
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
            commit: commit.clone(),
            subject,
            purpose,
            eval: eval.clone(),
        });
        self.seen.insert(commit.clone(), eval.clone());
        Ok(eval)
    }

    /// Compares a real build with the prediction made for it: equal, the
    /// commit keeps its verdict; different, prediction was wrong.
    fn check_prediction(
        &mut self,
        commit: &CommitId,
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
    fn check_culprit(
        &mut self,
        culprit: &CommitId,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Option<CommitId>, BisectError> {
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

    fn culprit_outcome(&self, culprit: &CommitId) -> Result<Outcome, BisectError> {
        let mut parents = self.repo.parents(culprit)?;
        if self.opts.first_parent {
            parents.truncate(1);
        }
        let parents = parents
            .into_iter()
            .map(|p| {
                let sig = self.seen.get(&p).and_then(|e| e.signature.clone());
                (p, sig)
            })
            .collect();
        Ok(Outcome::Culprit {
            commit: culprit.clone(),
            subject: self.repo.subject(culprit).unwrap_or_default(),
            signature: self.seen.get(culprit).and_then(|e| e.signature.clone()),
            parents,
            combined: false,
            merged_by: Vec::new(),
        })
    }
}

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
