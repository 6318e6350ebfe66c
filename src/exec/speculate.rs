//! Speculative builds (`--build-jobs M`, issue 24): while the search tests
//! a kernel, `M - 1` background build slots build the commits it said it
//! will most likely want next (its `prefetch` wish list, most wanted
//! first), so a later build of one of them is a cache hit.
//!
//! Rules:
//! - each slot builds in its own build tree (`<worktree>-b<k>`, with its
//!   own state directory and worktree lock): never two builds in one tree;
//! - a build runs under its build key's claim like any build, so a
//!   foreground build of a commit being built speculatively waits for it
//!   and then reuses its record (single flight, across processes too);
//! - a new wish list replaces the old: a queued build the search no longer
//!   wants is dropped; a started one finishes (it lands in the cache, where
//!   a later bisection may want it, and stopping it would waste its work);
//! - `--max-builds` counts speculative builds: none starts once the
//!   speculative and foreground builds together reach it;
//! - the builds land in the cache like any build (records first written
//!   when complete), so a kill -9 loses only builds in flight;
//! - when the bisection ends, running speculative builds are not waited
//!   for (the answer is known; see [`Speculator::finish`]).
//!
//! Invariant: never decides what to build (the search does) and never
//! tests; its threads only build, through the evaluator's claimed path.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{BuildSource, CommitEvaluator, EvalError};
use crate::git::Repo;
use crate::key::CommitId;
use crate::store::Cache;

#[derive(Default)]
struct Queue {
    /// Most wanted first; none of them building or done.
    wanted: VecDeque<CommitId>,
    /// Being built, and since when.
    building: HashMap<CommitId, Instant>,
    /// Built (or found built) speculatively in this process.
    done: HashSet<CommitId>,
    /// The foreground asked for these: speculation on them is moot.
    claimed: HashSet<CommitId>,
    /// Speculative builds started (real builds, not cache hits).
    started: u32,
    /// Of those, commits the foreground built later (reused).
    used: u32,
    foreground_builds: u32,
    budget: Option<u32>,
    quit: bool,
    /// Progress lines for the driver to show.
    lines: Vec<String>,
}

