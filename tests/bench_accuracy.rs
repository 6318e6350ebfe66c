//! Bisection accuracy under noise (issue 12's grid): the noisy search and
//! today's classic rule, in-process on simulated histories, 200 seeded
//! trials per cell. A benchmark, not a CI test:
//!
//!     cargo test --release --test bench_accuracy -- --ignored --nocapture
//!     (or scripts/bench-bisect-accuracy.sh; BENCH_TRIALS overrides 200;
//!     BENCH_LINE_COMMITS, BENCH_DAG_COMMITS, BENCH_NOOP, BENCH_P and
//!     BENCH_E narrow the grids to some cells)
//!
//! Prints one Markdown row per cell: accuracy, mean runs, mean builds per
//! policy, and `git bisect`'s builds for the same histories.

use kcache::search::bayes::Model;
use kcache::search::graph::Direction;
use kcache::search::sim::{self, dag, History, Rng, Setting};
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

/// A cell: 2% of commits in broken stretches, 10 runs a batch, builds
/// 600 s and runs 60 s.
fn setting(commits: usize, noop: f64, p: f64, e: f64) -> Setting {
    Setting {
        commits,
        noop,
        p,
        e,
        broken: 0.02,
        runs: 10,
        build_seconds: 600.0,
        run_seconds: 60.0,
    }
}

