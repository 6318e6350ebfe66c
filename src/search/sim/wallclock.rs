//! A simulated history with a clock (issue 24): run slots, build slots,
//! fixed build and run durations, and speculative builds, to measure wall
//! time rather than work.
//!
//! Model. `build(i)` of a commit already built costs nothing; of one being
//! built (speculatively) it waits for what is left; otherwise it takes an
//! idle build slot, and when none is idle it stops the speculative build
//! the search wants least (off the wish list, else last on it): a build the
//! search asks for never queues behind a guess. Speculative builds start on
//! idle build slots from the wish list ([`Oracle::prefetch`], most wanted
//! first) whenever a slot frees up or the list changes, and progress while
//! runs run; one whose commit drops off the wish list is *finished* (it
//! lands in the cache; a later bisection may want it) unless a commit on
//! the list, or a build the search asks for, needs its slot: then it is
//! stopped. A batch (or a set of batches) runs in
//! waves of up to `R` runs at once, each wave one run duration; a batch
//! starts no new run after a match, but the runs of the wave it matched in
//! finish and count.
//!
//! Four schedules: kcache sequential (one run at a time, one build at a
//! time, no prefetch: today), kcache parallel (R run slots, B build slots,
//! sets and prefetch), syzbot's shape (one build at a time, each step's
//! runs all at once on R slots, no overlap of build and test; the search
//! is today's, it sees one slot), and kcache on a farm of M machines
//! (issue 31: an engine's nodes, each building one kernel or running one
//! VM at a time; the search sees M run slots and M build slots, the runs
//! it waits for take machines first, stopping speculative builds when
//! they must, and speculative builds take the machines left).
//!
//! Machine time: every second a machine spends on a build (finished, or
//! stopped part way) or on a run counts; idle machines do not (an engine
//! gives them to other work).
//!
//! Invariant: deterministic for a seed; with the sequential schedule it
//! draws runs exactly as [`SimOracle`](super::SimOracle) does, so the
//! search makes the same steps.

use serde::Serialize;

use super::{History, Rng, SimRuns};
use crate::crash::{RunClass, Target};
use crate::search::bayes::{self, Kernel, Oracle};
use crate::signature::KernelSignature;

/// How the oracle may work at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Schedule {
    /// kcache today: one run, one build at a time, nothing ahead.
    Sequential,
    /// kcache with `run_slots` runs and `build_slots` builds at once, sets
    /// of tests and speculative builds.
    Parallel { run_slots: u32, build_slots: u32 },
    /// syzbot: a step's runs at once on `run_slots` VMs; one build at a
    /// time, none while testing.
    Syzbot { run_slots: u32 },
    /// kcache on `machines` machines shared by builds and runs, sets of
    /// tests and speculative builds.
    Machines { machines: u32 },
}

impl Schedule {
    fn run_slots(self) -> u32 {
        match self {
            Schedule::Sequential => 1,
            Schedule::Parallel { run_slots, .. } | Schedule::Syzbot { run_slots } => run_slots.max(1),
            Schedule::Machines { machines } => machines.max(1),
        }
    }

    fn build_slots(self) -> u32 {
        match self {
            Schedule::Parallel { build_slots, .. } => build_slots.max(1),
            Schedule::Machines { machines } => machines.max(1),
            _ => 1,
        }
    }

    /// Whether the search plans sets and builds ahead.
    fn plans(self) -> bool {
        matches!(self, Schedule::Parallel { .. } | Schedule::Machines { .. })
    }
}

#[derive(Debug, Clone, Copy)]
struct Job {
    node: usize,
    start: f64,
    finish: f64,
}

/// The simulation as an [`Oracle`] with a clock.
pub struct Clocked<'h> {
    history: &'h History,
    schedule: Schedule,
    rng: Rng,
    /// Seconds since the bisection started.
    pub clock: f64,
    build_slots: Vec<Option<Job>>,
    wish: Vec<usize>,
    done: Vec<bool>,
    asked: Vec<bool>,
    speculative: Vec<bool>,
    /// Builds the search asked for that were built, or being built, before
    /// the step that asked for them.
    pub hits: u32,
    /// Speculative builds stopped to free a slot.
    pub stopped: u32,
    /// Raw titles (None: ok) per kernel id.
    runs: SimRuns,
    /// Machines the current wave of runs holds ([`Schedule::Machines`]).
    running: usize,
    /// Machine-seconds of builds finished or stopped and of runs.
    busy: f64,
}

