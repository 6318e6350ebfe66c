//! The opening and closing every bisection shares, whatever its search:
//! the endpoints resolved and checked against the cache's evidence, the
//! cached-range line, the syzkaller-style log, and the summary the record
//! is made from. A whole bisection ([`super::entry::run`]) is a driver
//! between these two.
//!
//! Invariant: decides nothing about which commit to test next; a search
//! driver ([`super::classic`], [`super::noisy`]) runs between `open` and
//! `close`.

use std::time::Instant;

use super::{logfile, BisectError, Options, Outcome, Step, Summary};
use crate::exec::{CommitEvaluator, Verdict};
use crate::git::Repo;
use crate::key::CommitId;
use crate::search::graph::Direction;
use crate::store::Cache;

/// A bisection between its opening and its closing.
pub(crate) struct Session {
    pub bad: CommitId,
    pub goods: Vec<CommitId>,
    pub start: Instant,
    pub log: logfile::LogFile,
    pub direction: Direction,
}

impl Session {
    /// Holds the index, resolves the endpoints and opens the log.
    pub fn open(repo: &Repo, cache: &Cache, opts: &Options) -> Result<Session, BisectError> {
        let start = Instant::now();
        cache.hold_index();
        let (bad, goods) = resolve_endpoints(repo, opts)?;
        let log = logfile::LogFile::new(opts.log.as_deref(), &bad, opts.direction);
        Ok(Session {
            bad,
            goods,
            start,
            log,
            direction: opts.direction,
        })
    }

    /// The log, for a driver that writes steps to it (give it back before
    /// [`Session::close`]).
    pub fn take_log(&mut self) -> logfile::LogFile {
        std::mem::replace(&mut self.log, logfile::LogFile::new(None, &self.bad, self.direction))
    }

    /// Finishes the log and sums the steps up.
    pub fn close(
        mut self,
        repo: &Repo,
        outcome: Outcome,
        steps: Vec<Step>,
        notes: Vec<String>,
        search: Option<super::SearchReport>,
    ) -> Result<Summary, BisectError> {
        self.log
            .finish(&outcome, &steps, repo, self.start.elapsed().as_secs_f64())?;
        Ok(Summary {
            direction: Direction::Cause,
            good: self.goods.clone(),
            outcome,
            totals: super::totals(&steps),
            steps,
            wall_seconds: self.start.elapsed().as_secs_f64(),
            notes,
            search,
            confirmation: None,
        })
    }
}

/// The bad and good commits as ids, in the order the direction wants: a
/// cause bisection's bad end is no ancestor of a good one; a fix
/// bisection's bad (older) end is an ancestor of its one good end.
pub(crate) fn resolve_endpoints(repo: &Repo, opts: &Options) -> Result<(CommitId, Vec<CommitId>), BisectError> {
    let bad = repo.commit_id(&opts.bad)?;
    let goods: Vec<CommitId> = opts.goods.iter().map(|g| repo.commit_id(g)).collect::<Result<_, _>>()?;
    match opts.direction {
        Direction::Cause => {
            for g in &goods {
                if repo.is_ancestor(&bad, g)? {
                    return Err(BisectError::BadBeforeGood { bad, good: g.clone() });
                }
            }
        }
        Direction::Fix => {
            if goods.len() != 1 {
                return Err(BisectError::FixGoods(goods.len()));
            }
            let good = &goods[0];
            if bad == *good || !repo.is_ancestor(&bad, good)? {
                let reversed = repo.is_ancestor(good, &bad)?;
                return Err(BisectError::FixNotDescendant {
                    bad,
                    good: good.clone(),
                    reversed,
                });
            }
        }
    }
    Ok((bad, goods))
}

/// Stops before searching when the cache's pooled runs already contradict
/// an endpoint: a bad commit whose kernel tested good, or a good one whose
/// kernel crashed. Only evidence already in the cache is read.
pub(crate) fn check_endpoints(
    repo: &Repo,
    cache: &Cache,
    evaluator: &CommitEvaluator,
    bad: &CommitId,
    goods: &[CommitId],
) -> Result<(), BisectError> {
    let sides = std::iter::once((bad, "bad", Verdict::Good)).chain(goods.iter().map(|g| (g, "good", Verdict::Bad)));
    for (commit, side, contradiction) in sides {
        let Some((signature, evidence)) = evaluator.cached_evidence(repo, cache, commit)? else {
            continue;
        };
        if evidence.verdict() == Some(contradiction) {
            return Err(BisectError::EndpointContradicted {
                side,
                commit: commit.clone(),
                signature,
                evidence,
                verdict: contradiction,
            });
        }
    }
    Ok(())
}

/// The merges `culprit` came into `tip` by (see [`super::history::merge_path`]),
/// read from the range's graph.
pub(crate) fn merged_by(
    repo: &Repo,
    tip: &CommitId,
    bases: &[CommitId],
    first_parent: bool,
    culprit: &CommitId,
) -> Result<Vec<super::MergeStep>, BisectError> {
    let range = repo.range_graph(tip, bases, first_parent)?;
    let (Some(c), Some(_)) = (range.index_of(culprit), range.commits.last()) else {
        return Ok(Vec::new());
    };
    let graph = crate::search::graph::Graph::new(range.parents.clone(), range.in_range.clone())?;
    Ok(super::history::merge_path(&graph, c, graph.tip())
        .into_iter()
        .map(|m| super::MergeStep {
            commit: range.commits[m].clone(),
            subject: repo.subject(&range.commits[m]).unwrap_or_default(),
        })
        .collect())
}

/// Said up front: how much of the range the cache already has built (a
/// prebuilt range costs no build).
pub(crate) fn cached_line(cached: usize, commits: usize) -> String {
    match cached {
        0 => format!("none of the {commits} commits of the range is in the cache yet"),
        n if n == commits => format!("all {commits} commits of the range are in the cache: no builds needed"),
        n => format!("{n} of the {commits} commits of the range are in the cache"),
    }
}
