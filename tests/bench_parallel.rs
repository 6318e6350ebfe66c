//! Wall time of a bisection with parallel runs and speculative builds
//! (issue 24), on the wall-clock simulator (`sim::wallclock`): kcache
//! sequential (today), kcache parallel (10 run slots, 1 or 2 build slots,
//! sets and prefetch) and syzbot's shape (one build at a time, each step's
//! runs at once on 10 slots). The same seeded histories for all three. A
//! benchmark, not a CI test:
//!
//!     nice -n 10 cargo test --release --test bench_parallel -- --ignored --nocapture
//!     (BENCH_PAR_TRIALS overrides the trials per cell; BENCH_PAR_ONLY=300
//!     or =10000 or =dag runs those cells only)

use kcache::search::bayes::Model;
use kcache::search::graph::Direction;
use kcache::search::sim::wallclock::{trial, Schedule, WallTrial};
use kcache::search::sim::{dag, History, Rng, Setting};

const RUN_SLOTS: u32 = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn accuracy(ts: &[WallTrial]) -> f64 {
    ts.iter().filter(|t| t.right).count() as f64 / ts.len().max(1) as f64
}

fn seconds(ts: &[WallTrial]) -> f64 {
    median(ts.iter().map(|t| t.seconds).collect())
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// One history per trial for a cell, the same for every schedule.
fn histories(shape: &str, s: &Setting, trials: usize) -> Vec<History> {
    (0..trials as u64)
        .map(|seed| {
            let mut rng = Rng::new(seed * 7919 + 1);
            match shape {
                "dag" => dag::generate(s, Direction::Cause, &mut rng),
                _ => History::generate(s, &mut rng),
            }
        })
        .collect()
}

fn run_all(hs: &[History], schedule: Schedule) -> Vec<WallTrial> {
    let model = Model::default();
    hs.iter()
        .enumerate()
        .map(|(i, h)| trial(h, &model, schedule, i as u64))
        .collect()
}

#[test]
#[ignore = "benchmark: run with --ignored"]
fn wall_time_parallel_against_sequential_and_syzbot() {
    let only = std::env::var("BENCH_PAR_ONLY").ok();
    let started = std::time::Instant::now();
    println!(
        "| build s | run s | commits | p | B | seq acc | syz acc | par acc | seq h | syz h | par h | par/seq | par/syz | spec builds | wasted |"
    );
    println!("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut misses = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (build, run) in [(600.0, 300.0), (300.0, 60.0)] {
        for (shape, commits) in [("line", 300usize), ("line", 10_000), ("dag", 2_000)] {
            let tag = if shape == "dag" {
                "dag".to_string()
            } else {
                commits.to_string()
            };
            if only.as_ref().is_some_and(|o| *o != tag) {
                continue;
            }
            let default_trials = match (shape, commits) {
                ("line", 300) => 40,
                _ => 15,
            };
            let trials = env_usize("BENCH_PAR_TRIALS").unwrap_or(default_trials);
            for p in [1.0, 0.5, 0.3] {
                let s = Setting::wallclock(commits, p, build, run);
                let hs = histories(shape, &s, trials);
                let seq = run_all(&hs, Schedule::Sequential);
                let syz = run_all(&hs, Schedule::Syzbot { run_slots: RUN_SLOTS });
                for b in [1u32, 2] {
                    let par = run_all(
                        &hs,
                        Schedule::Parallel {
                            run_slots: RUN_SLOTS,
                            build_slots: b,
                        },
                    );
                    let (t_seq, t_syz, t_par) = (seconds(&seq), seconds(&syz), seconds(&par));
                    let spec = par.iter().map(|t| t.speculative as f64).sum::<f64>() / trials as f64;
                    let wasted = par.iter().map(|t| t.wasted as f64).sum::<f64>() / trials as f64;
                    let label = if shape == "dag" {
                        format!("{} (DAG)", hs[0].graph.len())
                    } else {
                        commits.to_string()
                    };
                    println!(
                        "| {build} | {run} | {label} | {p} | {b} | {:.3} | {:.3} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {spec:.1} | {wasted:.1} |",
                        accuracy(&seq),
                        accuracy(&syz),
                        accuracy(&par),
                        t_seq / 3600.0,
                        t_syz / 3600.0,
                        t_par / 3600.0,
                        t_par / t_seq,
                        t_par / t_syz,
                    );
                    let cell = format!("{build}/{run} {label} p={p} B={b}");
                    if accuracy(&par) + 0.05 < accuracy(&seq) {
                        misses.push(format!(
                            "{cell}: accuracy {:.3} < {:.3}",
                            accuracy(&par),
                            accuracy(&seq)
                        ));
                    }
                    if t_par > 0.5 * t_seq {
                        misses.push(format!("{cell}: par/seq {:.2}", t_par / t_seq));
                    }
                    if t_par > 0.8 * t_syz {
                        misses.push(format!("{cell}: par/syz {:.2}", t_par / t_syz));
                    }
                    // What must hold in every cell: accuracy within the
                    // noise of 15-40 trials, never slower than syzbot's
                    // shape, and with two build slots both targets (with
                    // one, the builds are the critical path: README).
                    if accuracy(&par) + 0.1 < accuracy(&seq) {
                        failures.push(format!("{cell}: accuracy {:.3}", accuracy(&par)));
                    }
                    let (seq_target, syz_target) = if b >= 2 { (0.5, 0.8) } else { (0.6, 1.0) };
                    if t_par > seq_target * t_seq || t_par > syz_target * t_syz {
                        failures.push(format!(
                            "{cell}: par/seq {:.2} par/syz {:.2}",
                            t_par / t_seq,
                            t_par / t_syz
                        ));
                    }
                }
            }
        }
    }
    println!("whole grid: {:.0} s", started.elapsed().as_secs_f64());
    println!("cells off target ({}):", misses.len());
    for m in &misses {
        println!("  {m}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Milliseconds the search thinks per step (one choice, sets and the
/// lookahead included) on a 10,000-commit line and a 15,000-commit DAG,
/// sequential (today's choice, plus the lookahead) and parallel.
#[test]
#[ignore = "benchmark: run with --ignored"]
fn thinking_per_step() {
    println!("| history | schedule | steps | median ms/step | max ms/step | right |");
    println!("|---|---|---:|---:|---:|---|");
    let s = |commits| Setting::wallclock(commits, 0.5, 600.0, 300.0);
    let histories = [
        ("10,000-commit line", History::generate(&s(10_000), &mut Rng::new(5))),
        (
            "15,000-commit DAG",
            dag::generate(&s(15_000), Direction::Cause, &mut Rng::new(5)),
        ),
    ];
    let mut worst: f64 = 0.0;
    for (name, h) in &histories {
        for (label, schedule) in [
            ("sequential", Schedule::Sequential),
            (
                "parallel R=10 B=2",
                Schedule::Parallel {
                    run_slots: RUN_SLOTS,
                    build_slots: 2,
                },
            ),
        ] {
            let mut oracle =
                kcache::search::sim::timed::Timed::new(kcache::search::sim::wallclock::Clocked::new(h, schedule, 5));
            let out = match kcache::search::bayes::search(
                &Model::default(),
                kcache::crash::Target::new([kcache::search::sim::TARGET_TITLE]),
                &h.graph,
                h.direction,
                &mut oracle,
            ) {
                Ok(o) => o,
                Err(never) => match never {},
            };
            let right =
                matches!(out.ending, kcache::search::bayes::Ending::Culprit { index, .. } if index == h.culprit);
            let steps: Vec<f64> = oracle.steps.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
            let max = steps.iter().cloned().fold(0.0, f64::max);
            let med = median(steps.clone());
            worst = worst.max(med);
            println!("| {name} | {label} | {} | {med:.1} | {max:.1} | {right} |", steps.len());
        }
    }
    assert!(worst < 100.0, "median step {worst:.1} ms");
}
