//! `kcache prebuild`: fills the cache for a whole range ahead of any
//! bisection, oldest commit first in one worktree (so each build is
//! incremental), so that every later bisection of the range — by anyone
//! sharing the remote — only tests.
//!
//! Resuming is free: a commit that already has a build record is reused,
//! not rebuilt, so a killed prebuild picks up where it stopped. A commit
//! whose kernel is predicted (no input of an earlier build differs) gets a
//! record naming that build (`predicted_from`) and costs no build.
//!
//! Invariant: builds only through `exec::CommitEvaluator::build_or_predict`
//! (keys, claims, prediction and uploads exactly as a bisection's); never
//! runs a test.

use std::time::Instant;

use crate::exec::{BuildSource, CommitEvaluator, EvalError};
use crate::git::{GitError, Repo};
use crate::key::CommitId;
use crate::store::{host, now, Cache, PrebuildRecord, PREBUILD_SCHEMA};

/// A range as given (`A..B`, or just `B` for all its history), resolved.
#[derive(Debug, Clone)]
pub struct Range {
    pub spec: String,
    pub base: Option<CommitId>,
    pub tip: CommitId,
    /// The commits of `base..tip`, oldest first.
    pub commits: Vec<CommitId>,
}

impl Range {
    pub fn resolve(repo: &Repo, spec: &str, first_parent: bool) -> Result<Range, GitError> {
        let (base, tip) = match spec.split_once("..") {
            Some((a, b)) => (Some(a), if b.is_empty() { "HEAD" } else { b }),
            None => (None, spec),
        };
        let tip = repo.commit_id(tip)?;
        let base = base.map(|a| repo.commit_id(a)).transpose()?;
        let mut args = vec!["rev-list", "--reverse"];
        if first_parent {
            args.push("--first-parent");
        }
        args.push(tip.as_str());
        let not_base = base.as_ref().map(|b| format!("^{b}"));
        args.extend(not_base.as_deref());
        let commits = repo.run(&args)?.lines().map(CommitId::from).collect();
        Ok(Range {
            spec: spec.to_string(),
            base,
            tip,
            commits,
        })
    }

    /// Every `every`-th commit plus both ends (the base, the tip), oldest
    /// first: what a bisection of the range tests first.
    pub fn select(&self, every: usize) -> Vec<CommitId> {
        let every = every.max(1);
        let last = self.commits.len().saturating_sub(1);
        let mut out: Vec<CommitId> = self.base.iter().cloned().collect();
        out.extend(
            self.commits
                .iter()
                .enumerate()
                .filter(|(i, _)| i % every == 0 || *i == last)
                .map(|(_, c)| c.clone()),
        );
        out
    }
}

/// Where a prebuild stands, after each commit.
#[derive(Debug, Clone)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub commit: &'a str,
    pub source: BuildSource,
    /// Seconds left at the pace so far.
    pub eta_seconds: f64,
}

/// Builds (or predicts, or finds in the cache) every selected commit of
/// `range`, then records what it did for `kcache stats`.
pub fn prebuild(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    range: &Range,
    every: usize,
    progress: &mut dyn FnMut(&Progress),
) -> Result<PrebuildRecord, EvalError> {
    let start = Instant::now();
    let selected = range.select(every);
    // Every commit's environment before the first build: a missing compiler stops here.
    evaluator.check_environments(repo, &selected)?;
    let inputs = evaluator.inputs_of(repo, &range.tip)?;
    let mut record = PrebuildRecord {
        schema: PREBUILD_SCHEMA.into(),
        range: range.spec.clone(),
        base: range.base.clone(),
        tip: range.tip.clone(),
        recipe_digest: inputs.recipe_digest,
        config_digest: inputs.config_digest,
        commits: range.commits.len(),
        selected: selected.len(),
        cached: 0,
        built: 0,
        predicted: 0,
        failed: 0,
        transient: 0,
        seconds: 0.0,
        host: host(),
        time: now(),
    };
    for (i, commit) in selected.iter().enumerate() {
        let eval = evaluator.build_or_predict(repo, cache, commit, true, &mut |_| {})?;
        let source = match (eval.build, eval.reference_key) {
            (BuildSource::Predicted, Some(reference)) => match cache.build(&reference)? {
                Some(reference) => {
                    let inputs = evaluator.inputs_of(repo, commit)?;
                    cache.put_predicted_build(commit, &inputs, &reference)?;
                    BuildSource::Predicted
                }
                // The reference vanished (forgotten meanwhile): retry next time.
                None => BuildSource::TransientFailure,
            },
            (source, _) => source,
        };
        count(&mut record, source);
        let done = i + 1;
        let pace = start.elapsed().as_secs_f64() / done as f64;
        progress(&Progress {
            done,
            total: selected.len(),
            commit,
            source,
            eta_seconds: pace * (selected.len() - done) as f64,
        });
    }
    record.seconds = start.elapsed().as_secs_f64();
    cache.put_prebuild(&record)?;
    Ok(record)
}

fn count(record: &mut PrebuildRecord, source: BuildSource) {
    match source {
        BuildSource::Built => record.built += 1,
        BuildSource::Reused => record.cached += 1,
        BuildSource::Predicted => record.predicted += 1,
        BuildSource::Failed | BuildSource::KnownBroken => record.failed += 1,
        BuildSource::TransientFailure => record.transient += 1,
    }
}
