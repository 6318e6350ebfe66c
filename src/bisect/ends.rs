//! Settling a noisy bisection's ends before its search: a good end found
//! over release tags when none was given (as syzbot does), and the merge
//! bases of a `--good` that is not an ancestor of `--bad` tested first (as
//! `git bisect` does: a good commit on a branch that forked before the
//! regression and merged a fix would otherwise make the range lie).
//!
//! Invariant: only tests ends and says what it found (notes, errors); the
//! range and the search are [`super::noisy`]'s.

use super::oracle::GitOracle;
use super::{history, BisectError};
use crate::crash::{ClassCounts, Target};
use crate::key::{short, CommitId};
use crate::search::bayes::{Kernel, Oracle};

/// What testing one end found.
enum Seen {
    Crashes(ClassCounts),
    Clean(ClassCounts),
    Untestable(String),
}

impl Seen {
    fn describe(&self) -> String {
        match self {
            Seen::Crashes(c) => format!("reproduces: {} of {} runs matched", c.matched, c.total()),
            Seen::Clean(c) => format!("does not reproduce: {} ok of {} runs", c.ok, c.total()),
            Seen::Untestable(why) => format!("cannot tell: {why}"),
        }
    }
}

/// Builds (or reuses) `commit`'s kernel and judges it against the target
/// from its pooled runs, adding a batch when they are fewer than a batch.
/// A match counts unless it is lost among many clean runs (the error rate).
fn test_end(o: &mut GitOracle, commit: &CommitId, target: &Target) -> Result<Seen, BisectError> {
    let i = o.node(commit);
    let sig = match o.build(i)? {
        Kernel::Signed(sig) => sig,
        _ => return Ok(Seen::Untestable("its kernel does not build".into())),
    };
    let runs = o.evaluator.runs_wanted();
    let mut counts = ClassCounts::default();
    o.pooled(&sig, target)?.into_iter().for_each(|c| counts.add(c));
    if counts.matched == 0 && counts.informative() < runs {
        o.run(i, &sig, runs, target)?.into_iter().for_each(|c| counts.add(c));
    }
    Ok(if counts.matched > 0 && counts.matched * 20 > counts.informative() {
        Seen::Crashes(counts)
    } else if counts.ok > 0 {
        Seen::Clean(counts)
    } else {
        Seen::Untestable(format!("no run told anything ({})", counts.describe()))
    })
}

/// Without `--good`: release tags older than `bad` matching `glob`,
/// thinned ([`history::release_tags`]), tried newest first until one does
/// not reproduce; that one is the good end. Which tags were tried and why
/// the walk stopped go into `notes`.
pub(super) fn walk_back_tags(
    o: &mut GitOracle,
    bad: &CommitId,
    glob: &str,
    target: &Target,
    notes: &mut Vec<String>,
) -> Result<CommitId, BisectError> {
    let mut older = Vec::new();
    for t in o.repo.tags(glob)? {
        if t.commit != *bad && o.repo.is_ancestor(&t.commit, bad)? {
            older.push(t);
        }
    }
    let picked = history::release_tags(older);
    if picked.is_empty() {
        return Err(BisectError::NoGoodEnd(format!(
            "no --good was given and no release tag matching `{glob}` (not -rc) is older than the bad commit {}: \
             give --good (or --good-tags with the tags this repository has)",
            short(bad)
        )));
    }
    let mut tried = Vec::new();
    for t in picked {
        (o.progress)(&format!(
            "good end: trying release tag {} ({})",
            t.name,
            short(&t.commit)
        ));
        let seen = test_end(o, &t.commit, target)?;
        let line = format!("{} ({}): {}", t.name, short(&t.commit), seen.describe());
        (o.progress)(&format!("  {line}"));
        tried.push(line);
        if let Seen::Clean(_) = seen {
            notes.push(format!(
                "good end found over release tags, newest first: tried {}; stopped at {}, the first that does not \
                 reproduce",
                tried.join("; "),
                t.name
            ));
            return Ok(t.commit);
        }
    }
    Err(BisectError::NoGoodEnd(format!(
        "no --good was given and every release tag tried reproduces the crash or cannot be tested: {}; give --good",
        tried.join("; ")
    )))
}

/// For every good end that is not an ancestor of `bad`: their merge bases
/// are tested first. One that reproduces stops the bisection (the good
/// end's branch fixed the bug rather than missing the regression).
pub(super) fn check_merge_bases(
    o: &mut GitOracle,
    bad: &CommitId,
    goods: &[CommitId],
    target: &Target,
    notes: &mut Vec<String>,
) -> Result<(), BisectError> {
    for good in goods {
        if o.repo.is_ancestor(good, bad)? {
            continue;
        }
        let bases = o.repo.merge_bases(good, bad)?;
        if bases.is_empty() {
            return Err(BisectError::NoGoodEnd(format!(
                "the good commit {} and the bad commit {} have no common history: give a --good from the bad \
                 commit's history",
                short(good),
                short(bad)
            )));
        }
        for base in bases {
            (o.progress)(&format!(
                "the good commit {} is not an ancestor of the bad commit: testing their merge base {} first",
                short(good),
                short(&base)
            ));
            match test_end(o, &base, target)? {
                Seen::Crashes(counts) => {
                    return Err(BisectError::MergeBaseBad {
                        good: good.clone(),
                        base,
                        matched: counts.matched,
                        runs: counts.total(),
                    })
                }
                seen => notes.push(format!(
                    "the good commit {} is not an ancestor of the bad commit; their merge base {} {}",
                    short(good),
                    short(&base),
                    seen.describe()
                )),
            }
        }
    }
    Ok(())
}