/// Trials per cell: `BENCH_TRIALS`, else 200.
fn trials() -> u64 {
    std::env::var("BENCH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

/// A comma-separated list from the environment variable `name`, else `default`.
fn env_list<T: std::str::FromStr + Copy>(name: &str, default: &[T]) -> Vec<T> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// The grid's axes, each narrowed by its environment variable (comma
/// separated): `BENCH_NOOP`, `BENCH_P`, `BENCH_E`, to re-run a few cells
/// with more trials.
fn axes(ps: &[f64], es: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    (
        env_list("BENCH_NOOP", &[0.2, 0.9]),
        env_list("BENCH_P", ps),
        env_list("BENCH_E", es),
    )
}

#[test]
#[ignore = "benchmark: run with --ignored (minutes)"]
fn accuracy_grid() {
    let trials = trials();
    let only_small = std::env::var("BENCH_SMALL").is_ok();
    println!("trials per cell: {trials}; runs per kernel: 10; 2% of commits in broken-build stretches");
    println!(
        "| commits | no-op | p | e | classic acc | bayes acc | classic runs | bayes runs | classic builds | bayes builds | git bisect builds |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut misses = Vec::new();
    let (noops, ps, es) = axes(&[1.0, 0.7, 0.5, 0.3, 0.15], &[0.0, 0.005, 0.02]);
    for commits in env_list("BENCH_LINE_COMMITS", &[300usize, 10_000]) {
        if only_small && commits > 300 {
            continue;
        }
        for &noop in &noops {
            for &p in &ps {
                for &e in &es {
                    let s = setting(commits, noop, p, e);
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

/// What `p` and `e` look like in practice, read from the run outcomes of
/// the real syzbot logs in `../shared/bisect-logs/dev` (and their labels):
/// on commits where the log's own crash showed, the share of informative
/// runs that showed it (`p`); on every tested commit, the share of runs that
/// crashed with another title (`e`), and how often a commit without the
/// target crash showed another one.
#[test]
#[ignore = "benchmark: reads the shared dev logs"]
fn dev_log_noise() {
    use kcache::crash::Target;
    use kcache::syzlog::{self, RunOutcome, Runs};
    let shared = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bisect-logs");
    let labels: std::collections::HashMap<String, String> = std::fs::read_to_string(shared.join("dev-labels.tsv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?.to_string(), f.next()?.to_string()))
        })
        .collect();
    let files = syzlog::corpus_files(&[shared.join("dev")]).unwrap();
    let mut p_bad: Vec<f64> = Vec::new();
    let (mut runs, mut other_runs) = (0u64, 0u64);
    let (mut clean_steps, mut clean_with_other) = (0u64, 0u64);
    let mut by_label: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for f in &files {
        let Ok(log) = syzlog::parse_file(f) else { continue };
        let Some(title) = log.original_crash() else { continue };
        let target = Target::new([title]);
        let name = f.file_stem().unwrap().to_string_lossy().to_string();
        let label = labels.get(&name).cloned().unwrap_or_else(|| "unlabelled".into());
        for step in &log.steps {
            let Runs::Each(each) = &step.runs else { continue };
            let (mut m, mut o, mut ok) = (0u32, 0u32, 0u32);
            for r in each {
                runs += 1;
                match &r.outcome {
                    RunOutcome::Ok => ok += 1,
                    RunOutcome::Crashed(t) if target.matches(t) => m += 1,
                    RunOutcome::Crashed(_) => {
                        o += 1;
                        other_runs += 1;
                    }
                    _ => {}
                }
            }
            let entry = by_label.entry(label.clone()).or_default();
            entry.0 += 1;
            if m > 0 && m + ok >= 5 {
                p_bad.push(m as f64 / (m + ok) as f64);
            }
            if m == 0 {
                clean_steps += 1;
                if o > 0 {
                    clean_with_other += 1;
                    entry.1 += 1;
                }
            }
        }
    }
    p_bad.sort_by(f64::total_cmp);
    let q = |x: f64| {
        p_bad
            .get(((p_bad.len() as f64 - 1.0) * x) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    let below = |t: f64| p_bad.iter().filter(|p| **p < t).count() as f64 / p_bad.len().max(1) as f64;
    println!(
        "logs: {}; steps with per-run outcomes on bad commits (>= 5 informative runs): {}",
        files.len(),
        p_bad.len()
    );
    println!(
        "p on bad commits: p10 {:.2}, p25 {:.2}, median {:.2}, p75 {:.2}; below 0.5: {:.0}%, below 0.3: {:.0}%",
        q(0.1),
        q(0.25),
        q(0.5),
        q(0.75),
        below(0.5) * 100.0,
        below(0.3) * 100.0
    );
    println!(
        "e: {:.2}% of {runs} runs crashed with another title; {:.1}% of {clean_steps} steps without the target crash showed another",
        other_runs as f64 / runs.max(1) as f64 * 100.0,
        clean_with_other as f64 / clean_steps.max(1) as f64 * 100.0
    );
    for (label, (steps, other)) in &by_label {
        println!("  {label}: {steps} tested steps, {other} without the target crash but with another");
    }
}

/// The cells nearest to what the dev logs show (see `dev_log_noise`): the
/// median and the lower quartile of p on bad commits, and e as high as the
/// share of runs with another title there (an upper bound: it counts
/// "no output" and title variants too).
#[test]
#[ignore = "benchmark: run with --ignored"]
fn dev_like_cells() {
    let trials = trials();
    println!("| commits | no-op | p | e | classic acc | bayes acc | classic runs | bayes runs | classic builds | bayes builds | git bisect builds |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (p, e) in [(0.7, 0.02), (0.2, 0.02), (0.7, 0.25), (0.2, 0.25)] {
        let s = setting(300, 0.9, p, e);
        let c = run_cell(&s, trials);
        let t = trials as f64;
        println!(
            "| 300 | 90% | {p} | {:.0}% | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            e * 100.0,
            c.right[0] as f64 / t,
            c.right[1] as f64 / t,
            c.runs[0] as f64 / t,
            c.runs[1] as f64 / t,
            c.builds[0] as f64 / t,
            c.builds[1] as f64 / t,
            c.plain_builds as f64 / t,
        );
    }
}

/// One DAG cell: the noisy search and `git bisect` on the same
/// maintainer-style histories.
struct DagCell {
    right: u32,
    runs: u64,
    builds: u64,
    git_right: u32,
    git_builds: u64,
    merge_culprits: u32,
    /// Per trial, the noisy search's builds minus `git bisect`'s on the
    /// same history: (sum, sum of squares), for the paired mean and its
    /// standard error.
    build_diff: (i64, i64),
}

impl DagCell {
    /// The mean of the paired build difference (noisy − git) and its
    /// standard error.
    fn build_diff(&self, trials: u64) -> (f64, f64) {
        let t = trials as f64;
        let mean = self.build_diff.0 as f64 / t;
        let var = (self.build_diff.1 as f64 / t - mean * mean).max(0.0) * t / (t - 1.0).max(1.0);
        (mean, (var / t).sqrt())
    }
}

fn run_dag_cell(s: &Setting, direction: Direction, trials: u64) -> DagCell {
    let model = Model {
        runs: s.runs,
        ..Model::default()
    };
    let per_trial: Vec<(sim::Trial, sim::Trial, bool)> = (0..trials)
        .into_par_iter()
        .map(|seed| {
            let h = dag::generate(s, direction, &mut Rng::new(seed * 7919 + 1));
            let merge = h.graph.parents(h.culprit).len() > 1;
            (sim::bayes(&h, &model, seed), sim::git_bisect(&h, s.runs, seed), merge)
        })
        .collect();
    let mut c = DagCell {
        right: 0,
        runs: 0,
        builds: 0,
        git_right: 0,
        git_builds: 0,
        merge_culprits: 0,
        build_diff: (0, 0),
    };
    for (bayes, git, merge) in &per_trial {
        let d = bayes.builds as i64 - git.builds as i64;
        c.build_diff.0 += d;
        c.build_diff.1 += d * d;
        c.right += bayes.right as u32;
        c.runs += bayes.runs as u64;
        c.builds += bayes.builds as u64;
        c.git_right += git.right as u32;
        c.git_builds += git.builds as u64;
        c.merge_culprits += *merge as u32;
    }
    c
}

/// The grid on maintainer-style DAGs (`sim::dag`: topic branches of 1-50
/// commits forked 0-3 merges back, `--no-ff` merges, criss-crosses, merges
/// that bring nothing, the culprit anywhere, a merge one time in ten), both
/// directions. `BENCH_DAG_COMMITS` (default 300,2000) chooses the sizes.
///
/// The builds target (at p = 1, e = 0, no more builds than `git bisect` on
/// the same DAG) is a paired difference of about ±1 build in half the
/// trials: at 200 trials its standard error is about 0.05 builds, so those
/// cells get `BENCH_P1_TRIALS` (default 2000, cheap: a reliable reproducer
/// needs one run per crashing kernel) and the difference is printed with
/// its standard error.
#[test]
#[ignore = "benchmark: run with --ignored (minutes)"]
fn dag_accuracy_grid() {
    let trials = trials();
    let p1_trials: u64 = std::env::var("BENCH_P1_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let sizes = env_list("BENCH_DAG_COMMITS", &[300usize, 2000]);
    println!(
        "trials per cell: {trials} ({p1_trials} at p = 1, e = 0); runs per kernel: 10; 2% of commits in broken-build stretches"
    );
    println!("| direction | commits | no-op | p | e | trials | noisy acc | noisy runs | noisy builds | git bisect acc | git bisect builds | noisy − git builds (± s.e.) | merge culprits |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut misses = Vec::new();
    let (noops, ps, es) = axes(&[1.0, 0.5, 0.3], &[0.0, 0.02]);
    for direction in [Direction::Cause, Direction::Fix] {
        for &commits in &sizes {
            for &noop in &noops {
                for &p in &ps {
                    for &e in &es {
                        let s = setting(commits, noop, p, e);
                        let builds_target = p == 1.0 && e == 0.0;
                        let n = if builds_target { p1_trials } else { trials };
                        let c = run_dag_cell(&s, direction, n);
                        let t = n as f64;
                        let acc = c.right as f64 / t;
                        let (diff, se) = c.build_diff(n);
                        println!(
                            "| {} | {commits} | {:.0}% | {p} | {:.1}% | {n} | {acc:.3} | {:.1} | {:.2} | {:.3} | {:.2} | {diff:+.3} ± {se:.3} | {} |",
                            if direction == Direction::Cause { "cause" } else { "fix" },
                            noop * 100.0,
                            e * 100.0,
                            c.runs as f64 / t,
                            c.builds as f64 / t,
                            c.git_right as f64 / t,
                            c.git_builds as f64 / t,
                            c.merge_culprits,
                        );
                        if p >= 0.3 && acc < 0.98 {
                            misses.push(format!(
                                "accuracy {acc:.3} < 0.98 at {direction:?}/{commits}/{noop}/{p}/{e}"
                            ));
                        }
                        if builds_target && c.builds > c.git_builds {
                            misses.push(format!(
                                "builds {:.3} > git bisect's {:.3} ({diff:+.3} ± {se:.3}) at {direction:?}/{commits}/{noop}",
                                c.builds as f64 / t,
                                c.git_builds as f64 / t
                            ));
                        }
                    }
                }
            }
        }
    }
    for m in &misses {
        println!("target missed: {m}");
    }
}

/// The revert check's tallies over one cell's trials, for one policy.
#[derive(Default)]
struct CheckCell {
    named: u32,
    wrong: u32,
    wrong_caught: u32,
    wrong_unchecked: u32,
    right: u32,
    right_not_confirmed: u32,
    right_unchecked: u32,
    search_runs: u64,
    search_builds: u64,
    check_runs: u64,
    check_builds: u64,
}

impl CheckCell {
    fn add(&mut self, trial: &sim::Trial, checked: Option<sim::confirm::Checked>) {
        use sim::confirm::Check;
        self.search_runs += trial.runs as u64;
        self.search_builds += trial.builds as u64;
        let Some(c) = checked else { return };
        self.named += 1;
        self.check_runs += c.runs as u64;
        self.check_builds += c.builds as u64;
        let unchecked = matches!(c.verdict, Check::NoOp | Check::Untested);
        if trial.right {
            self.right += 1;
            self.right_not_confirmed += (c.verdict == Check::NotConfirmed) as u32;
            self.right_unchecked += unchecked as u32;
        } else {
            self.wrong += 1;
            self.wrong_caught += (c.verdict == Check::NotConfirmed) as u32;
            self.wrong_unchecked += unchecked as u32;
        }
    }

    fn row(&self, policy: &str, p: f64, e: f64, trials: u64) {
        let share = |n: u32, of: u32| {
            if of == 0 {
                "-".to_string()
            } else {
                format!("{n}/{of} = {:.1}%", 100.0 * n as f64 / of as f64)
            }
        };
        let t = trials as f64;
        println!(
            "| {policy} | {p} | {:.0}% | {trials} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} |",
            e * 100.0,
            self.named,
            self.wrong,
            share(self.wrong_caught, self.wrong),
            share(self.wrong_unchecked, self.wrong),
            share(self.right_not_confirmed, self.right),
            share(self.right_unchecked, self.right),
            self.check_builds as f64 / t,
            self.check_runs as f64 / t,
            self.search_builds as f64 / t,
            self.search_runs as f64 / t,
        );
    }
}

/// Issue 33's measure: the revert check (`sim::confirm`, a node-level
/// model of the culprit reverted on the crashing end) after the noisy
/// search (default policy: the check's run count chosen for the low end of
/// the crash's measured rate, as kcache does, and for the point estimate,
/// to compare) and after classic with `--confirm-runs 10` (any crash
/// counts), on the cells nearest to the dev logs (`dev_like_cells`)
/// and the hardest grid cell (p = 0.15). `BENCH_TRIALS` trials per cell
/// (default 200). Wrong culprits caught: the check says "not confirmed";
/// unchecked: no-op or untested.
#[test]
#[ignore = "benchmark: run with --ignored (minutes)"]
fn revert_check() {
    let trials = trials();
    println!("| policy | p | e | trials | culprits named | wrong | wrong caught | wrong unchecked | right not confirmed | right unchecked | check builds | check runs | search builds | search runs |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let cells = [
        (0.9, 0.7, 0.02),
        (0.9, 0.2, 0.02),
        (0.9, 0.7, 0.25),
        (0.9, 0.2, 0.25),
        (0.2, 0.15, 0.02),
    ];
    for (noop, p, e) in cells {
        let s = setting(300, noop, p, e);
        let model = Model {
            runs: s.runs,
            ..Model::default()
        };
        use sim::confirm::RateRule;
        let per_trial: Vec<_> = (0..trials)
            .into_par_iter()
            .map(|seed| {
                let h = History::generate(&s, &mut Rng::new(seed * 7919 + 1));
                (
                    sim::confirm::bayes_checked(&h, &model, seed, RateRule::LowEnd),
                    sim::confirm::bayes_checked(&h, &model, seed, RateRule::Point),
                    sim::confirm::classic_checked(&h, s.runs, 10, seed),
                )
            })
            .collect();
        let mut cells: [CheckCell; 3] = Default::default();
        for ((lt, lc), (pt, pc), (ct, cc)) in &per_trial {
            cells[0].add(lt, *lc);
            cells[1].add(pt, *pc);
            cells[2].add(ct, *cc);
        }
        let label = |policy: &str| format!("{policy} (no-op {:.0}%)", noop * 100.0);
        cells[0].row(&label("noisy, N for the rate's low end"), p, e, trials);
        cells[1].row(&label("noisy, N for the point rate"), p, e, trials);
        cells[2].row(&label("classic, --confirm-runs 10"), p, e, trials);
    }
}
