//! The cost of the noisy search on a release cycle's DAG (issue 22): a
//! 15,000-commit maintainer-style history (`sim::dag`), the search run
//! in-process against the simulator; per step, the time from the last build
//! or run to the next one (the search thinking: one posterior and one choice
//! of action over every node), and the process's peak memory. A benchmark,
//! not a CI test:
//!
//!     cargo test --release --test bench_dag -- --ignored --nocapture
//!     (BENCH_DAG_NODES overrides 15000)

use std::time::Duration;

use kcache::crash::Target;
use kcache::search::bayes::{self, Model};
use kcache::search::graph::Direction;
use kcache::search::sim::{self, dag, timed::Timed, History, Rng, Setting, SimOracle};

/// Peak resident memory of this process (MB), from /proc/self/status.
fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "benchmark: run with --ignored"]
fn cost_on_a_release_cycle() {
    let nodes: usize = std::env::var("BENCH_DAG_NODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15_000);
    println!("peak memory before: {:.1} MB", peak_mb());
    println!("| direction | p | e | nodes | merges | chains W | steps | median ms/step | max ms/step | builds | runs | right | peak MB |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for (direction, p, e, seed) in [
        (Direction::Cause, 1.0, 0.0, 1u64),
        (Direction::Cause, 0.3, 0.02, 2),
        (Direction::Fix, 0.5, 0.02, 3),
    ] {
        let s = Setting {
            commits: nodes,
            noop: 0.2,
            p,
            e,
            broken: 0.02,
            runs: 10,
            build_seconds: 600.0,
            run_seconds: 60.0,
        };
        let h: History = dag::generate(&s, direction, &mut Rng::new(seed));
        let g = &h.graph;
        let merges = (0..g.len()).filter(|&i| g.parents(i).len() > 1).count();
        let mut oracle = Timed::new(SimOracle::new(&h, seed));
        let out = match bayes::search(
            &Model::default(),
            Target::new([sim::TARGET_TITLE]),
            g,
            direction,
            &mut oracle,
        ) {
            Ok(o) => o,
            Err(never) => match never {},
        };
        let mut steps = oracle.steps.clone();
        steps.sort();
        let median = steps.get(steps.len() / 2).copied().unwrap_or_default();
        let max = steps.last().copied().unwrap_or_default();
        let right = matches!(out.ending, bayes::Ending::Culprit { index, .. } if index == h.culprit);
        println!(
            "| {direction:?} | {p} | {:.0}% | {} | {merges} | {} | {} | {:.1} | {:.1} | {} | {} | {right} | {:.1} |",
            e * 100.0,
            g.len(),
            g.width(),
            steps.len(),
            ms(median),
            ms(max),
            out.builds,
            out.runs,
            peak_mb()
        );
        assert!(ms(median) < 100.0, "median step {:.1} ms", ms(median));
        assert!(peak_mb() < 200.0, "peak {:.1} MB", peak_mb());
    }
}
