//! Issue 24's execution side on real processes: `--jobs` runs a batch's
//! test runs at once (their recorded times overlap), `--build-jobs` builds
//! what the search will want next in the background (the foreground then
//! reuses it), parallel and sequential bisections name the same culprit,
//! and a `kill -9` during parallel runs loses nothing a rerun needs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use kcache::store::index as idx;

const SMALL: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "40"),
    ("DEMO_REGRESSION", "25"),
    ("DEMO_BREAK_FROM", "5"),
    ("DEMO_BREAK_TO", "7"),
];

/// The demo's test, `seconds` slower per run; each run appends a line to
/// `<dir>/runs` when it starts.
fn slow_test(dir: &Path, seconds: &str) -> PathBuf {
    let test = dir.join("slow-test.sh");
    std::fs::write(
        &test,
        format!(
            "#!/bin/sh\necho \"$KCACHE_RUN\" >> {}\nsleep {seconds}\nexec {}\n",
            dir.join("runs").display(),
            demo_test_script()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&test));
    test
}

/// A bisection of the small demo history with a slow test and build.
fn bisect(cache: &Path, repo: &Path, test: &Path, policy: &str, jobs: u32, build_jobs: u32) -> Command {
    let mut c = bisect_with(
        cache,
        repo,
        &root_commit(repo),
        "HEAD",
        "sleep 0.3; make -s vmlinux",
        test.to_str().unwrap(),
    );
    c.args(["--runs", "4", "--json", "--no-predict", "--policy", policy])
        .args(["--jobs", &jobs.to_string(), "--build-jobs", &build_jobs.to_string()]);
    c
}