impl<'h> Clocked<'h> {
    pub fn new(history: &'h History, schedule: Schedule, seed: u64) -> Clocked<'h> {
        let n = history.kernel.len();
        Clocked {
            history,
            schedule,
            rng: Rng::new(seed),
            clock: 0.0,
            build_slots: vec![None; schedule.build_slots() as usize],
            wish: Vec::new(),
            done: vec![false; n],
            asked: vec![false; n],
            speculative: vec![false; n],
            hits: 0,
            stopped: 0,
            runs: SimRuns::default(),
            running: 0,
            busy: 0.0,
        }
    }

    /// Machine-seconds spent so far: builds finished or stopped, runs, and
    /// the part done of builds still going (stopped when the search ends).
    pub fn machine_seconds(&self) -> f64 {
        let going: f64 = self
            .build_slots
            .iter()
            .flatten()
            .map(|j| self.clock.min(j.finish) - j.start)
            .sum();
        self.busy + going.max(0.0)
    }

    /// A machine for another build: always with separate build slots; on
    /// shared machines, only one neither building nor running.
    fn machine_free(&self) -> bool {
        match self.schedule {
            Schedule::Machines { machines } => {
                self.build_slots.iter().flatten().count() + self.running < machines.max(1) as usize
            }
            _ => true,
        }
    }

    /// Stops the build in slot `s` at `at` (its machine time so far spent).
    fn stop(&mut self, s: usize, at: f64) {
        if let Some(job) = self.build_slots[s].take() {
            self.busy += (at - job.start).max(0.0);
            self.stopped += 1;
        }
    }

    /// Frees machines for a wave of `runs` runs on shared machines: stops
    /// the speculative builds the search wants least until it fits (the
    /// search waits for runs; a guess never delays them).
    fn make_room(&mut self, runs: usize) {
        let Schedule::Machines { machines } = self.schedule else {
            return;
        };
        while self.build_slots.iter().flatten().count() + runs > machines.max(1) as usize {
            let Some(s) = self.least_wanted() else { return };
            self.stop(s, self.clock);
        }
    }

    /// The busy build slot whose commit the wish list ranks last (off the
    /// list first; the last such slot).
    fn least_wanted(&self) -> Option<usize> {
        let rank = |j: &Job| self.wish.iter().position(|&w| w == j.node).unwrap_or(usize::MAX);
        (0..self.build_slots.len())
            .filter_map(|s| self.build_slots[s].map(|j| (s, rank(&j))))
            .max_by_key(|&(_, r)| r)
            .map(|(s, _)| s)
    }

    /// Builds started ahead of the search.
    pub fn speculative_builds(&self) -> u32 {
        self.speculative.iter().filter(|s| **s).count() as u32
    }

    /// Speculative builds of commits the search never asked for.
    pub fn wasted_builds(&self) -> u32 {
        self.speculative
            .iter()
            .zip(&self.asked)
            .filter(|(s, a)| **s && !**a)
            .count() as u32
    }

    fn slot_of(&self, i: usize) -> Option<usize> {
        self.build_slots.iter().position(|j| j.is_some_and(|j| j.node == i))
    }

    /// Starts speculative builds at time `at`, most wanted first, on idle
    /// slots or on slots building a commit no longer wished for (stopped).
    fn fill(&mut self, at: f64) {
        if !self.schedule.plans() {
            return;
        }
        for k in 0..self.wish.len() {
            let w = self.wish[k];
            if self.done[w] || self.slot_of(w).is_some() {
                continue;
            }
            let idle = self
                .build_slots
                .iter()
                .position(Option::is_none)
                .filter(|_| self.machine_free());
            let unwished = || {
                self.build_slots
                    .iter()
                    .position(|j| j.is_some_and(|j| !self.wish.contains(&j.node)))
            };
            let Some(s) = idle.or_else(unwished) else { return };
            self.stop(s, at);
            self.speculative[w] = true;
            self.build_slots[s] = Some(Job {
                node: w,
                start: at,
                finish: at + self.history.build_seconds,
            });
        }
    }

    /// Moves the clock to `to`, finishing builds (and starting the next
    /// wished ones) on the way.
    fn advance(&mut self, to: f64) {
        loop {
            let next = self
                .build_slots
                .iter()
                .enumerate()
                .filter_map(|(s, j)| j.map(|j| (s, j)))
                .filter(|(_, j)| j.finish <= to)
                .min_by(|a, b| a.1.finish.total_cmp(&b.1.finish));
            let Some((s, job)) = next else { break };
            self.build_slots[s] = None;
            self.busy += job.finish - job.start;
            self.done[job.node] = true;
            self.fill(job.finish);
        }
        self.clock = self.clock.max(to);
    }

    /// A build slot for a build the search waits for: an idle one, else the
    /// one whose speculative build is wanted least (stopped).
    fn free_slot(&mut self) -> usize {
        if let Some(s) = self.build_slots.iter().position(Option::is_none) {
            return s;
        }
        let s = self.least_wanted().expect("every build slot is busy");
        self.stop(s, self.clock);
        s
    }
}

impl Oracle for Clocked<'_> {
    type Error = std::convert::Infallible;

