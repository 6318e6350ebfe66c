//! An oracle wrapper that times the search's thinking, for the cost
//! benchmarks (`tests/bench_dag.rs`, `tests/bench_parallel.rs`): per step,
//! the gap between the last build or run and the next call for work that
//! follows a choice (`standing` is called right before one), the
//! lookahead included.
//!
//! Invariant: forwards every call unchanged; only measures.

use std::time::{Duration, Instant};

use crate::crash::{RunClass, Target};
use crate::search::bayes::{Kernel, Oracle};
use crate::signature::KernelSignature;

pub struct Timed<O> {
    pub inner: O,
    last: Instant,
    chose: bool,
    /// The search's thinking time per step.
    pub steps: Vec<Duration>,
}

impl<O: Oracle> Timed<O> {
    pub fn new(inner: O) -> Timed<O> {
        Timed {
            inner,
            last: Instant::now(),
            chose: false,
            steps: Vec::new(),
        }
    }

    /// Work is asked for: the time since the last work was a step's
    /// thinking when a choice was made in between.
    fn act(&mut self) {
        if self.chose {
            self.steps.push(self.last.elapsed());
            self.chose = false;
        }
    }

    fn timed<T>(&mut self, work: impl FnOnce(&mut O) -> T) -> T {
        self.act();
        let out = work(&mut self.inner);
        self.last = Instant::now();
        out
    }
}

impl<O: Oracle> Oracle for Timed<O> {
    type Error = O::Error;

    fn known(&mut self, i: usize) -> Result<Kernel, Self::Error> {
        self.inner.known(i)
    }

    fn build(&mut self, i: usize) -> Result<Kernel, Self::Error> {
        self.timed(|o| o.build(i))
    }

    fn build_cost(&self, i: usize) -> f64 {
        self.inner.build_cost(i)
    }

    fn run_cost(&self) -> f64 {
        self.inner.run_cost()
    }

    fn pooled(&mut self, signature: &KernelSignature, target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        self.inner.pooled(signature, target)
    }

    fn run(&mut self, i: usize, sig: &KernelSignature, n: u32, target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        self.timed(|o| o.run(i, sig, n, target))
    }

    fn standing(&mut self, credible: usize, best: f64) {
        self.chose = true;
        self.inner.standing(credible, best);
    }

    fn slots(&self) -> u32 {
        self.inner.slots()
    }

    fn build_slots(&self) -> u32 {
        self.inner.build_slots()
    }

    fn run_set(
        &mut self,
        batches: &[(usize, KernelSignature, u32)],
        target: &Target,
    ) -> Result<Vec<Vec<RunClass>>, Self::Error> {
        self.timed(|o| o.run_set(batches, target))
    }

    fn builds_ahead(&self) -> bool {
        self.inner.builds_ahead()
    }

    fn prefetch(&mut self, wanted: &[usize]) {
        self.inner.prefetch(wanted)
    }
}
