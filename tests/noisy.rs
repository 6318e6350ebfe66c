//! The noisy search on a real git history (gcc-built toy kernels): a
//! reproducer that fires in 30% of runs on a bad kernel, and an unrelated
//! `WARNING` that any kernel hits now and then. The right culprit, with its
//! probability and credible set in the JSON; a warm re-run does nothing.

mod common;

use std::path::Path;

use common::*;

const REPO: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "60"),
    ("DEMO_REGRESSION", "31"),
    ("DEMO_BREAK_FROM", "10"),
    ("DEMO_BREAK_TO", "13"),
    ("DEMO_AFTER_REGRESSION", "comment"),
];

fn noisy_bisect(cache: &Path, repo: &Path, test: &Path, extra: &[&str]) -> serde_json::Value {
    let mut c = bisect_whole(cache, repo, test);
    c.args(["--runs", "10", "--json"]).args(extra);
    json(&run_ok(&mut c))
}

#[test]
fn flaky_reproducer_and_unrelated_crashes_still_give_the_right_culprit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), REPO);
    let test = flaky_test(dir.path(), "noisy-test.sh", " 1");
    let cache = dir.path().join("cache");
    let regression = commit_by_subject(&repo, "grow the pool");
    let s = noisy_bisect(
        &cache,
        &repo,
        &test,
        &["--crash-title", "BUG: KASAN: slab-out-of-bounds in mm_init"],
    );
    assert_eq!(s["outcome"]["kind"], "culprit", "{s}");
    assert_eq!(s["outcome"]["commit"], regression.as_str(), "{s}");
    let search = &s["search"];
    assert!(search["probability"].as_f64().unwrap() >= 0.95, "{search}");
    let credible = strings(&search["credible_set"]);
    assert_eq!(credible[0], regression, "{search}");
    // The unrelated warning was seen, reported per kernel, and did not make
    // any kernel bad: every kernel with a match is on the bad side.
    let kernels = search["kernels"].as_array().unwrap();
    assert!(
        kernels.iter().any(|k| k["other_titles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "WARNING in unrelated_function")),
        "{search}"
    );
    // The culprit's parent has a different kernel (never a no-op culprit).
    assert_ne!(s["outcome"]["signature"], s["outcome"]["parents"][0]["signature"]);

    // Warm: everything is in the cache; nothing is built or run.
    let warm = noisy_bisect(
        &cache,
        &repo,
        &test,
        &["--crash-title", "BUG: KASAN: slab-out-of-bounds in mm_init"],
    );
    assert_eq!(warm["outcome"]["commit"], regression.as_str());
    assert_eq!(totals(&warm, "builds_done"), 0, "{warm}");
    assert_eq!(totals(&warm, "runs_done"), 0, "{warm}");
}

#[test]
fn the_target_is_learned_from_the_bad_commit_and_the_log_parses_back() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), REPO);
    let test = flaky_test(dir.path(), "noisy-test.sh", " 1");
    let cache = dir.path().join("cache");
    let log = dir.path().join("bisect.log");
    let s = noisy_bisect(&cache, &repo, &test, &["--log", log.to_str().unwrap()]);
    assert_eq!(
        s["search"]["target"][0], "BUG: KASAN: slab-out-of-bounds in mm_init",
        "the unrelated warning is not the target: {}",
        s["search"]
    );
    assert_eq!(
        s["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str()
    );
    assert_log_matches(&log, &s);
    let parsed = kcache::syzlog::parse_file(&log).unwrap();
    assert_eq!(parsed.culprit(), s["outcome"]["commit"].as_str());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("# kcache: probability: "), "{text}");
    assert!(text.contains("# kcache: credible set (95%): "), "{text}");

    // `lookup` classifies a kernel's pooled runs against a crash title, as
    // the search did; another title re-classifies the same runs.
    let sig = s["outcome"]["signature"].as_str().unwrap();
    let lookup = |title: &str| {
        let out = run_ok(kcache().arg("--cache-dir").arg(&cache).args([
            "lookup",
            "--json",
            "--signature",
            sig,
            "--crash-title",
            title,
        ]));
        json(&out)["tests"][0]["classes"].clone()
    };
    let as_target = lookup("BUG: KASAN: slab-out-of-bounds in mm_init");
    assert!(as_target["matched"].as_u64().unwrap() >= 1, "{as_target}");
    let other = lookup("WARNING in unrelated_function");
    assert_eq!(other["other"], as_target["matched"], "{other} {as_target}");
}

#[test]
fn a_budget_ends_with_the_credible_set() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), REPO);
    let test = flaky_test(dir.path(), "noisy-test.sh", " 1");
    let cache = dir.path().join("cache");
    let mut c = bisect_whole(&cache, &repo, &test);
    c.args(["--runs", "10", "--json", "--max-builds", "2"])
        .args(["--crash-title", "BUG: KASAN: slab-out-of-bounds in mm_init"]);
    let s = json(&run_status(&mut c, 3));
    assert_eq!(s["outcome"]["kind"], "inconclusive", "{s}");
    assert!(
        s["search"]["undecided"].as_str().unwrap().contains("--max-builds"),
        "{s}"
    );
    let set = s["search"]["credible_set"].as_array().unwrap();
    assert!(set.len() > 1, "{s}");
    assert!(totals(&s, "builds_done") <= 2);
}

/// Tests that tell nothing (every run hangs) end the search, saying so and
/// with the credible set, instead of retrying the same commit forever.
#[test]
fn tests_that_tell_nothing_end_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(
        dir.path(),
        &[
            ("DEMO_COMMITS", "12"),
            ("DEMO_REGRESSION", "6"),
            ("DEMO_BREAK_FROM", "2"),
            ("DEMO_BREAK_TO", "3"),
        ],
    );
    let hang = hanging_test(dir.path());
    let cache = dir.path().join("cache");
    let mut c = bisect_whole(&cache, &repo, &hang);
    c.args([
        "--runs",
        "1",
        "--test-timeout",
        "0.2",
        "--json",
        "--crash-title",
        "BUG: x",
    ]);
    let start = std::time::Instant::now();
    let s = json(&run_status(&mut c, 3));
    assert!(start.elapsed() < std::time::Duration::from_secs(60));
    assert_eq!(s["outcome"]["kind"], "stopped", "{s}");
    assert!(
        s["outcome"]["reason"]
            .as_str()
            .unwrap()
            .contains("every test run timed out"),
        "the ending says what went wrong: {s}"
    );
    assert!(!s["search"]["credible_set"].as_array().unwrap().is_empty(), "{s}");
    assert_eq!(totals(&s, "runs_done"), 0, "timed-out runs are not recorded: {s}");
}

/// Without --crash-title, a bad commit whose every run hangs says so (not
/// "does not show one dominant crash in 0 runs").
#[test]
fn a_target_cannot_be_learned_from_runs_that_all_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(
        dir.path(),
        &[
            ("DEMO_COMMITS", "6"),
            ("DEMO_REGRESSION", "3"),
            ("DEMO_BREAK_FROM", "100"),
            ("DEMO_BREAK_TO", "100"),
        ],
    );
    let hang = hanging_test(dir.path());
    let cache = dir.path().join("cache");
    let mut c = bisect_whole(&cache, &repo, &hang);
    c.args(["--runs", "1", "--test-timeout", "0.2"]);
    let out = run_status(&mut c, 2);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("timed out") && err.contains("--crash-title"), "{err}");
}
