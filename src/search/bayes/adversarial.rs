//! Termination as a property of the search: adversarial oracles (answers
//! that contradict each other, say nothing, put the good end on the bad
//! side or the bad end on the good side, builds that all fail, random
//! answers, oracles that run nothing or too much) on lines and DAGs, in both
//! directions; every search ends within [`boundary::bound`] and says why.

use super::*;
use crate::search::sim::{dag, Rng, Setting};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// Every run a coin flip between a match and an ok, whatever the kernel.
    Inconsistent,
    /// Every run says nothing (timeouts).
    NoInfo,
    /// Every kernel crashes, the good end's too.
    AllCrash,
    /// No kernel crashes, the bad end's neither.
    NoneCrash,
    /// Every build fails.
    Unbuildable,
    /// Random kernels (shared, unique, broken, unknown), random classes,
    /// random batch lengths (none, more than asked), random pooled runs.
    Random,
    /// Runs return nothing at all.
    Empty,
}

struct Adversary {
    kind: Kind,
    rng: Rng,
    built: Vec<bool>,
    builds: u64,
    runs: u64,
}

impl Adversary {
    fn new(kind: Kind, len: usize, seed: u64) -> Adversary {
        Adversary {
            kind,
            rng: Rng::new(seed),
            built: vec![false; len],
            builds: 0,
            runs: 0,
        }
    }

    fn class(&mut self) -> RunClass {
        [RunClass::Match, RunClass::Ok, RunClass::Other, RunClass::NoInfo][self.rng.below(4)]
    }
}

impl Oracle for Adversary {
    type Error = std::convert::Infallible;

    fn known(&mut self, i: usize) -> Result<Kernel, Self::Error> {
        Ok(match self.kind {
            Kind::Random if self.rng.uniform() < 0.2 => Kernel::labelled(&format!("k{}", self.rng.below(3))),
            Kind::Random if self.rng.uniform() < 0.05 => Kernel::Broken,
            _ if self.kind != Kind::Unbuildable && i % 17 == 5 => Kernel::labelled(&format!("known{i}")),
            _ => Kernel::Unknown,
        })
    }

    fn build(&mut self, i: usize) -> Result<Kernel, Self::Error> {
        self.builds += 1;
        self.built[i] = true;
        Ok(match self.kind {
            Kind::Unbuildable => Kernel::Broken,
            Kind::Random => match self.rng.below(4) {
                0 => Kernel::Broken,
                1 => Kernel::Unknown,
                2 => Kernel::labelled(&format!("k{}", self.rng.below(3))),
                _ => Kernel::labelled(&format!("n{i}")),
            },
            _ => Kernel::labelled(&format!("n{i}")),
        })
    }

    fn build_cost(&self, i: usize) -> f64 {
        match (self.kind, self.built[i]) {
            (_, true) => 0.0,
            (Kind::Random, _) => [600.0, 0.0, -5.0, f64::NAN][i % 4],
            _ => 600.0,
        }
    }

    fn run_cost(&self) -> f64 {
        60.0
    }

    fn pooled(&mut self, _sig: &KernelSignature, _target: &Target) -> Result<Vec<RunClass>, Self::Error> {
        Ok(match self.kind {
            Kind::Random => (0..self.rng.below(6)).map(|_| self.class()).collect(),
            _ => Vec::new(),
        })
    }

    fn run(
        &mut self,
        _i: usize,
        _sig: &KernelSignature,
        n: u32,
        _target: &Target,
    ) -> Result<Vec<RunClass>, Self::Error> {
        let out: Vec<RunClass> = match self.kind {
            Kind::Inconsistent => {
                let mut v = Vec::new();
                for _ in 0..n {
                    let c = if self.rng.uniform() < 0.5 {
                        RunClass::Match
                    } else {
                        RunClass::Ok
                    };
                    v.push(c);
                    if c == RunClass::Match {
                        break;
                    }
                }
                v
            }
            Kind::NoInfo => vec![RunClass::NoInfo; n as usize],
            Kind::AllCrash => vec![RunClass::Match],
            Kind::NoneCrash => vec![RunClass::Ok; n as usize],
            Kind::Unbuildable => vec![RunClass::Ok; n as usize],
            Kind::Random => {
                let len = self.rng.below(n as usize + 4);
                (0..len).map(|_| self.class()).collect()
            }
            Kind::Empty => Vec::new(),
        };
        self.runs += out.len() as u64;
        Ok(out)
    }
}