    fn known(&mut self, _i: usize) -> Result<Kernel, Self::Error> {
        Ok(Kernel::Unknown)
    }

    fn build(&mut self, i: usize) -> Result<Kernel, Self::Error> {
        self.asked[i] = true;
        if self.done[i] {
            self.hits += self.speculative[i] as u32;
            return Ok(self.history.kernel_of(i));
        }
        if let Some(job) = self.slot_of(i).and_then(|s| self.build_slots[s]) {
            // Started by this step's own wish (the set's builds) is no hit.
            self.hits += (job.start < self.clock) as u32;
            self.advance(job.finish);
            return Ok(self.history.kernel_of(i));
        }
        let s = self.free_slot();
        let finish = self.clock + self.history.build_seconds;
        self.build_slots[s] = Some(Job {
            node: i,
            start: self.clock,
            finish,
        });
        self.advance(finish);
        Ok(self.history.kernel_of(i))
    }

    fn build_cost(&self, i: usize) -> f64 {
        if self.done[i] {
            return 0.0;
        }
        match self.slot_of(i).and_then(|s| self.build_slots[s]) {
            Some(j) => (j.finish - self.clock).max(0.0),
            None => self.history.build_seconds,
        }
    }

    fn run_cost(&self) -> f64 {
        self.history.run_seconds
    }

    fn pooled(&mut self, signature: &KernelSignature, target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        Ok(self.runs.pooled(signature, target))
    }

    fn run(&mut self, i: usize, sig: &KernelSignature, n: u32, target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        let mut out = self.run_set(&[(i, sig.clone(), n)], target)?;
        Ok(out.pop().unwrap_or_default())
    }

    fn slots(&self) -> u32 {
        match self.schedule {
            Schedule::Parallel { run_slots, .. } => run_slots.max(1),
            Schedule::Machines { machines } => machines.max(1),
            // syzbot's search is today's: it does not plan for the slots.
            _ => 1,
        }
    }

    fn build_slots(&self) -> u32 {
        self.schedule.build_slots()
    }

    fn run_set(
        &mut self,
        batches: &[(usize, KernelSignature, u32)],
        target: &Target,
    ) -> Result<Vec<Vec<RunClass>>, Self::Error> {
        let slots = self.schedule.run_slots() as usize;
        let mut out: Vec<Vec<RunClass>> = vec![Vec::new(); batches.len()];
        let mut left: Vec<u32> = batches.iter().map(|b| b.2).collect();
        let mut matched = vec![false; batches.len()];
        loop {
            // One wave: the slots shared round-robin among open batches.
            let mut wave = Vec::new();
            let mut progress = true;
            while wave.len() < slots && progress {
                progress = false;
                for b in 0..batches.len() {
                    if wave.len() < slots && !matched[b] && left[b] > 0 {
                        wave.push(b);
                        left[b] -= 1;
                        progress = true;
                    }
                }
            }
            if wave.is_empty() {
                break;
            }
            self.make_room(wave.len());
            self.running = wave.len();
            self.busy += wave.len() as f64 * self.history.run_seconds;
            for b in wave {
                let node = batches[b].0;
                let title = self.history.run(node, &mut self.rng);
                let class = self.runs.add(self.history.kernel[node], title, target);
                matched[b] |= class == RunClass::Match;
                out[b].push(class);
            }
            self.advance(self.clock + self.history.run_seconds);
            self.running = 0;
            // The wave's machines are free for the builds wished for.
            self.fill(self.clock);
        }
        Ok(out)
    }

    fn builds_ahead(&self) -> bool {
        self.schedule.plans()
    }

    fn prefetch(&mut self, wanted: &[usize]) {
        if !self.builds_ahead() {
            return;
        }
        self.wish = wanted.to_vec();
        self.fill(self.clock);
    }
}

/// What one schedule did on one history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WallTrial {
    pub culprit: Option<usize>,
    pub right: bool,
    /// Wall seconds to the answer.
    pub seconds: f64,
    pub runs: u32,
    /// Builds the search asked for (made or found ahead).
    pub asked: u32,
    pub speculative: u32,
    pub wasted: u32,
    pub hits: u32,
    /// Machine-seconds: builds (finished or stopped) and runs.
    pub machine_seconds: f64,
}