impl Queue {
    fn over_budget(&self) -> bool {
        self.budget.is_some_and(|b| self.started + self.foreground_builds >= b)
    }
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next commit to build, waiting for one; `None`: quit.
    fn next(&self) -> Option<CommitId> {
        let mut q = self.lock();
        loop {
            if q.quit {
                return None;
            }
            if !q.over_budget() {
                if let Some(c) = q.wanted.pop_front() {
                    q.building.insert(c.clone(), Instant::now());
                    return Some(c);
                }
            }
            q = self.changed.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// What speculation did over a bisection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpeculationStats {
    /// Builds run in the background.
    pub built: u32,
    /// Of those, commits the search then asked for (its build reused).
    pub used: u32,
}

impl SpeculationStats {
    /// One sentence for the bisection's notes; `None` when nothing ran.
    pub fn note(&self) -> Option<String> {
        (self.built > 0).then(|| {
            format!(
                "speculative builds (--build-jobs): {} built in the background, {} of them used by the search, {} not \
                 (kept in the cache)",
                self.built,
                self.used,
                self.built - self.used
            )
        })
    }
}

/// A commit's speculative build ([`Speculator::ahead`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ahead {
    No,
    /// Under way for this many seconds.
    Building(f64),
    Done,
}

/// The background build slots of one bisection.
pub struct Speculator {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Speculator {
    /// `build_jobs - 1` build slots, each with its own build tree beside
    /// the evaluator's; `None` when `--build-jobs` is 1 or the evaluator
    /// builds in place (`kcache exec`: the user's tree is the only one).
    pub fn start(
        evaluator: &CommitEvaluator,
        repo: &Repo,
        cache: &Cache,
        max_builds: Option<u32>,
    ) -> Result<Option<Speculator>, EvalError> {
        let slots = evaluator.recipe.build_jobs.saturating_sub(1);
        if slots == 0 || evaluator.in_place {
            return Ok(None);
        }
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                budget: max_builds,
                ..Queue::default()
            }),
            changed: Condvar::new(),
        });
        let mut threads = Vec::new();
        for k in 1..=slots {
            let builder = evaluator.build_slot(k)?;
            let (shared, repo, cache) = (shared.clone(), repo.clone(), cache.clone());
            threads.push(std::thread::spawn(move || {
                build_loop(k, builder, &repo, &cache, &shared)
            }));
        }
        Ok(Some(Speculator { shared, threads }))
    }

    /// The search's new wish list, most wanted first: replaces the queue
    /// (a queued commit no longer wanted is dropped; started builds go on).
    pub fn prefetch(&self, wanted: &[CommitId]) {
        let mut q = self.shared.lock();
        let fresh: Vec<CommitId> = wanted
            .iter()
            .filter(|c| !q.building.contains_key(*c) && !q.done.contains(*c) && !q.claimed.contains(*c))
            .cloned()
            .collect();
        q.wanted = fresh.into_iter().collect();
        self.shared.changed.notify_all();
    }

    /// The foreground is about to build `commit`: it leaves the queue.
    /// True when a speculative build of it is running or done (the
    /// foreground's build then waits for it and reuses its record).
    pub fn foreground(&self, commit: &CommitId) -> bool {
        let mut q = self.shared.lock();
        q.wanted.retain(|c| c != commit);
        let speculated = q.building.contains_key(commit) || q.done.contains(commit);
        if q.claimed.insert(commit.clone()) && speculated {
            q.used += 1;
        }
        speculated
    }

    /// How far a speculative build of `commit` is: done (built, or found
    /// failing), under way for some seconds, or not started. The search's
    /// cost of building it is what is left.
    pub fn ahead(&self, commit: &CommitId) -> Ahead {
        let q = self.shared.lock();
        if q.done.contains(commit) {
            Ahead::Done
        } else if let Some(since) = q.building.get(commit) {
            Ahead::Building(since.elapsed().as_secs_f64())
        } else {
            Ahead::No
        }
    }

    /// Build slots free to start a build now (not building a guess).
    pub fn idle_slots(&self) -> u32 {
        let busy = self.shared.lock().building.len();
        (self.threads.len().saturating_sub(busy)) as u32
    }

    /// The foreground built a commit itself (for `--max-builds`).
    pub fn count_foreground_build(&self) {
        self.shared.lock().foreground_builds += 1;
    }

    /// Progress lines the build slots wrote since the last call.
    pub fn take_lines(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().lines)
    }

    pub fn stats(&self) -> SpeculationStats {
        let q = self.shared.lock();
        SpeculationStats {
            built: q.started,
            used: q.used,
        }
    }

    /// Ends speculation when the bisection ends: queued builds are
    /// dropped, and builds still running are not waited for (they finish
    /// and land in the cache if this process lives on; a process that
    /// exits takes their commands with it, and nothing half-built is
    /// recorded).
    pub fn finish(self) -> SpeculationStats {
        let stats = self.stats();
        drop(self);
        stats
    }
}

impl Drop for Speculator {
    fn drop(&mut self) {
        {
            let mut q = self.shared.lock();
            q.quit = true;
            q.wanted.clear();
        }
        self.shared.changed.notify_all();
        // Detached, not joined: see `finish`.
        self.threads.clear();
    }
}

