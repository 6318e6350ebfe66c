//! `kcache bisect` and `kcache exec` on real git histories built by real gcc.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `kcache bisect --policy classic`: the tests of the classic driver's own
/// guarantees (step-for-step reuse, resumption) pin it.
fn classic_cmd(cache: &Path, repo: &Path, good: &str, bad: &str, runs: u32) -> Command {
    let mut c = bisect_cmd(cache, repo, good, bad, runs);
    c.args(["--policy", "classic"]);
    c
}

const SMALL: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "60"),
    ("DEMO_REGRESSION", "41"),
    ("DEMO_BREAK_FROM", "15"),
    ("DEMO_BREAK_TO", "22"),
];

#[test]
fn finds_the_culprit_and_a_warm_rerun_builds_and_tests_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let log = dir.path().join("bisect.log");
    let cold = json(&run_ok(
        classic_cmd(&cache, &repo, &good, "HEAD", 10).arg("--log").arg(&log),
    ));
    let regression = commit_by_subject(&repo, "grow the pool");
    assert_eq!(cold["outcome"]["kind"], "culprit");
    assert_eq!(cold["outcome"]["commit"], regression.as_str());
    assert!(totals(&cold, "builds_done") > 0 && totals(&cold, "runs_done") > 0);
    let parent_sig = &cold["outcome"]["parents"][0]["signature"];
    assert!(
        parent_sig.is_string(),
        "the culprit's parent was built and signed: {cold}"
    );
    assert_ne!(&cold["outcome"]["signature"], parent_sig);

    let warm_log = dir.path().join("warm.log");
    let out = run_ok(
        classic_cmd(&cache, &repo, &good, "HEAD", 10)
            .arg("--log")
            .arg(&warm_log),
    );
    // --json: stdout is the JSON; a bisection that succeeds says nothing on stderr.
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let warm = json(&out);
    // The warm log says what it reused (and still reads back as the steps).
    let text = std::fs::read_to_string(&warm_log).unwrap();
    assert!(text.contains("# kcache: build reused from the cache"), "{text}");
    assert!(
        text.contains("runs reused from the cache (pooled on this kernel), 0 run now"),
        "{text}"
    );
    assert_log_matches(&warm_log, &warm);
    // -v shows the progress --json holds back.
    let verbose = run_ok(classic_cmd(&cache, &repo, &good, "HEAD", 10).arg("-v"));
    let progress = String::from_utf8_lossy(&verbose.stderr);
    assert!(progress.contains("build reused"), "{progress}");
    assert_eq!(warm["outcome"]["commit"], regression.as_str());
    assert_eq!(totals(&warm, "builds_done"), 0, "{warm}");
    assert_eq!(totals(&warm, "runs_done"), 0, "{warm}");
    // The cache builds in a private clone: the user's repository has no
    // worktree (or anything else) registered by kcache.
    let worktrees = git(&repo, &["worktree", "list", "--porcelain"]);
    assert_eq!(worktrees.matches("worktree ").count(), 1, "{worktrees}");
    assert_eq!(totals(&warm, "builds_reused"), totals(&cold, "steps"));

    // The syzkaller-style log reads back with kcache's own parser.
    assert_log_matches(&log, &cold);
    let parsed = kcache::syzlog::parse_file(&log).unwrap();
    assert_eq!(parsed.culprit(), Some(regression.as_str()));
    assert_eq!(
        parsed.culprit_signature.as_ref(),
        cold["outcome"]["signature"].as_str().map(String::from).as_ref()
    );
    assert_eq!(
        kcache::syzlog::analyze(&parsed).verdict,
        kcache::syzlog::ResultVerdict::Ok
    );
}

#[test]
fn a_related_range_reuses_the_builds_and_tests_it_shares() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let first = json(&run_ok(&mut classic_cmd(&cache, &repo, &good, "HEAD", 10)));
    // Another bisection of the same bug with a different bad end (seeds 001
    // and 002 share 13 commits this way).
    let second = json(&run_ok(&mut classic_cmd(&cache, &repo, &good, "HEAD~7", 10)));
    assert_eq!(second["outcome"]["commit"], first["outcome"]["commit"]);
    assert!(totals(&second, "builds_reused") > 0, "{second}");
    assert!(
        totals(&second, "builds_done") < totals(&first, "builds_done"),
        "{second}"
    );
}