/// The noisy search on a history under a schedule (the target title known).
pub fn trial(h: &History, model: &bayes::Model, schedule: Schedule, seed: u64) -> WallTrial {
    let mut oracle = Clocked::new(h, schedule, seed);
    let (culprit, out) = super::search_with(h, model, &mut oracle);
    WallTrial {
        culprit,
        right: culprit == Some(h.culprit),
        seconds: oracle.clock,
        runs: out.runs,
        asked: oracle.asked.iter().filter(|a| **a).count() as u32,
        speculative: oracle.speculative_builds(),
        wasted: oracle.wasted_builds(),
        hits: oracle.hits,
        machine_seconds: oracle.machine_seconds(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{bayes as sim_bayes, Setting};
    use super::*;

    fn setting(commits: usize, p: f64) -> Setting {
        Setting::wallclock(commits, p, 600.0, 300.0)
    }

    #[test]
    fn one_slot_is_todays_search() {
        for seed in 0..10 {
            let h = History::generate(&setting(300, 0.5), &mut Rng::new(seed));
            let model = bayes::Model::default();
            let today = sim_bayes(&h, &model, seed);
            let seq = trial(&h, &model, Schedule::Sequential, seed);
            assert_eq!((today.culprit, today.runs), (seq.culprit, seq.runs), "seed {seed}");
            assert_eq!(seq.speculative, 0);
            // syzbot's shape: the same search, the runs of a batch at once.
            let syz = trial(&h, &model, Schedule::Syzbot { run_slots: 10 }, seed);
            assert_eq!(today.culprit, syz.culprit, "seed {seed}");
            assert!(syz.seconds < seq.seconds, "seed {seed}");
        }
    }

    #[test]
    fn a_wait_for_a_speculative_build_is_only_what_is_left() {
        let h = History::generate(&setting(50, 1.0), &mut Rng::new(3));
        let mut o = Clocked::new(
            &h,
            Schedule::Parallel {
                run_slots: 10,
                build_slots: 2,
            },
            3,
        );
        o.prefetch(&[10, 20, 30]);
        o.advance(250.0);
        assert_eq!(o.build_cost(10), 350.0);
        o.build(20).expect("infallible");
        assert_eq!(o.clock, 600.0);
        // 10 and 20 are done; 30 started when they finished.
        assert_eq!((o.build_cost(10), o.build_cost(30)), (0.0, 600.0));
        // A build nobody guessed stops the least wanted guess.
        o.prefetch(&[30]);
        o.build(40).expect("infallible");
        assert_eq!((o.clock, o.stopped, o.hits), (1200.0, 0, 1));
        assert_eq!(o.wasted_builds(), 2, "10 and 30 were never asked for");
        o.prefetch(&[1, 2]);
        o.build(3).expect("infallible");
        assert_eq!((o.clock, o.stopped), (1800.0, 1));
        assert_eq!((o.build_cost(1), o.build_cost(2)), (0.0, 600.0), "2 was stopped");
    }

    #[test]
    fn shared_machines_give_runs_first_and_count_machine_time() {
        let h = History::generate(&setting(50, 1.0), &mut Rng::new(3));
        let mut o = Clocked::new(&h, Schedule::Machines { machines: 4 }, 3);
        o.prefetch(&[10, 20, 30]);
        o.advance(100.0);
        // Two runs need two of the four machines: the least wanted guess
        // (30) stops after 100 s; it starts again when the runs are done.
        let target = Target::new([super::super::TARGET_TITLE]);
        let out = o
            .run_set(&[(5, KernelSignature::of_label("k5"), 2)], &target)
            .expect("infallible");
        assert_eq!(out[0].len(), 2);
        assert_eq!((o.clock, o.stopped), (400.0, 1));
        assert_eq!((o.build_cost(10), o.build_cost(30)), (200.0, 600.0));
        // 100 s of the stopped build, two 300 s runs, 400 s each of 10
        // and 20, nothing yet of 30.
        assert_eq!(o.machine_seconds(), 100.0 + 600.0 + 800.0);
        // One machine: a guess only ever runs when nothing else does.
        let mut one = Clocked::new(&h, Schedule::Machines { machines: 1 }, 3);
        one.prefetch(&[10, 20]);
        assert_eq!((one.build_cost(10), one.build_cost(20)), (600.0, 600.0));
        assert_eq!(one.build_slots.iter().flatten().count(), 1);
    }
}
