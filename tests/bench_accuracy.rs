//! Bisection accuracy under noise (issue 12's grid): the noisy search and
//! today's classic rule, in-process on simulated histories, 200 seeded
//! trials per cell. A benchmark, not a CI test:
//!
//!     cargo test --release --test bench_accuracy -- --ignored --nocapture
//!     (or scripts/bench-bisect-accuracy.sh; BENCH_TRIALS overrides 200)
//!
//! Prints one Markdown row per cell: accuracy, mean runs, mean builds per
//! policy, and `git bisect`'s builds for the same histories.

use kcache::bisect::bayes::Model;
use kcache::bisect::sim::{self, History, Rng, Setting};
use rayon::prelude::*;

struct Cell {
    right: [u32; 2],
    runs: [u64; 2],
    builds: [u64; 2],
    plain_builds: u64,
}

fn run_cell(s: &Setting, trials: u64) -> Cell {
    let model = Model {
        runs: s.runs,
        ..Model::default()
    };
    let per_trial: Vec<(sim::Trial, sim::Trial, sim::Trial)> = (0..trials)
        .into_par_iter()
        .map(|seed| {
            let h = History::generate(s, &mut Rng::new(seed * 7919 + 1));
            (
                sim::classic(&h, s.runs, seed),
                sim::bayes(&h, &model, seed),
                sim::plain(&h, s.runs, seed),
            )
        })
        .collect();
    let mut c = Cell {
        right: [0; 2],
        runs: [0; 2],
        builds: [0; 2],
        plain_builds: 0,
    };
    for (classic, bayes, plain) in &per_trial {
        for (i, t) in [classic, bayes].into_iter().enumerate() {
            c.right[i] += t.right as u32;
            c.runs[i] += t.runs as u64;
            c.builds[i] += t.builds as u64;
        }
        c.plain_builds += plain.builds as u64;
    }
    c
}

#[test]
#[ignore = "benchmark: run with --ignored (minutes)"]
fn accuracy_grid() {
    let trials: u64 = std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let only_small = std::env::var("BENCH_SMALL").is_ok();
    println!("trials per cell: {trials}; runs per kernel: 10; 2% of commits in broken-build stretches");
    println!(
        "| commits | no-op | p | e | classic acc | bayes acc | classic runs | bayes runs | classic builds | bayes builds | git bisect builds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut misses = Vec::new();
    for commits in [300usize, 10_000] {
        if only_small && commits > 300 {
            continue;
        }
        for noop in [0.2, 0.9] {
            for p in [1.0, 0.7, 0.5, 0.3, 0.15] {
                for e in [0.0, 0.005, 0.02] {
                    let s = Setting {
                        commits,
                        noop,
                        p,
                        e,
                        broken: 0.02,
                        runs: 10,
                        build_seconds: 600.0,
                        run_seconds: 60.0,
                    };
                    let c = run_cell(&s, trials);
                    let t = trials as f64;
                    let acc = [c.right[0] as f64 / t, c.right[1] as f64 / t];
                    println!(
                        "| {commits} | {:.0}% | {p} | {:.1}% | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                        noop * 100.0,
                        e * 100.0,
                        acc[0],
                        acc[1],
                        c.runs[0] as f64 / t,
                        c.runs[1] as f64 / t,
                        c.builds[0] as f64 / t,
                        c.builds[1] as f64 / t,
                        c.plain_builds as f64 / t,
                    );
                    if p >= 0.3 && acc[1] < 0.95 {
                        misses.push(format!("accuracy {:.3} < 0.95 at {commits}/{noop}/{p}/{e}", acc[1]));
                    }
                    if acc[1] + 1e-9 < acc[0] {
                        misses.push(format!("below classic at {commits}/{noop}/{p}/{e}"));
                    }
                }
            }
        }
    }
    for m in &misses {
        println!("target missed: {m}");
    }
}