#[test]
fn a_comment_only_commit_reuses_its_neighbours_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SMALL.to_vec();
    settings.push(("DEMO_AFTER_REGRESSION", "comment"));
    let repo = demo_repo(dir.path(), &settings);
    let cache = dir.path().join("cache");
    let regression = commit_by_subject(&repo, "grow the pool");
    let exec = |rev: &str| {
        git(&repo, &["checkout", "-q", "--detach", rev]);
        let out = kcache()
            .arg("--cache-dir")
            .arg(&cache)
            .args([
                "exec",
                "--build",
                "make -s vmlinux",
                "--test",
                &demo_test_script(),
                "--json",
            ])
            .current_dir(&repo)
            .output()
            .unwrap();
        (out.status.code(), json(&out))
    };
    let (code, first) = exec(&regression);
    assert_eq!(code, Some(1), "the regression is bad");
    assert!(first["runs_done"].as_u64().unwrap() > 0);
    let child = git(
        &repo,
        &[
            "rev-list",
            "--reverse",
            "--ancestry-path",
            &format!("{regression}..master"),
        ],
    );
    let comment_only = child.lines().next().unwrap().to_string();
    assert!(git(&repo, &["log", "-1", "--format=%s", &comment_only]).contains("comment"));
    let (code, second) = exec(&comment_only);
    assert_eq!(code, Some(1), "same kernel, same verdict");
    assert_eq!(second["build"], "built", "a different tree is a different build");
    assert_eq!(
        second["signature"], first["signature"],
        "a comment does not change the kernel"
    );
    assert_eq!(
        second["runs_done"], 0,
        "its test runs come from the regression's kernel"
    );
    assert!(second["runs_reused"].as_u64().unwrap() > 0);
}

/// A test that crashes on every third run overall, counted across all runs:
/// a flaky reproducer, deterministic enough to test with.
fn flaky_counter_script(dir: &Path) -> String {
    let script = dir.join("flaky-test.sh");
    let counter = dir.join("counter");
    std::fs::write(&counter, "0").unwrap();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{next}\nKCACHE_RUN=$((n - 1)) exec {t}\n",
            next = counter_next(&counter),
            t = demo_test_script()
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    script.display().to_string()
}