/// Every step's run spans (start, end) from the cache's bisection record.
fn run_times(cache: &Path) -> Vec<Vec<(f64, f64)>> {
    let c = kcache::store::Cache::open(cache).unwrap();
    let records: Vec<(String, serde_json::Value)> = c.raw_records(idx::CF_BISECTIONS).unwrap();
    assert_eq!(records.len(), 1, "one bisection recorded");
    let record = &records[0].1;
    assert_eq!(record["schema"], "kcache/bisection/v3");
    record["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["run_times"]
                .as_array()
                .map(|t| {
                    t.iter()
                        .map(|t| (t["start"].as_f64().unwrap(), t["end"].as_f64().unwrap()))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Recorded times are wall-clock milliseconds (a run's end is its id's
/// time, its start that minus its duration), so a run that starts right
/// after another ended can seem to overlap it by a few milliseconds on a
/// loaded machine (seen once in CI): overlaps shorter than this are not
/// counted. Runs at once overlap by a whole run (0.4 s here).
const CLOCK_SLACK: f64 = 0.05;

/// The most runs of one step going at once.
fn most_at_once(steps: &[Vec<(f64, f64)>]) -> usize {
    steps
        .iter()
        .map(|runs| {
            runs.iter()
                .map(|(start, _)| {
                    runs.iter()
                        .filter(|(s, e)| s <= start && *start < e - CLOCK_SLACK)
                        .count()
                })
                .max()
                .unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn runs_of_a_batch_overlap_with_jobs_and_the_culprit_is_the_sequential_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let test = slow_test(dir.path(), "0.4");
    let regression = commit_by_subject(&repo, "grow the pool");
    for policy in ["bayes", "classic"] {
        let one = dir.path().join(format!("{policy}-one"));
        let sequential = json(&run_ok(&mut bisect(&one, &repo, &test, policy, 1, 1)));
        let many = dir.path().join(format!("{policy}-many"));
        let parallel = json(&run_ok(&mut bisect(&many, &repo, &test, policy, 4, 1)));
        assert_eq!(sequential["outcome"]["commit"], regression.as_str(), "{policy}");
        assert_eq!(parallel["outcome"]["commit"], regression.as_str(), "{policy}");

        let (one_times, many_times) = (run_times(&one), run_times(&many));
        assert_eq!(
            most_at_once(&one_times),
            1,
            "{policy}: --jobs 1 runs one at a time: {one_times:?}"
        );
        let at_once = most_at_once(&many_times);
        assert!((2..=4).contains(&at_once), "{policy}: --jobs 4 ran {at_once} at once");
        // Every completed run is recorded, and the record's times are its runs'.
        let recorded: usize = many_times.iter().map(Vec::len).sum();
        assert_eq!(recorded as u64, totals(&parallel, "runs_done"), "{policy}");
        validate_all(&many);
    }
}

/// Runs at once never share a working directory: each run writes its
/// number to `./mine`, waits while the others write theirs, and reads it
/// back (a shared directory would hand one run another's number, a crash
/// on a good kernel that turns the answer). `./vmlinux` still names the
/// kernel's artifact.
#[test]
fn runs_at_once_each_work_in_a_directory_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let test = dir.path().join("own-dir-test.sh");
    std::fs::write(
        &test,
        format!(
            "#!/bin/sh\n[ -x ./vmlinux ] || {{ echo 'crash: no ./vmlinux'; exit 1; }}\n\
             echo \"$KCACHE_RUN\" > mine\nsleep 0.3\n\
             [ \"$(cat mine)\" = \"$KCACHE_RUN\" ] || {{ echo 'crash: another run wrote here'; exit 1; }}\n\
             exec {}\n",
            demo_test_script()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&test));
    let cache = dir.path().join("cache");
    let result = json(&run_ok(&mut bisect(&cache, &repo, &test, "bayes", 4, 1)));
    assert_eq!(
        result["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str(),
        "{result}"
    );
    assert!(most_at_once(&run_times(&cache)) >= 2, "the runs did not overlap");
    let c = kcache::store::Cache::open(&cache).unwrap();
    let runs: Vec<(String, kcache::store::RunRecord)> = c.raw_records(idx::CF_RUNS).unwrap();
    for (key, run) in runs {
        assert_ne!(run.title.as_deref(), Some("another run wrote here"), "{key}");
        assert_ne!(run.title.as_deref(), Some("no ./vmlinux"), "{key}");
    }
}

#[test]
fn the_report_draws_what_ran_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let test = slow_test(dir.path(), "0.2");
    let cache = dir.path().join("cache");
    let report = dir.path().join("report.html");
    run_ok(bisect(&cache, &repo, &test, "bayes", 3, 1).arg("--report").arg(&report));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<h2>Time line</h2>"), "no time line in the report");
    let at_once = most_at_once(&run_times(&cache));
    assert!(
        html.contains(&format!("at most {at_once} at once")),
        "the time line says how many ran at once ({at_once})"
    );
}

#[test]
fn speculative_builds_of_the_next_midpoints_are_reused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let test = slow_test(dir.path(), "0.3");
    let cache = dir.path().join("cache");
    let s = json(&run_ok(&mut bisect(&cache, &repo, &test, "classic", 2, 3)));
    assert_eq!(
        s["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str()
    );
    // A cold cache: a bisect step whose build is "reused" was built by a
    // build slot (its foreground build waited for it or found it done).
    let reused: Vec<&serde_json::Value> = s["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["purpose"] == "bisect" && st["build"] == "reused")
        .collect();
    assert!(!reused.is_empty(), "no step reused a speculative build: {s}");
    let notes: Vec<&str> = s["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str())
        .collect();
    let note = notes
        .iter()
        .find(|n| n.starts_with("speculative builds"))
        .unwrap_or_else(|| panic!("no speculation note: {notes:?}"));
    assert!(!note.contains(" 0 of them used"), "{note}");
    // Single flight: every build key was built once, foreground or not.
    let stats = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    let misses = stats["counters"]["build_misses"].as_i64().unwrap();
    let builds = stats["records"]["builds"].as_i64().unwrap();
    assert_eq!(misses, builds, "a build key was built twice: {stats}");
    // Each build slot built in its own tree beside the foreground's.
    let trees: Vec<String> = std::fs::read_dir(cache.join("worktrees"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".state"))
        .collect();
    assert_eq!(trees.len(), 3, "the foreground's tree and two slots': {trees:?}");
    validate_all(&cache);
}

#[test]
fn a_kill_during_parallel_runs_loses_nothing_and_a_rerun_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let test = slow_test(dir.path(), "0.5");
    let cache = dir.path().join("cache");
    let mut child = bisect(&cache, &repo, &test, "classic", 3, 2)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = || {
        std::fs::read_to_string(dir.path().join("runs"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while started() < 7 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "the bisection ended before the kill"
    );
    child.kill().unwrap(); // SIGKILL, with runs (and maybe a build) in flight
    child.wait().unwrap();
    validate_all(&cache);

    let s = json(&run_ok(&mut bisect(&cache, &repo, &test, "classic", 3, 2)));
    assert_eq!(
        s["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str()
    );
    let resumed = totals(&s, "builds_reused") + totals(&s, "runs_reused");
    assert!(
        resumed > 0,
        "the rerun reused nothing of the killed one: {}",
        s["totals"]
    );
    validate_all(&cache);
}