/// One build slot: builds what the queue hands it until told to quit.
fn build_loop(k: u32, mut builder: CommitEvaluator, repo: &Repo, cache: &Cache, shared: &Shared) {
    while let Some(commit) = shared.next() {
        let say = |line: String| shared.lock().lines.push(line);
        let cached = builder
            .cached_build_local(repo, cache, &commit)
            .ok()
            .flatten()
            .is_some();
        if !cached {
            shared.lock().started += 1;
            say(format!("  build slot {k}: building {} speculatively", commit.short()));
            let mut quiet = |_: &str| {};
            match builder.build_or_predict(repo, cache, &commit, false, &mut quiet) {
                Ok(e) => say(format!(
                    "  build slot {k}: {} {} in {:.1}s",
                    commit.short(),
                    match e.build {
                        BuildSource::Built => "built",
                        BuildSource::Failed => "failed to build (recorded)",
                        BuildSource::TransientFailure => "failed to build (not the commit's fault: not recorded)",
                        _ => "was built meanwhile",
                    },
                    e.effort.build_seconds
                )),
                // Not fatal: the foreground builds it again when it wants it
                // and meets the error there, with the user watching.
                Err(e) => say(format!("  build slot {k}: {} not built: {e}", commit.short())),
            }
        }
        let mut q = shared.lock();
        q.building.remove(&commit);
        q.done.insert(commit);
    }
}

impl CommitEvaluator {
    /// An evaluator for build slot `k`: the same recipe, its own build
    /// tree and state directory beside this one's.
    fn build_slot(&self, k: u32) -> Result<CommitEvaluator, EvalError> {
        let beside = |dir: &PathBuf, suffix: &str| {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            dir.with_file_name(format!("{name}-b{k}{suffix}"))
        };
        let mut slot = CommitEvaluator::new(
            self.recipe.clone(),
            beside(&self.worktree, ""),
            beside(&self.worktree, ".state"),
            false,
        )?;
        slot.set_prediction(false);
        slot.engine = self.engine.clone();
        Ok(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A speculator without build slots: the queue's rules alone.
    fn queue_only(budget: Option<u32>) -> Speculator {
        Speculator {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    budget,
                    ..Queue::default()
                }),
                changed: Condvar::new(),
            }),
            threads: Vec::new(),
        }
    }

    fn ids(names: &[&str]) -> Vec<CommitId> {
        names.iter().map(|n| CommitId::from(*n)).collect()
    }

    fn queued(s: &Speculator) -> Vec<CommitId> {
        s.shared.lock().wanted.iter().cloned().collect()
    }

    #[test]
    fn a_new_wish_list_drops_queued_builds_but_not_started_ones() {
        let s = queue_only(None);
        s.prefetch(&ids(&["a", "b"]));
        assert_eq!(queued(&s), ids(&["a", "b"]));
        s.prefetch(&ids(&["b", "c"]));
        assert_eq!(queued(&s), ids(&["b", "c"]), "a is no longer wanted: dropped");
        assert_eq!(s.shared.next(), Some(CommitId::from("b")), "a slot starts b");
        s.prefetch(&ids(&["b", "d"]));
        assert_eq!(
            queued(&s),
            ids(&["d"]),
            "b is building: it finishes, never queued twice"
        );
        assert!(s.foreground(&CommitId::from("b")), "the foreground waits for b's build");
        assert!(
            !s.foreground(&CommitId::from("d")),
            "d was only queued: the foreground builds it"
        );
        assert!(queued(&s).is_empty(), "and d leaves the queue");
        s.prefetch(&ids(&["d"]));
        assert!(queued(&s).is_empty(), "the foreground has d: not speculated again");
        assert_eq!(s.stats().used, 1);
    }

    #[test]
    fn max_builds_counts_speculative_and_foreground_builds() {
        let s = queue_only(Some(2));
        s.count_foreground_build();
        assert!(!s.shared.lock().over_budget());
        s.shared.lock().started += 1;
        assert!(
            s.shared.lock().over_budget(),
            "1 foreground + 1 speculative = --max-builds 2"
        );
        let stats = SpeculationStats { built: 3, used: 1 };
        assert!(stats
            .note()
            .unwrap()
            .contains("3 built in the background, 1 of them used"));
        assert_eq!(SpeculationStats::default().note(), None);
    }
}