fn signature_of(repo: &Path, commit: &str, scratch: &Path) -> String {
    let tree = scratch.join(&commit[..12]);
    git(
        repo,
        &["worktree", "add", "-f", "--detach", &tree.display().to_string(), commit],
    );
    run_ok(Command::new("make").args(["-s", "vmlinux"]).current_dir(&tree));
    let out = run_ok(kcache().arg("sign").arg(tree.join("vmlinux")));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn a_flaky_test_never_makes_kcache_blame_a_no_op_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(
        dir.path(),
        &[
            ("DEMO_COMMITS", "60"),
            ("DEMO_REGRESSION", "31"),
            ("DEMO_BREAK_FROM", "10"),
            ("DEMO_BREAK_TO", "14"),
            ("DEMO_FLAKY", "1"),
            ("DEMO_AFTER_REGRESSION", "comment"),
        ],
    );
    let good = root_commit(&repo);

    // Plain git bisect with the same flaky test, one run per commit: it
    // blames a commit whose kernel is identical to its parent's (seed 002).
    let clone = dir.path().join("plain");
    run_ok(Command::new("git").args(["clone", "-q"]).arg(&repo).arg(&clone));
    let step = dir.path().join("plain-step.sh");
    let flaky = flaky_counter_script(dir.path());
    std::fs::write(
        &step,
        format!("#!/bin/sh\nmake -s vmlinux >/dev/null 2>&1 || exit 125\nKCACHE_ARTIFACTS=. {flaky} >/dev/null\n"),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&step));
    git(&clone, &["bisect", "start", "HEAD", &good]);
    let plain = run_ok(
        Command::new("git")
            .args(["bisect", "run"])
            .arg(&step)
            .current_dir(&clone),
    );
    let plain_out = String::from_utf8_lossy(&plain.stdout);
    let blamed = plain_out
        .lines()
        .find_map(|l| l.strip_suffix(" is the first bad commit"))
        .expect("plain bisect names a culprit")
        .to_string();
    let parent = git(&repo, &["rev-parse", &format!("{blamed}^")]);
    let scratch = dir.path().join("scratch");
    assert_eq!(
        signature_of(&repo, &blamed, &scratch),
        signature_of(&repo, &parent, &scratch),
        "the fixture must reproduce the seed-002 failure: plain bisect blames a no-op commit"
    );

    // kcache, with the same flaky test and the same single run per kernel.
    let flaky = flaky_counter_script(dir.path());
    let cache = dir.path().join("cache");
    let mut cmd = kcache();
    cmd.arg("--cache-dir")
        .arg(&cache)
        .args(["bisect", "--repo"])
        .arg(&repo)
        .args([
            "--good",
            &good,
            "--bad",
            "HEAD",
            "--build",
            "make -s vmlinux",
            "--test",
            &flaky,
            "--runs",
            "1",
            "--json",
        ]);
    let summary = json(&run_ended(&mut cmd));
    if summary["outcome"]["kind"] == "culprit" {
        let sig = &summary["outcome"]["signature"];
        for parent in summary["outcome"]["parents"].as_array().unwrap() {
            assert_ne!(&parent["signature"], sig, "kcache blamed a no-op commit: {summary}");
        }
        assert_ne!(summary["outcome"]["commit"], blamed.as_str());
    }

    // With syzbot's ten runs per kernel the flaky bug is caught, and pooled
    // evidence gives the regression and its comment-only child one verdict.
    let summary = json(&run_ok(&mut bisect_cmd(
        &dir.path().join("cache10"),
        &repo,
        &good,
        "HEAD",
        10,
    )));
    assert_eq!(
        summary["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str()
    );
}

#[test]
fn the_culprit_is_never_a_commit_with_its_parents_kernel() {
    // The user calls the regression good and its comment-only child bad: the
    // only candidate has the same kernel as a "good" commit, so there is no
    // commit to blame, and kcache says so instead of naming the comment.
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SMALL.to_vec();
    settings.push(("DEMO_AFTER_REGRESSION", "comment"));
    let repo = demo_repo(dir.path(), &settings);
    let regression = commit_by_subject(&repo, "grow the pool");
    let child = git(
        &repo,
        &[
            "rev-list",
            "--reverse",
            "--ancestry-path",
            &format!("{regression}..HEAD"),
        ],
    );
    let comment_only = child.lines().next().unwrap().to_string();
    let summary = json(&run_status(
        &mut classic_cmd(&dir.path().join("cache"), &repo, &regression, &comment_only, 10),
        3,
    ));
    assert_eq!(summary["outcome"]["kind"], "no_boundary", "{summary}");
    assert!(summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["purpose"] == "signature-check"));
}

#[test]
fn a_build_failure_range_gives_the_inconclusive_list() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(
        dir.path(),
        &[
            ("DEMO_COMMITS", "40"),
            ("DEMO_REGRESSION", "25"),
            ("DEMO_BREAK_FROM", "20"),
            ("DEMO_BREAK_TO", "30"),
        ],
    );
    let cache = dir.path().join("cache");
    let summary = json(&run_status(
        &mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 3),
        3,
    ));
    assert_eq!(summary["outcome"]["kind"], "inconclusive", "{summary}");
    let mut got: Vec<String> = summary["outcome"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = (20..=30).map(|n| commit_number(&repo, n)).collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "commits 20..29 cannot be built and 30 is the first bad one that can"
    );
    // Known-broken commits are skipped next time without building.
    let again = json(&run_status(
        &mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 3),
        3,
    ));
    assert_eq!(totals(&again, "builds_done"), 0);
}

