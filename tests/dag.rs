//! Bisecting real git DAGs end to end (issue 22): histories with topic
//! branches merged `--no-ff`, criss-cross merges, a merge that is itself the
//! culprit, a `--good` off the ancestry, fix bisections and a good end found
//! over release tags. Each history is made here with real git; each kernel
//! is a real gcc build of a toy program whose run prints a BUG line when the
//! bug is in; every bisection runs twice, the second time from the cache
//! alone (0 builds, 0 runs).

mod common;

use std::path::{Path, PathBuf};

use common::toy::*;
use common::*;

/// A test that reports the toy's BUG every time (`flaky`: see
/// [`flaky_test`]).
fn test_script(dir: &Path, flaky: bool) -> PathBuf {
    match flaky {
        true => flaky_test(dir, "flaky-test.sh", ""),
        false => counter_test(dir, "test.sh", 0, 1000, ""),
    }
}

/// `kcache bisect` of `h` with the toy build and `test`; `args` are the
/// ones that differ per case.
fn bisect_plain(cache: &Path, h: &History, test: &Path, args: &[&str]) -> std::process::Command {
    let mut c = kcache();
    c.arg("--cache-dir")
        .arg(cache)
        .args(["bisect", "--repo"])
        .arg(&h.repo)
        .args(["--build", "make -s vmlinux", "--test", test.to_str().unwrap()])
        .args(args);
    c
}

/// The same with `--json`.
fn bisect(cache: &Path, h: &History, test: &Path, args: &[&str]) -> std::process::Command {
    let mut c = bisect_plain(cache, h, test, args);
    c.arg("--json");
    c
}

/// The text summary of a (warm) bisection.
fn bisect_text(cache: &Path, h: &History, test: &Path, args: &[&str]) -> String {
    String::from_utf8_lossy(&run_ok(&mut bisect_plain(cache, h, test, args)).stdout).into_owned()
}

/// Runs a bisection that must end with a culprit, then again warm: the
/// same answer from the cache alone. Returns the first summary.
/// A history with one mainline commit to branch from: the history, its
/// root and that commit.
fn branching(dir: &Path) -> (History, String, String) {
    let mut h = History::new(dir);
    let root = h.head();
    let base = h.change("mainline 1");
    (h, root, base)
}

/// [`bisect_twice`] in `dir`'s cache with the plain test, from `root` to
/// HEAD, 3 runs a kernel.
fn bisect_from(dir: &Path, h: &History, root: &str) -> serde_json::Value {
    let test = test_script(dir, false);
    bisect_twice(
        &dir.join("cache"),
        h,
        &test,
        &["--good", root, "--bad", "HEAD", "--runs", "3"],
    )
}

fn bisect_twice(cache: &Path, h: &History, test: &Path, args: &[&str]) -> serde_json::Value {
    let cold = json(&run_ok(&mut bisect(cache, h, test, args)));
    assert_eq!(cold["outcome"]["kind"], "culprit", "{cold}");
    let warm = json(&run_ok(&mut bisect(cache, h, test, args)));
    assert_eq!(warm["outcome"]["commit"], cold["outcome"]["commit"], "{warm}");
    assert_eq!(totals(&warm, "builds_done"), 0, "warm rerun builds nothing: {warm}");
    assert_eq!(totals(&warm, "runs_done"), 0, "warm rerun runs nothing: {warm}");
    cold
}

