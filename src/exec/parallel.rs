//! Test runs at once (issue 24): the run slots one evaluator shares among
//! every batch it runs (`--jobs`), the default number of slots, and the
//! batch runner that starts runs while slots are free and the batch still
//! wants them.
//!
//! Stop rule: after a run for which the batch's `stop` is true, no new run
//! of that batch starts; runs already in flight finish and are returned
//! (and recorded: they are evidence about the crash rate). An error in one
//! run (a broken test setup) starts no new run either; the runs that did
//! complete are still returned to be recorded.
//!
//! Invariant: runs nothing itself and knows no test: it schedules a
//! caller's `run` closure, one call per run number, on at most the free
//! slots, and hands each completed run to the caller's thread in the order
//! they end (the caller records them: never a worker).

use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

/// A counting semaphore: the test runs (processes or VMs) one evaluator
/// may have going at once, across every batch it runs.
#[derive(Debug)]
pub struct Slots {
    free: Mutex<u32>,
    freed: Condvar,
    total: u32,
}

impl Slots {
    pub fn new(total: u32) -> Arc<Slots> {
        let total = total.max(1);
        Arc::new(Slots {
            free: Mutex::new(total),
            freed: Condvar::new(),
            total,
        })
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// Waits for a free slot; it is given back when the guard drops.
    pub fn take(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        SlotGuard { slots: self }
    }
}

pub struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.slots.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.slots.freed.notify_one();
    }
}

/// `--jobs`' default: the cores; with `--repro` (a slot is a VM of
/// `vm_memory_mb`) also no more VMs than the memory holds.
pub fn default_jobs(vm_memory_mb: Option<u32>) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    match (vm_memory_mb, physical_memory_mb()) {
        (Some(vm), Some(mem)) if vm > 0 => cores.min((mem / u64::from(vm)).max(1) as u32),
        _ => cores,
    }
}

fn physical_memory_mb() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages > 0 && size > 0).then(|| (pages as u64 * size as u64) >> 20)
}

/// What one run gave: a completed run (`Some`), a run that told nothing
/// and is not recorded (`None`, a timeout), or an error.
pub type RunResult<R, E> = Result<Option<R>, E>;

/// What the caller's thread is told while a batch runs.
pub enum Event<R, E> {
    /// Run `number` ended.
    Ended(u32, RunResult<R, E>),
}

/// How many runs a batch wants and may try.
#[derive(Debug, Clone, Copy)]
pub struct Batch {
    /// Run numbers start here.
    pub first_run: u32,
    /// Completed runs wanted.
    pub want: u32,
    /// Runs that may be started in all (timed-out runs are not completed).
    pub attempts: u32,
}

#[derive(Default)]
struct State {
    started: u32,
    in_flight: u32,
    completed: u32,
    /// A run matched (`stop`) or failed: no new run starts.
    closed: bool,
    /// Runs ended whose result the caller's thread has not judged yet: no
    /// run starts meanwhile (it might be one after a match).
    unjudged: u32,
}

impl State {
    fn may_start(&self, b: &Batch) -> bool {
        !self.closed && self.started < b.attempts && self.completed + self.in_flight < b.want
    }
}

/// Runs `run(number)` for a batch on up to `slots` at once (each run
/// holding a slot while it runs); `on_event` sees every run as it ends, on
/// the calling thread (where records are written and progress shown).
/// `stop` closes the batch after a completed run.
pub fn run_batch<R, E, F>(
    slots: &Slots,
    batch: Batch,
    run: F,
    stop: &dyn Fn(&R) -> bool,
    on_event: &mut dyn FnMut(Event<R, E>),
) where
    R: Send,
    E: Send,
    F: Fn(u32) -> RunResult<R, E> + Sync,
{
    let state = Mutex::new(State::default());
    let judged = Condvar::new();
    let workers = slots.total().min(batch.want.max(1));
    let (tx, rx) = mpsc::channel::<(u32, RunResult<R, E>)>();
    let (run, state_ref, judged_ref) = (&run, &state, &judged);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            scope.spawn(move || loop {
                let _slot = slots.take();
                let number = {
                    let mut s = state_ref.lock().unwrap_or_else(|e| e.into_inner());
                    while s.unjudged > 0 {
                        s = judged_ref.wait(s).unwrap_or_else(|e| e.into_inner());
                    }
                    if !s.may_start(&batch) {
                        return;
                    }
                    s.started += 1;
                    s.in_flight += 1;
                    batch.first_run + s.started - 1
                };
                let result = run(number);
                state_ref.lock().unwrap_or_else(|e| e.into_inner()).unjudged += 1;
                if tx.send((number, result)).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        for (number, result) in rx {
            {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.in_flight -= 1;
                s.unjudged -= 1;
                match &result {
                    Ok(Some(r)) => {
                        s.completed += 1;
                        s.closed |= stop(r);
                    }
                    Ok(None) => {}
                    Err(_) => s.closed = true,
                }
            }
            judged.notify_all();
            on_event(Event::Ended(number, result));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Duration, Instant};

    fn collect(slots: u32, batch: Batch, f: impl Fn(u32) -> RunResult<u32, String> + Sync) -> Vec<u32> {
        let slots = Slots::new(slots);
        let mut got = Vec::new();
        run_batch(&slots, batch, f, &|r: &u32| *r == 99, &mut |Event::Ended(_, r)| {
            if let Ok(Some(r)) = r {
                got.push(r)
            }
        });
        got
    }

    #[test]
    fn runs_overlap_up_to_the_slots() {
        let running = AtomicU32::new(0);
        let most = AtomicU32::new(0);
        let start = Instant::now();
        let got = collect(
            3,
            Batch {
                first_run: 1,
                want: 6,
                attempts: 6,
            },
            |n| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(Some(n))
            },
        );
        assert_eq!(got.len(), 6);
        assert_eq!(most.load(Ordering::SeqCst), 3);
        assert!(start.elapsed() < Duration::from_millis(500), "{:?}", start.elapsed());
    }

    #[test]
    fn a_match_starts_no_new_run_but_in_flight_ones_finish() {
        // Run 1 matches at once; runs 2 and 3 were started with it and end later.
        let got = collect(
            3,
            Batch {
                first_run: 1,
                want: 10,
                attempts: 20,
            },
            |n| {
                if n == 1 {
                    return Ok(Some(99));
                }
                std::thread::sleep(Duration::from_millis(50));
                Ok(Some(n))
            },
        );
        assert!(got.contains(&99));
        assert!(got.len() <= 3, "no run starts after the match: {got:?}");
    }

    #[test]
    fn timeouts_are_retried_within_the_attempts() {
        let got = collect(
            2,
            Batch {
                first_run: 1,
                want: 3,
                attempts: 5,
            },
            |n| Ok((n % 2 == 0).then_some(n)),
        );
        assert_eq!(got, vec![2, 4], "five attempts, the odd ones timed out");
    }

    #[test]
    fn an_error_starts_no_new_run() {
        let slots = Slots::new(1);
        let mut ended = Vec::new();
        run_batch(
            &slots,
            Batch {
                first_run: 1,
                want: 5,
                attempts: 5,
            },
            |n| if n == 2 { Err("broken") } else { Ok(Some(n)) },
            &|_: &u32| false,
            &mut |Event::Ended(n, r)| ended.push((n, r.is_ok())),
        );
        assert_eq!(ended, vec![(1, true), (2, false)]);
    }
}