#[test]
fn kill_9_mid_bisection_then_rerun_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    // Reference: an uninterrupted cold bisection in its own cache.
    let reference = json(&run_ok(&mut classic_cmd(
        &dir.path().join("ref"),
        &repo,
        &good,
        "HEAD",
        10,
    )));

    let cache = dir.path().join("cache");
    let mut child = classic_cmd(&cache, &repo, &good, "HEAD", 10)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill it once it has finished a few steps.
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut built = 0;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("built in") {
                built += 1;
                if built == 3 {
                    return;
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    while !reader.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let stats = json(&run_ok(
        kcache().arg("--cache-dir").arg(&cache).args(["stats", "--json"]),
    ));
    let builds_before = stats["records"]["builds"].as_u64().unwrap();
    let runs_before = stats["records"]["runs"].as_u64().unwrap();
    assert!(
        builds_before >= 2,
        "the killed bisection had stored some builds: {stats}"
    );

    let rerun = json(&run_ok(&mut classic_cmd(&cache, &repo, &good, "HEAD", 10)));
    assert_eq!(rerun["outcome"]["commit"], reference["outcome"]["commit"]);
    assert_eq!(
        totals(&rerun, "builds_done") + builds_before,
        totals(&reference, "builds_done"),
        "every build the killed run finished was reused"
    );
    assert_eq!(
        totals(&rerun, "runs_done") + runs_before,
        totals(&reference, "runs_done"),
        "every test run the killed run finished was reused"
    );
    let verify = kcache().arg("--cache-dir").arg(&cache).arg("verify").output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn git_bisect_run_kcache_exec_agrees_with_kcache_bisect() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    let cache = dir.path().join("cache");
    let summary = json(&run_ok(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 10)));

    let clone = dir.path().join("clone");
    run_ok(Command::new("git").args(["clone", "-q"]).arg(&repo).arg(&clone));
    git(&clone, &["bisect", "start", "HEAD", &good]);
    let out = run_ok(
        Command::new("git")
            .args(["bisect", "run", env!("CARGO_BIN_EXE_kcache"), "--cache-dir"])
            .arg(&cache)
            .args(["exec", "--build", "make -s vmlinux", "--test", &demo_test_script()])
            .current_dir(&clone),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let culprit = text
        .lines()
        .find_map(|l| l.strip_suffix(" is the first bad commit"))
        .expect(&text);
    assert_eq!(summary["outcome"]["commit"], culprit);
}

#[test]
fn a_relative_cache_dir_works_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    let mut cmd = bisect_cmd(Path::new("relative-cache"), &repo, &good, "HEAD", 3);
    let summary = json(&run_ok(cmd.current_dir(dir.path())));
    assert_eq!(
        summary["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str()
    );
    assert!(dir.path().join("relative-cache/index").is_dir());
}

#[test]
fn two_bisections_of_one_repository_share_the_worktree_safely() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let regression = commit_by_subject(&repo, "grow the pool");
    let children: Vec<_> = [("HEAD", 10), ("HEAD~3", 7)]
        .iter()
        .map(|(bad, runs)| spawn_piped(&mut bisect_cmd(&cache, &repo, &good, bad, *runs)))
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(json(&out)["outcome"]["commit"], regression.as_str());
    }
}

#[test]
fn a_test_the_shell_cannot_run_stops_the_bisection_and_records_no_crash() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let out = kcache()
        .arg("--cache-dir")
        .arg(&cache)
        .args(["bisect", "--repo"])
        .arg(&repo)
        .args(["--good", &good, "--bad", "HEAD", "--build", "make -s vmlinux"])
        .args(["--test", "scripts/no-such-test.sh", "--runs", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("exit status 127") && stderr.contains("absolute path"),
        "{stderr}"
    );
    let stats = run_ok(kcache().arg("--cache-dir").arg(&cache).args(["stats", "--json"]));
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["records"]["runs"], 0, "{stats}");
}
