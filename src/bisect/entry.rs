//! A whole bisection from resolved options, as the CLI runs it: the
//! record's setup, the resume notice, the search of the chosen [`Policy`]
//! (a driver: [`classic`] or [`noisy`]), and the record kept.
//!
//! Invariant: the top of `bisect`: nothing in the crate below the CLI
//! calls it, and it only sequences what the drivers and [`record`] do.

use super::{classic, noisy, record, BisectError, Options, Policy, Summary};
use crate::exec::CommitEvaluator;
use crate::git::Repo;
use crate::store::Cache;

/// A finished bisection: its summary and the record kept of it.
#[derive(Debug)]
pub struct Finished {
    pub summary: Summary,
    pub record: record::BisectionRecord,
}

/// A whole bisection from resolved options: the record's setup (and the
/// earlier bisection it resumes, said as a notice), the search of
/// `policy`, and the record kept (with the good end the search used).
/// `progress` gets one line per event.
pub fn run(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &Options,
    policy: Policy,
    noisy: &noisy::NoisyOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<Finished, BisectError> {
    let setup = record::Setup::new(repo, opts, evaluator, policy)?;
    // A compiler an end needs and the machine lacks stops the bisection
    // before its first build, not at the first commit that needs it.
    if evaluator.has_build_env() {
        let ends = std::iter::once(&opts.bad)
            .chain(&opts.goods)
            .map(|r| repo.commit_id(r))
            .collect::<Result<Vec<_>, _>>()?;
        evaluator.check_environments(repo, &ends)?;
    }
    let resumes = record::earlier(cache, &setup).map(|e| {
        crate::notice(&e.resume_line());
        e.id
    });
    let started = crate::store::now();
    let summary = match policy {
        Policy::Classic => classic::bisect(repo, cache, evaluator, opts, progress),
        Policy::Bayes => noisy::bisect(repo, cache, evaluator, opts, noisy, progress),
    }?;
    let mut summary = summary;
    if opts.confirm {
        let crashing_end = repo.commit_id(&opts.bad)?;
        summary.confirmation = super::confirm::check(
            repo,
            cache,
            evaluator,
            &summary,
            &crashing_end,
            opts.confirm_runs,
            progress,
        )?;
        if let Some(c) = &summary.confirmation {
            if let Some(log) = &opts.log {
                super::logfile::append_confirmation(log, c)?;
            }
            if let Some(note) = super::confirm::note(c) {
                summary.notes.push(note);
            }
        }
    }
    // The good end may have been found over release tags.
    let setup = record::Setup {
        good: summary.good.clone(),
        ..setup
    };
    let record = record::keep(repo, cache, setup, &summary, started, resumes);
    Ok(Finished { summary, record })
}