fn graphs() -> Vec<(&'static str, Graph)> {
    let s = Setting {
        commits: 40,
        noop: 0.2,
        p: 1.0,
        e: 0.0,
        broken: 0.0,
        runs: 10,
        build_seconds: 600.0,
        run_seconds: 60.0,
    };
    vec![
        ("line", Graph::line(31)),
        ("dag", dag::generate(&s, Direction::Cause, &mut Rng::new(11)).graph),
        ("tiny", Graph::line(2)),
    ]
}

/// Runs the search against an adversary; checks the bound; the outcome.
fn run(kind: Kind, graph: &Graph, direction: Direction, seed: u64) -> Outcome {
    let model = Model::default();
    let mut oracle = Adversary::new(kind, graph.len(), seed);
    let out = match search(&model, Target::new(["BUG"]), graph, direction, &mut oracle) {
        Ok(o) => o,
        Err(never) => match never {},
    };
    let (builds, runs) = boundary::bound(graph.len(), model.runs);
    let what = format!("{kind:?} {direction:?} on {} nodes, seed {seed}", graph.len());
    assert!(oracle.builds <= builds, "{what}: {} builds > {builds}", oracle.builds);
    // The oracle may answer more runs than asked; the search counts what it asked.
    assert!(out.runs as u64 <= runs, "{what}: {} runs > {runs}", out.runs);
    assert!(!out.ending.to_string().is_empty());
    out
}

#[test]
fn every_search_ends_within_the_bound_whatever_the_oracle_answers() {
    for (_, graph) in graphs() {
        for direction in [Direction::Cause, Direction::Fix] {
            for kind in [
                Kind::Inconsistent,
                Kind::NoInfo,
                Kind::AllCrash,
                Kind::NoneCrash,
                Kind::Unbuildable,
                Kind::Random,
                Kind::Empty,
            ] {
                for seed in 0..6 {
                    run(kind, &graph, direction, seed);
                }
            }
        }
    }
}

#[test]
fn a_good_end_that_crashes_is_said_so() {
    for (name, graph) in graphs() {
        let out = run(Kind::AllCrash, &graph, Direction::Cause, 0);
        let Ending::BaseContradicted { matched, runs, .. } = out.ending else {
            panic!("{name}: {}", out.ending)
        };
        assert!(matched >= 2 && matched <= runs);
        assert!(out.ending.to_string().starts_with("the good end reproduces the crash"));
        assert!(
            out.builds as usize <= 2 + 2 * graph.len().ilog2() as usize,
            "{name}: {} builds",
            out.builds
        );
        // Fix direction: the bad end does not reproduce.
        let out = run(Kind::NoneCrash, &graph, Direction::Fix, 0);
        assert!(
            matches!(out.ending, Ending::BaseContradicted { matched: 0, .. }),
            "{name}: {}",
            out.ending
        );
        assert!(out.ending.to_string().contains("does not reproduce"));
    }
}

#[test]
fn a_bad_end_that_does_not_crash_is_no_culprit() {
    for (name, graph) in graphs() {
        let out = run(Kind::NoneCrash, &graph, Direction::Cause, 0);
        assert!(matches!(out.ending, Ending::NoCulprit { .. }), "{name}: {}", out.ending);
        assert!(out.ending.to_string().contains("does not reproduce"));
        // Fix direction: the good end still crashes.
        let out = run(Kind::AllCrash, &graph, Direction::Fix, 0);
        assert!(matches!(out.ending, Ending::NoCulprit { .. }), "{name}: {}", out.ending);
        assert!(out.ending.to_string().contains("still reproduces"));
    }
}

#[test]
fn tests_that_tell_nothing_and_builds_that_fail_end_early() {
    for (name, graph) in graphs() {
        for direction in [Direction::Cause, Direction::Fix] {
            let out = run(Kind::NoInfo, &graph, direction, 0);
            assert!(
                matches!(out.ending, Ending::Untestable { all: true, .. }),
                "{name}: {}",
                out.ending
            );
            assert!(
                out.runs < 30 && out.builds <= 2,
                "{name}: {} runs, {} builds",
                out.runs,
                out.builds
            );
            assert!(out
                .ending
                .to_string()
                .starts_with("every test run timed out or told nothing"));
            let out = run(Kind::Unbuildable, &graph, direction, 0);
            if graph.len() > 8 {
                assert_eq!(out.ending, Ending::Unbuildable { failed: 8, all: true }, "{name}");
                assert!(out.ending.to_string().starts_with("every build failed"));
            } else {
                assert!(matches!(out.ending, Ending::Undecided { .. }), "{name}: {}", out.ending);
            }
        }
    }
}
