//! Wall time and machine time of a bisection on M machines (issue 31), on
//! the wall-clock simulator (`sim::wallclock`), in syzbot's shapes: builds
//! of 10 minutes, 10 or 20 runs per step of 1 or 5 minutes each. Three
//! schedules on the same seeded histories: one machine (kcache today:
//! one build or one run at a time), syzbot's shape on M machines (one
//! build at a time, then a step's runs at once on up to M VMs), and kcache
//! on M machines (`Schedule::Machines`: builds and runs share the
//! machines, sets of tests, speculative builds on the machines the runs
//! leave). A benchmark, not a CI test:
//!
//!     nice -n 10 cargo test --release --locked --test bench_machines -- --ignored --nocapture
//!     (BENCH_M_TRIALS overrides the trials per cell; BENCH_M_ONLY=line
//!     or =dag runs those cells only)
//!
//! Asserted in every cell: kcache's accuracy within 0.1 of one machine's,
//! and kcache on M machines never slower than syzbot's shape on M. The
//! target (at 16 machines, wall time at most 0.25 of one machine's) is
//! printed per cell: with 1-minute runs the 10-minute builds are the
//! bound (the search wishes builds two decisions ahead), see the notes.

use kcache::search::bayes::Model;
use kcache::search::graph::Direction;
use kcache::search::sim::wallclock::{trial, Schedule, WallTrial};
use kcache::search::sim::{dag, History, Rng, Setting};

const BUILD_SECONDS: f64 = 600.0;
const MACHINES: [u32; 4] = [1, 4, 16, 64];
/// Where the target is checked.
const TARGET_MACHINES: u32 = 16;
const TARGET_RATIO: f64 = 0.25;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn accuracy(ts: &[WallTrial]) -> f64 {
    ts.iter().filter(|t| t.right).count() as f64 / ts.len().max(1) as f64
}

fn hours(ts: &[WallTrial]) -> f64 {
    median(ts.iter().map(|t| t.seconds).collect()) / 3600.0
}

fn machine_hours(ts: &[WallTrial]) -> f64 {
    median(ts.iter().map(|t| t.machine_seconds).collect()) / 3600.0
}

fn run_all(hs: &[History], model: &Model, schedule: Schedule) -> Vec<WallTrial> {
    hs.iter()
        .enumerate()
        .map(|(i, h)| trial(h, model, schedule, i as u64))
        .collect()
}

#[test]
#[ignore = "benchmark: run with --ignored"]
fn wall_time_on_m_machines_against_one() {
    let only = std::env::var("BENCH_M_ONLY").ok();
    let trials: usize = std::env::var("BENCH_M_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let started = std::time::Instant::now();
    println!(
        "| history | p | runs/step | run min | M | 1-machine acc | syz acc | kcache acc | 1-machine h | syz h | kcache h | syz/1 | kcache/1 | 1-machine machine-h | syz machine-h | kcache machine-h |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    let mut misses = Vec::new();
    for (shape, commits) in [("line", 300usize), ("dag", 2_000)] {
        if only.as_ref().is_some_and(|o| o != shape) {
            continue;
        }
        for p in [1.0, 0.3] {
            for runs in [10u32, 20] {
                for run_minutes in [1.0, 5.0] {
                    let s = Setting {
                        runs,
                        ..Setting::wallclock(commits, p, BUILD_SECONDS, run_minutes * 60.0)
                    };
                    let hs: Vec<History> = (0..trials as u64)
                        .map(|seed| {
                            let mut rng = Rng::new(seed * 7919 + 1);
                            match shape {
                                "dag" => dag::generate(&s, Direction::Cause, &mut rng),
                                _ => History::generate(&s, &mut rng),
                            }
                        })
                        .collect();
                    let model = Model {
                        runs,
                        ..Model::default()
                    };
                    let label = if shape == "dag" {
                        format!("{}-node DAG", hs[0].graph.len())
                    } else {
                        format!("{commits}-commit line")
                    };
                    let one = run_all(&hs, &model, Schedule::Sequential);
                    for m in MACHINES {
                        let syz = run_all(&hs, &model, Schedule::Syzbot { run_slots: m });
                        let ours = run_all(&hs, &model, Schedule::Machines { machines: m });
                        let (t1, ts, tk) = (hours(&one), hours(&syz), hours(&ours));
                        println!(
                            "| {label} | {p} | {runs} | {run_minutes} | {m} | {:.3} | {:.3} | {:.3} | {t1:.2} | {ts:.2} | {tk:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
                            accuracy(&one),
                            accuracy(&syz),
                            accuracy(&ours),
                            ts / t1,
                            tk / t1,
                            machine_hours(&one),
                            machine_hours(&syz),
                            machine_hours(&ours),
                        );
                        let cell = format!("{label} p={p} runs={runs} run={run_minutes}min M={m}");
                        if accuracy(&ours) + 0.1 < accuracy(&one) {
                            failures.push(format!(
                                "{cell}: accuracy {:.3} < {:.3}",
                                accuracy(&ours),
                                accuracy(&one)
                            ));
                        }
                        if m > 1 && tk > ts {
                            failures.push(format!("{cell}: kcache {tk:.2} h > syzbot's shape {ts:.2} h"));
                        }
                        if m == TARGET_MACHINES && tk > TARGET_RATIO * t1 {
                            misses.push(format!("{cell}: kcache/1 {:.2}", tk / t1));
                        }
                    }
                }
            }
        }
    }
    println!(
        "whole grid: {:.0} s, {trials} trials per cell",
        started.elapsed().as_secs_f64()
    );
    println!("cells off the target ({}):", misses.len());
    for m in &misses {
        println!("  {m}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