fn merged_by(s: &serde_json::Value) -> Vec<String> {
    s["outcome"]["merged_by"]
        .as_array()
        .map(|a| a.iter().map(|m| m["commit"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Mainline with two topic branches merged `--no-ff`; the bug is in the
/// middle of the second one. Returns (history, root, culprit, its merge).
fn topic_history(dir: &Path) -> (History, String, String, String) {
    let mut h = History::new(dir);
    let root = h.head();
    let fork = h.change("mainline 1");
    h.change("mainline 2");
    h.branch("topic-a", &fork);
    h.change("topic-a 1");
    h.change("topic-a 2");
    h.branch("topic-b", &fork);
    h.change("topic-b 1");
    h.change("topic-b 2");
    let culprit = h.bug("topic-b 3: the regression");
    h.change("topic-b 4");
    h.change("topic-b 5");
    h.checkout("master");
    h.merge("topic-a", "Merge branch 'topic-a'");
    h.change("mainline 3");
    let merge = h.merge("topic-b", "Merge branch 'topic-b'");
    h.change("mainline 4");
    h.change("mainline 5");
    (h, root, culprit, merge)
}

#[test]
fn a_culprit_inside_a_merged_branch_is_named_with_the_merge_it_came_by() {
    let dir = tempfile::tempdir().unwrap();
    let (h, root, culprit, merge) = topic_history(dir.path());
    let test = test_script(dir.path(), false);
    let cache = dir.path().join("cache");
    let s = bisect_twice(&cache, &h, &test, &["--good", &root, "--bad", "HEAD", "--runs", "3"]);
    assert_eq!(s["outcome"]["commit"], culprit.as_str(), "{s}");
    assert_eq!(merged_by(&s), vec![merge.clone()], "{s}");
    assert!(s["search"]["probability"].as_f64().unwrap() >= 0.95, "{s}");
    // --first-parent keeps the line search: the merge is as far as it sees.
    let fp = json(&run_ok(&mut bisect(
        &cache,
        &h,
        &test,
        &["--good", &root, "--bad", "HEAD", "--runs", "3", "--first-parent"],
    )));
    assert_eq!(fp["outcome"]["commit"], merge.as_str(), "{fp}");
    // The classic policy (git's own selection) agrees, merge path included.
    let classic = json(&run_ok(&mut bisect(
        &cache,
        &h,
        &test,
        &["--good", &root, "--bad", "HEAD", "--runs", "3", "--policy", "classic"],
    )));
    assert_eq!(classic["outcome"]["commit"], culprit.as_str(), "{classic}");
    assert_eq!(merged_by(&classic), vec![merge.clone()], "{classic}");
    // The text and the HTML report say where it came in.
    let html = dir.path().join("report.html");
    let text = bisect_text(
        &cache,
        &h,
        &test,
        &[
            "--good",
            &root,
            "--bad",
            "HEAD",
            "--runs",
            "3",
            "--report",
            html.to_str().unwrap(),
        ],
    );
    assert!(text.contains(&format!("came in by merge {merge}")), "{text}");
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(html.contains("Came in by") && html.contains(&merge[..12]), "{html}");
    validate_all(&cache);
}

#[test]
fn a_flaky_culprit_inside_a_merged_branch_with_unrelated_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let (h, root, culprit, merge) = topic_history(dir.path());
    let test = test_script(dir.path(), true);
    let cache = dir.path().join("cache");
    let s = bisect_twice(
        &cache,
        &h,
        &test,
        &["--good", &root, "--bad", "HEAD", "--runs", "10", "--crash-title", TITLE],
    );
    assert_eq!(s["outcome"]["commit"], culprit.as_str(), "{s}");
    assert_eq!(merged_by(&s), vec![merge], "{s}");
}

#[test]
fn criss_cross_merges() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root, base) = branching(dir.path());
    h.branch("a", &base);
    let a1 = h.change("a 1");
    h.branch("b", &base);
    let b1 = h.change("b 1");
    // Criss-cross: a merges b1, b merges a1.
    h.checkout("a");
    git(&h.repo, &["merge", "-q", "--no-ff", "-m", "a: merge b 1", &b1]);
    let culprit = h.bug("a 2: the regression");
    h.change("a 3");
    h.checkout("b");
    git(&h.repo, &["merge", "-q", "--no-ff", "-m", "b: merge a 1", &a1]);
    h.change("b 2");
    h.checkout("master");
    h.change("mainline 2");
    h.merge("b", "Merge branch 'b'");
    let merge_a = h.merge("a", "Merge branch 'a'");
    h.change("mainline 3");
    let s = bisect_from(dir.path(), &h, &root);
    assert_eq!(s["outcome"]["commit"], culprit.as_str(), "{s}");
    assert_eq!(merged_by(&s), vec![merge_a], "{s}");
}

#[test]
fn a_merge_is_the_culprit_when_each_branch_alone_is_fine() {
    let dir = tempfile::tempdir().unwrap();
    let (mut h, root, base) = branching(dir.path());
    h.branch("feature-a", &base);
    h.change("a 1");
    h.write("a.c", "int feature_a = 1;\n", "a 2: feature a");
    h.branch("feature-b", &base);
    h.change("b 1");
    h.write("b.c", "int feature_b = 1;\n", "b 2: feature b");
    h.checkout("master");
    h.change("mainline 2");
    h.merge("feature-a", "Merge branch 'feature-a'");
    let combined = h.merge("feature-b", "Merge branch 'feature-b'");
    h.change("mainline 3");
    let test = test_script(dir.path(), false);
    let cache = dir.path().join("cache");
    let s = bisect_twice(&cache, &h, &test, &["--good", &root, "--bad", "HEAD", "--runs", "3"]);
    assert_eq!(s["outcome"]["commit"], combined.as_str(), "{s}");
    assert_eq!(s["outcome"]["combined"], true, "every parent good: {s}");
    assert_eq!(s["outcome"]["parents"].as_array().unwrap().len(), 2, "{s}");
    // In words, too.
    let text = bisect_text(&cache, &h, &test, &["--good", &root, "--bad", "HEAD", "--runs", "3"]);
    assert!(text.contains("comes from combining the branches"), "{text}");
}

#[test]
fn a_good_off_the_ancestry_has_its_merge_base_tested_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new(dir.path());
    let early = h.change("mainline 1");
    h.change("mainline 2");
    let culprit = h.bug("mainline 3: the regression");
    h.change("mainline 4");
    h.change("mainline 5");
    // A side branch forked before the regression: its merge base is good.
    h.branch("old-side", &early);
    let side_good = h.change("old side 1");
    // A side branch forked after the regression that fixed it: its merge
    // base crashes, so it is no good end for a cause bisection.
    h.branch("fixed-side", &culprit);
    let fixed = h.delete("bug.c", "fixed side: drop the bug");
    h.checkout("master");
    let test = test_script(dir.path(), false);
    let cache = dir.path().join("cache");
    let s = bisect_twice(
        &cache,
        &h,
        &test,
        &["--good", &side_good, "--bad", "master", "--runs", "3"],
    );
    assert_eq!(s["outcome"]["commit"], culprit.as_str(), "{s}");
    assert!(
        s["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("merge base")),
        "{s}"
    );
    // Today's search tested the oldest commit forever; now: a clear error
    // that suggests --fix.
    let out = run_status(
        &mut bisect(
            &cache,
            &h,
            &test,
            &["--good", &fixed, "--bad", "master", "--runs", "3", "--max-runs", "100"],
        ),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("merge base") && err.contains("--fix"), "{err}");
}

#[test]
fn a_fix_inside_a_branch_is_found_and_wrong_ends_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new(dir.path());
    h.change("mainline 1");
    let old = h.bug("mainline 2: the regression");
    h.change("mainline 3");
    h.branch("fixes", &old);
    h.change("fixes 1");
    let fix = h.delete("bug.c", "fixes 2: the fix");
    h.change("fixes 3");
    h.checkout("master");
    h.change("mainline 4");
    let merge = h.merge("fixes", "Merge branch 'fixes'");
    h.change("mainline 5");
    let test = test_script(dir.path(), false);
    let cache = dir.path().join("cache");
    let s = bisect_twice(
        &cache,
        &h,
        &test,
        &["--fix", "--bad", &old, "--good", "master", "--runs", "3"],
    );
    assert_eq!(s["outcome"]["commit"], fix.as_str(), "{s}");
    assert_eq!(s["direction"], "fix", "{s}");
    assert_eq!(merged_by(&s), vec![merge], "{s}");
    // The text says "first fixed commit".
    let text = bisect_text(
        &cache,
        &h,
        &test,
        &["--fix", "--bad", &old, "--good", "master", "--runs", "3"],
    );
    assert!(text.contains(&format!("first fixed commit: {fix}")), "{text}");
    // Its --log says it as syzkaller's fix bisection logs do.
    assert_fix_log_wording(dir.path(), &h, &test, &old, &fix);
    // A fix bisection the wrong way round is refused.
    let out = run_status(
        &mut bisect(
            &cache,
            &h,
            &test,
            &["--fix", "--bad", "master", "--good", &old, "--runs", "3"],
        ),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not an ancestor"), "{err}");
    // A cause bisection whose good descends from its bad suggests --fix.
    let out = run_status(
        &mut bisect(&cache, &h, &test, &["--bad", &old, "--good", "master", "--runs", "3"]),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--fix"), "{err}");
}

/// A cold fix bisection with `--log` (a cache of its own, so every step is
/// tested now): syzkaller's words for a fix bisection. The header says
/// "fixing commit since"; git's verdicts are as syzkaller drives git for
/// one (a commit that still crashes is "good", a fixed one "bad"); git's
/// "is the first bad commit" names the fix and the trailer says "first good
/// commit", never "first bad commit:".
fn assert_fix_log_wording(dir: &Path, h: &History, test: &Path, old: &str, fix: &str) {
    let log = dir.join("fix.log");
    let cache = dir.join("cache-log");
    run_ok(&mut bisect(
        &cache,
        h,
        test,
        &[
            "--fix",
            "--bad",
            old,
            "--good",
            "master",
            "--runs",
            "3",
            "--log",
            log.to_str().unwrap(),
        ],
    ));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with(&format!("bisecting fixing commit since {old}\n")),
        "{text}"
    );
    assert!(text.contains(&format!("{fix} is the first bad commit")), "{text}");
    assert!(
        text.contains(&format!("first good commit: {fix} fixes 2: the fix")),
        "{text}"
    );
    assert!(!text.contains("first bad commit: "), "{text}");
    // Each step's verdict against its runs: crashed means "good" here.
    let mut crashed = false;
    let mut verdicts = 0;
    for line in text.lines() {
        if line.starts_with("testing commit ") {
            crashed = false;
        } else if line.contains(&format!("crashed: {TITLE}")) {
            crashed = true;
        } else if let Some(rest) = line.strip_prefix("# git bisect ") {
            let word = rest.split(' ').next().unwrap();
            assert_eq!(word, if crashed { "good" } else { "bad" }, "{line} in\n{text}");
            verdicts += 1;
        }
    }
    assert!(verdicts >= 2, "{text}");
    // kcache's own reader takes it for a fix bisection naming the fix.
    let read = kcache::syzlog::parse(text.as_bytes()).unwrap();
    assert_eq!(read.direction, kcache::syzlog::Direction::Fix);
    assert_eq!(read.culprit(), Some(fix), "{:?}", read.ending);
}

#[test]
fn without_good_the_search_walks_back_over_release_tags() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new(dir.path());
    h.change("1");
    h.tag("v0.1");
    h.change("2");
    h.tag("v0.2");
    h.change("3");
    h.tag("v0.3-rc1");
    let culprit = h.bug("4: the regression");
    h.change("5");
    h.tag("v0.3");
    h.change("6");
    let test = test_script(dir.path(), false);
    let cache = dir.path().join("cache");
    let s = bisect_twice(&cache, &h, &test, &["--bad", "HEAD", "--runs", "3"]);
    assert_eq!(s["outcome"]["commit"], culprit.as_str(), "{s}");
    let v02 = git(&h.repo, &["rev-parse", "v0.2^{commit}"]);
    assert_eq!(s["good"][0], v02.as_str(), "{s}");
    let notes = strings(&s["notes"]);
    let walk = notes
        .iter()
        .find(|n| n.contains("release tags"))
        .expect("the walk is noted");
    assert!(walk.contains("v0.3 (") && walk.contains("stopped at v0.2"), "{walk}");
    assert!(!walk.contains("-rc"), "release candidates are skipped: {walk}");

    // The warm rerun resumed the cold bisection (the same question: no
    // --good, the same tags), as every warm rerun does, and says so.
    let listed = json(&run_ok(kc(&cache).args(["bisections", "--json"])));
    let ids: Vec<&str> = listed["bisections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    let again = run_ok(&mut bisect_plain(&cache, &h, &test, &["--bad", "HEAD", "--runs", "3"]));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        ids.iter().any(|id| err.contains(&format!("resuming bisection {id}"))),
        "{err}"
    );
    // A --good given by hand asks another question: no resumption.
    let v01 = git(&h.repo, &["rev-parse", "v0.1^{commit}"]);
    let other = run_ok(&mut bisect_plain(
        &cache,
        &h,
        &test,
        &["--good", &v01, "--bad", "HEAD", "--runs", "3"],
    ));
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(!err.contains("resuming bisection"), "{err}");

    // No tag in reach: a clear error asking for --good.
    let out = run_status(
        &mut bisect(
            &cache,
            &h,
            &test,
            &["--bad", "HEAD", "--runs", "3", "--good-tags", "release-*"],
        ),
        2,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("give --good"), "{err}");
}

/// A `--good` that really is bad (a commit after the regression) ends the
/// search quickly, saying so, instead of testing the oldest commit forever.
#[test]
fn a_good_end_that_crashes_stops_the_search_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new(dir.path());
    h.change("1");
    h.bug("2: the regression");
    let wrong_good = h.change("3");
    h.change("4");
    h.change("5");
    let test = test_script(dir.path(), false);
    let cache = dir.path().join("cache");
    let start = std::time::Instant::now();
    let out = bisect(
        &cache,
        &h,
        &test,
        &["--good", &wrong_good, "--bad", "HEAD", "--runs", "3"],
    )
    .output()
    .unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(120));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("good end reproduces the crash") || text.contains("is not good"),
        "{text}"
    );
}

/// The whole lifecycle (record setup, search, record kept) through the
/// library, without the binary: what the CLI's `bisect` runs.
#[test]
fn a_whole_bisection_runs_through_the_library() {
    use kcache::bisect::{self, entry};
    let dir = tempfile::tempdir().unwrap();
    let (h, root, culprit, merge) = topic_history(dir.path());
    let test = test_script(dir.path(), false);
    let cache = kcache::store::Cache::open(&dir.path().join("cache")).unwrap();
    let repo = kcache::git::Repo::open(&h.repo).unwrap();
    let recipe = kcache::exec::Recipe {
        runs: 3,
        ..kcache::exec::Recipe::new("make -s vmlinux", test.display().to_string(), "gcc (the test's)")
    };
    let mut evaluator = kcache::exec::CommitEvaluator::new(
        recipe,
        bisect::worktree_dir(&cache, repo.dir()),
        bisect::state_dir(&cache, repo.dir()),
        false,
    )
    .unwrap();
    let opts = bisect::Options {
        goods: vec![root],
        bad: "HEAD".into(),
        direction: kcache::search::graph::Direction::Cause,
        good_tags: "v[0-9]*".into(),
        first_parent: false,
        log: None,
        predict: true,
        confirm: false,
        confirm_runs: None,
    };
    let finished = entry::run(
        &repo,
        &cache,
        &mut evaluator,
        &opts,
        bisect::Policy::Bayes,
        &bisect::noisy::NoisyOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    match &finished.summary.outcome {
        bisect::Outcome::Culprit { commit, merged_by, .. } => {
            assert_eq!(commit.as_str(), culprit);
            assert_eq!(
                merged_by.iter().map(|m| m.commit.to_string()).collect::<Vec<_>>(),
                vec![merge.clone()]
            );
        }
        other => panic!("{other:?}"),
    }
    let culprit_row = finished.record.culprit.as_ref().expect("a culprit row");
    assert_eq!(culprit_row.merged_by[0].commit.as_str(), merge);
    let kept: Vec<(kcache::store::BisectionId, bisect::record::BisectionRecord)> = cache.bisections().unwrap();
    assert_eq!(kept.len(), 1, "the record is kept");
}
