//! Faults a new user runs into (issue 11): transient build failures, builds
//! and tests that hang, concurrent bisections of one range, a damaged or
//! read-only index, a silent remote, bad arguments. Real git, real gcc,
//! real RocksDB, a real (silent) TCP server.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SMALL: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "40"),
    ("DEMO_REGRESSION", "25"),
    ("DEMO_BREAK_FROM", "5"),
    ("DEMO_BREAK_TO", "7"),
];

fn stats(cache: &Path) -> serde_json::Value {
    json(&run_ok(kc(cache).args(["stats", "--json"])))
}

fn counter(stats: &serde_json::Value, name: &str) -> i64 {
    stats["counters"][name].as_i64().unwrap_or(0)
}

/// A bisection of the demo range with this build command.
fn bisect_with_build(cache: &Path, repo: &Path, build: &str, extra: &[&str]) -> Command {
    let mut c = bisect_with(cache, repo, &root_commit(repo), "HEAD", build, &demo_test_script());
    c.args(["--runs", "2", "--json"]).args(extra);
    // The stop-early rule and the failure bookkeeping are the classic
    // driver's; the noisy search is run explicitly where it is tested.
    if !extra.contains(&"bayes") {
        c.args(["--policy", "classic"]);
    }
    c
}

#[test]
fn a_missing_tool_is_not_cached_and_stops_the_bisection_early() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    // `make` runs a compiler that does not exist: exit 127 inside make.
    let out = run_status(
        &mut bisect_with_build(&cache, &repo, "make -s vmlinux CC=no-such-compiler-kcache", &[]),
        2,
    );
    let err = stderr(&out);
    assert!(
        err.contains("stopping early: 3 builds in a row failed the same way"),
        "{err}"
    );
    assert!(err.contains("a command was not found"), "{err}");
    assert!(err.contains("full log:"), "the log's path is shown: {err}");
    assert_eq!(stats(&cache)["records"]["builds"], 0, "nothing cached: {err}");
    // The noisy search builds the bad commit first (to learn the target) and
    // stops there, saying why.
    let out = run_status(
        &mut bisect_with_build(
            &cache,
            &repo,
            "make -s vmlinux CC=no-such-compiler-kcache",
            &["--policy", "bayes"],
        ),
        2,
    );
    let err = stderr(&out);
    assert!(
        err.contains("does not build: exit status 2: a command was not found"),
        "{err}"
    );
    assert_eq!(stats(&cache)["records"]["builds"], 0, "nothing cached: {err}");

    // Fixed: every commit builds; nothing was remembered as broken.
    let summary = json(&run_ok(&mut bisect_with_build(&cache, &repo, "make -s vmlinux", &[])));
    assert_eq!(summary["outcome"]["commit"], commit_number(&repo, 25).as_str());
    let err = stderr(&run_ok(&mut bisect_with_build(&cache, &repo, "make -s vmlinux", &[])));
    assert!(!err.contains("known to fail"), "{err}");
}

#[test]
fn a_wrong_artifact_name_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let out = run_status(
        &mut bisect_with_build(&cache, &repo, "make -s vmlinux", &["--artifact", "vmlinux.typo"]),
        2,
    );
    let err = stderr(&out);
    assert!(err.contains("produced no vmlinux.typo"), "{err}");
    assert!(err.contains("not the commit's fault"), "{err}");
    assert_eq!(stats(&cache)["records"]["builds"], 0);
}

#[test]
fn recorded_failures_are_retried_on_request_and_can_be_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let flag = dir.path().join("fixed");
    // A compiler error until `fixed` exists: deterministic as far as kcache can tell.
    let build = format!(
        "test -e {} || {{ echo 'kernel/sched.c:1:1: error: expected identifier'; exit 1; }}; make -s vmlinux",
        flag.display()
    );
    let out = run_status(&mut bisect_with_build(&cache, &repo, &build, &[]), 2);
    assert!(
        stderr(&out).contains("the bad commit's own build included"),
        "{}",
        stderr(&out)
    );
    let recorded = stats(&cache)["records"]["builds"].as_u64().unwrap();
    assert!(recorded >= 4, "compiler errors are recorded: {recorded}");

    std::fs::write(&flag, "").unwrap();
    // Without --retry-failed the recorded failures stand.
    let out = run_status(&mut bisect_with_build(&cache, &repo, &build, &[]), 2);
    assert!(stderr(&out).contains("known to fail; --retry-failed builds it again"));
    // With it, they are built again and the culprit is found.
    let summary = json(&run_ok(&mut bisect_with_build(
        &cache,
        &repo,
        &build,
        &["--retry-failed"],
    )));
    assert_eq!(summary["outcome"]["commit"], commit_number(&repo, 25).as_str());

    // `forget` drops a build record; the next bisection builds that commit again.
    // The culprit: every bisection of the range evaluates it.
    let key = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["commit"] == summary["outcome"]["commit"])
        .map(|s| s["build_key"].as_str().unwrap().to_string())
        .unwrap();
    let out = run_ok(kc(&cache).args(["forget", "--build-key", &key, "--json"]));
    assert_eq!(json(&out)["forgotten"], 1);
    run_status(kc(&cache).args(["forget", "--build-key", &key]), 1);
    let again = json(&run_ok(&mut bisect_with_build(&cache, &repo, &build, &[])));
    let step = again["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["build_key"] == key.as_str())
        .unwrap_or_else(|| panic!("the forgotten commit is evaluated again: {again}"));
    assert_eq!(step["build"], "built", "{again}");
}

#[test]
fn a_hung_build_and_a_hung_test_time_out() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let start = Instant::now();
    let out = run_status(
        &mut bisect_with_build(&cache, &repo, "sleep 60", &["--build-timeout", "0.5"]),
        2,
    );
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(stderr(&out).contains("timed out after 0.5s"), "{}", stderr(&out));
    assert_eq!(stats(&cache)["records"]["builds"], 0);

    // Every run hangs: no information, so every step is skipped, nothing
    // recorded as a crash or as ok.
    let hang = dir.path().join("hang.sh");
    std::fs::write(&hang, "#!/bin/sh\nsleep 60\n").unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&hang));
    let good = commit_number(&repo, 20);
    let mut cmd = bisect_with(&cache, &repo, &good, "HEAD", "make -s vmlinux", hang.to_str().unwrap());
    // Without --json: the timeouts are progress lines, which --json holds back.
    cmd.args(["--runs", "1", "--test-timeout", "0.3", "--policy", "classic"]);
    let start = Instant::now();
    let out = run_status(&mut cmd, 3);
    assert!(start.elapsed() < Duration::from_secs(60));
    assert!(stderr(&out).contains("timed out after 0.3s"), "{}", stderr(&out));
    assert_eq!(stats(&cache)["records"]["runs"], 0);
}

/// `kill -9` of kcache takes the test it was running (and the test's
/// children) with it.
#[test]
fn a_killed_kcache_leaves_no_test_running() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let pids = dir.path().join("pids");
    let test = dir.path().join("hang.sh");
    std::fs::write(
        &test,
        format!("#!/bin/sh\nsleep 300 &\necho $! >> {}\nwait\n", pids.display()),
    )
    .unwrap();
    let mut child = bisect_until(&cache, &repo, &test, &pids);
    let pid = std::fs::read_to_string(&pids)
        .expect("the test started")
        .trim()
        .to_string();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(&pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(&pid), "the test's sleep {pid} outlived kcache");

    // The artifacts copy that test ran in is removed by the next kcache.
    let stale = || {
        std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("artifacts-"))
            .count()
    };
    assert_eq!(stale(), 1, "the killed test's artifacts are left behind");
    run_ok(kc(&cache).args(["gc", "--max-size", "10G"]));
    assert_eq!(stale(), 0);
}

/// A bisection keeps the index open between its operations (a lease), so
/// a process that needs the index while that bisection waits for a test
/// must get it on request, not after the bisection ends or the lock times out.
#[test]
fn a_bisection_holding_the_index_gives_it_up_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let started = dir.path().join("started");
    let test = dir.path().join("slow.sh");
    std::fs::write(&test, format!("#!/bin/sh\ntouch {}\nsleep 120\n", started.display())).unwrap();
    let mut child = bisect_until(&cache, &repo, &test, &started);
    assert!(started.exists(), "the bisection reached its first test");
    let asked = Instant::now();
    let s = stats(&cache);
    let waited = asked.elapsed();
    let done = kc(&cache)
        .args(["forget", "--build-key", &"0".repeat(64)])
        .output()
        .unwrap();
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(still_running, "the bisection was still waiting for its test");
    assert!(s["records"]["builds"].as_u64().unwrap() >= 1, "{s}");
    assert!(
        waited < Duration::from_secs(20),
        "stats waited {waited:?} for the index"
    );
    assert_eq!(
        done.status.code(),
        Some(1),
        "a write got the index too: {}",
        stderr(&done)
    );
}

/// Starts a bisection of the whole demo history with the test script
/// `test` (made executable) and waits until `marker` exists (the test ran).
fn bisect_until(cache: &Path, repo: &Path, test: &Path, marker: &Path) -> std::process::Child {
    run_ok(Command::new("chmod").arg("+x").arg(test));
    let child = bisect_whole(cache, repo, test)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !marker.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn alive(pid: &str) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim_start().chars().next();
    state.is_some() && state != Some('Z')
}

/// Bisections of one range at once, from one repository and from separate
/// clones, do the builds and test runs of one bisection between them.
#[test]
fn concurrent_bisections_of_one_range_build_and_test_each_kernel_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    let reference = json(&run_ok(
        bisect_cmd(&dir.path().join("ref"), &repo, &good, "HEAD", 4).args(["--policy", "classic"]),
    ));
    let (builds, runs) = (totals(&reference, "builds_done"), totals(&reference, "runs_done"));

    let cache = dir.path().join("cache");
    let mut repos: Vec<PathBuf> = vec![repo.clone(), repo.clone()];
    for i in 0..2 {
        let clone = dir.path().join(format!("clone{i}"));
        run_ok(Command::new("git").args(["clone", "-q"]).arg(&repo).arg(&clone));
        repos.push(clone);
    }
    let children: Vec<_> = repos
        .iter()
        .map(|r| spawn_piped(bisect_cmd(&cache, r, &good, "HEAD", 4).args(["--policy", "classic"])))
        .collect();
    let mut built = 0;
    let mut ran = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let s = json(&out);
        assert_eq!(s["outcome"]["commit"], reference["outcome"]["commit"]);
        built += totals(&s, "builds_done");
        ran += totals(&s, "runs_done");
    }
    assert_eq!(built, builds, "4 bisections together built each kernel once");
    assert_eq!(ran, runs, "and ran the test as often as one bisection");
    assert_eq!(counter(&stats(&cache), "build_misses"), builds as i64);
}

fn index_files(cache: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join("index"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// A cache with a finished bisection in it.
fn bisected_cache(dir: &Path) -> (PathBuf, PathBuf) {
    let repo = demo_repo(dir, SMALL);
    let cache = dir.join("cache");
    run_ok(&mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 2));
    (repo, cache)
}

#[test]
fn a_truncated_current_file_is_reported_and_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, cache) = bisected_cache(dir.path());
    let builds = stats(&cache)["records"]["builds"].as_u64().unwrap();
    std::fs::write(cache.join("index/CURRENT"), "").unwrap();
    for args in [&["stats"][..], &["verify"], &["lookup", "--signature", &"a".repeat(64)]] {
        let out = run_status(kc(&cache).args(args), 2);
        let err = stderr(&out);
        assert!(err.contains("is damaged"), "{args:?}: {err}");
        assert!(
            err.contains("kcache verify --repair") && err.contains(".damaged"),
            "{err}"
        );
    }
    let out = run_status(&mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 2), 2);
    assert!(stderr(&out).contains("--no-cache"), "{}", stderr(&out));
    let out = run_status(kc(&cache).args(["verify", "--repair", "--json"]), 1);
    let report = json(&out);
    assert_eq!(report["repaired"], true, "{report}");
    assert_eq!(report["salvage"]["kept"]["builds"], builds, "{report}");
    run_ok(kc(&cache).args(["verify"]));
    let warm = json(&run_ok(&mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 2)));
    assert_eq!(totals(&warm, "builds_done"), 0);
}

#[test]
fn a_deleted_sst_file_is_repaired_and_the_loss_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, cache) = bisected_cache(dir.path());
    let ssts = index_files(&cache, "sst");
    assert!(!ssts.is_empty());
    for f in &ssts {
        std::fs::remove_file(f).unwrap();
    }
    let out = run_status(kc(&cache).args(["stats"]), 2);
    assert!(stderr(&out).contains("is damaged"), "{}", stderr(&out));
    let report = json(&run_status(kc(&cache).args(["verify", "--repair", "--json"]), 1));
    assert_eq!(report["repaired"], true, "{report}");
    // Build records lived in the deleted files: their artifacts are named by
    // no record now, and the report gives each one's kernel signature.
    let orphans = report["salvage"]["orphan_blobs"].as_array().unwrap();
    assert!(
        orphans
            .iter()
            .any(|o| o["signature"].as_str().is_some_and(|s| s.len() == 64)),
        "{report}"
    );
    run_ok(kc(&cache).args(["verify"]));
    // The cache works again (rebuilding what was lost).
    let again = json(&run_ok(&mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 2)));
    assert_eq!(again["outcome"]["commit"], commit_number(&repo, 25).as_str());
}

#[test]
fn damage_inside_an_sst_file_is_found_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cache) = bisected_cache(dir.path());
    // Overwrite the middle of every table file: data blocks of every column
    // family, the counters' included.
    for f in index_files(&cache, "sst") {
        let mut bytes = std::fs::read(&f).unwrap();
        let mid = bytes.len() / 3;
        let end = (mid + 64).min(bytes.len());
        for b in &mut bytes[mid..end] {
            *b ^= 0x5a;
        }
        std::fs::write(&f, bytes).unwrap();
    }
    let out = kc(&cache).args(["verify"]).output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "verify must not call a damaged index healthy"
    );
    let out = kc(&cache).args(["verify", "--repair"]).output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 1)), "{}", stderr(&out));
    run_ok(kc(&cache).args(["verify"]));
    run_ok(kc(&cache).args(["stats"]));
}

#[test]
fn a_bisection_can_run_without_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let mut cmd = bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 2);
    cmd.arg("--no-cache");
    let s = json(&run_ok(&mut cmd));
    assert_eq!(s["outcome"]["commit"], commit_number(&repo, 25).as_str());
    assert!(!cache.exists(), "--no-cache writes nothing to the cache");
}

/// A cache the user may read but not write (a shared mirror): reads work.
#[test]
fn a_read_only_cache_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cache) = bisected_cache(dir.path());
    let sig = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    assert!(sig["records"]["builds"].as_u64().unwrap() > 0);
    // A read-only bind mount in a private user and mount namespace (root
    // ignores file modes, so chmod would prove nothing).
    let script = format!(
        "mount --bind -o ro {c} {c} && mount -o remount,bind,ro {c} && touch {c}/probe 2>/dev/null && exit 9; \
         {k} --cache-dir {c} stats --json && {k} --cache-dir {c} verify",
        c = cache.display(),
        k = env!("CARGO_BIN_EXE_kcache")
    );
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("healthy"));
}

/// An S3 endpoint that accepts connections and never answers.
#[test]
fn a_silent_remote_costs_seconds_once_and_is_remembered() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s); // accept, read nothing, answer nothing
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let get = |cache: &Path| {
        let mut c = kc(cache);
        c.args([
            "--remote",
            "s3://bucket/kcache",
            "get",
            "--build-key",
            &"ab".repeat(32),
            "--dest",
        ])
        .arg(dir.path().join("out"))
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "garage");
        c
    };
    run_ok(kc(&cache).args(ok_run_args()));
    let start = Instant::now();
    let out = run_status(&mut get(&cache), 1);
    let first = start.elapsed();
    let err = stderr(&out);
    assert!(first < Duration::from_secs(30), "took {first:?}: {err}");
    assert!(err.contains("waiting for remote"), "{err}");
    assert!(err.contains("is unavailable"), "{err}");
    let start = Instant::now();
    let out = run_status(&mut get(&cache), 1);
    let second = start.elapsed();
    // The first run waited out the timeouts (over 5 s); this one asks nobody.
    assert!(second < Duration::from_secs(5), "the outage is remembered: {second:?}");
    assert!(stderr(&out).contains("did not answer"), "{}", stderr(&out));
}

#[test]
fn bad_arguments_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    // `sign` on a FIFO: an error at once, not a hang.
    let fifo = dir.path().join("fifo");
    run_ok(Command::new("mkfifo").arg(&fifo));
    let start = Instant::now();
    let out = run_status(kcache().arg("sign").arg(&fifo), 2);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(stderr(&out).contains("FIFO"), "{}", stderr(&out));

    let out = run_status(
        kc(&cache).args([
            "bisect", "--repo", ".", "--good", "a", "--bad", "b", "--build", "x", "--test", "y", "--runs", "0",
        ]),
        2,
    );
    assert!(stderr(&out).contains("--runs"), "{}", stderr(&out));

    let out = run_status(
        kc(&cache).args([
            "record-run",
            "--signature",
            "abc",
            "--test-key",
            &"d".repeat(64),
            "--outcome",
            "ok",
        ]),
        2,
    );
    assert!(stderr(&out).contains("not a kernel signature"), "{}", stderr(&out));

    let typo = dir.path().join("cahce");
    for args in [
        &["stats"][..],
        &["lookup", "--signature", &"a".repeat(64)],
        &["verify"],
        &["gc", "--max-size", "1G"],
    ] {
        let out = run_status(kc(&typo).args(args), 2);
        assert!(
            stderr(&out).contains("no kcache cache at"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(!typo.exists(), "reading a cache never creates one");
}

/// A bad endpoint whose kernel the cache already knows to be good (or a
/// good one known to crash) stops the bisection before it blames anything.
#[test]
fn endpoints_the_cache_contradicts_stop_the_bisection() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let first = json(&run_ok(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 3)));
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let tested = |verdict: &str| {
        first["steps"]
            .as_array()
            .unwrap()
            .iter()
            // Not the bad end itself (the noisy search tests it to learn the target).
            .find(|s| s["verdict"] == verdict && s["purpose"] == "bisect" && s["commit"] != head.as_str())
            .map(|s| s["commit"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("a {verdict} step in {first}"))
    };
    let (known_good, known_bad) = (tested("good"), tested("bad"));
    // The classic rule: any crash is bad, enough ok runs are good.
    let classic = |good: &str, bad: &str| {
        let mut c = bisect_cmd(&cache, &repo, good, bad, 3);
        c.args(["--policy", "classic"]);
        run_status(&mut c, 2)
    };
    let out = classic(&good, &known_good);
    assert!(stderr(&out).contains("the bad commit"), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not bad"), "{}", stderr(&out));
    let out = classic(&known_bad, "HEAD");
    assert!(stderr(&out).contains("the good commit"), "{}", stderr(&out));

    // The noisy search: a good commit whose kernel crashed with the target
    // twice stops it (once could be the error rate)...
    let title = "BUG: KASAN: slab-out-of-bounds in mm_init";
    let sig = first["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["commit"] == known_bad.as_str())
        .and_then(|s| s["signature"].as_str())
        .unwrap()
        .to_string();
    let test = demo_test_script();
    run_ok(kc(&cache).args([
        "record-run",
        "--signature",
        &sig,
        "--test-cmd",
        &test,
        "--outcome",
        "crash",
        "--title",
        title,
    ]));
    let out = run_status(&mut bisect_cmd(&cache, &repo, &known_bad, "HEAD", 3), 2);
    assert!(stderr(&out).contains("the good commit"), "{}", stderr(&out));
    // ...and a bad commit that does not crash has no target to bisect.
    let out = run_status(&mut bisect_cmd(&cache, &repo, &good, &known_good, 3), 2);
    assert!(stderr(&out).contains("no target crash"), "{}", stderr(&out));
}

/// A copy of the demo test that pools apart (another test key), so a
/// bisection must restore every kernel's artifacts to test it.
fn another_test(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join(format!("test-{n}.sh"));
    let text = std::fs::read_to_string(demo_test_script()).unwrap();
    std::fs::write(&path, format!("{text}\n# variant {n}\n")).unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&path));
    path
}

/// Issue 27: a blob other artifacts are deltas against, truncated, flipped
/// or deleted. `verify` names the broken chains; the next bisection says
/// the damage once and rebuilds what it cannot restore, and so does the
/// one after it (no `verify --repair` needed in between).
#[test]
fn a_damaged_delta_base_never_blocks_a_later_bisection() {
    for damage in ["truncate", "flip", "delete"] {
        let dir = tempfile::tempdir().unwrap();
        let repo = demo_repo(dir.path(), SMALL);
        let cache = dir.path().join("cache");
        let good = root_commit(&repo);
        let first = json(&run_ok(
            bisect_cmd(&cache, &repo, &good, "HEAD", 2).args(["--policy", "classic"]),
        ));
        let culprit = first["outcome"]["commit"].as_str().unwrap().to_string();

        let blobs = kcache::store::BlobStore::new(&cache);
        let base = blobs
            .list()
            .unwrap()
            .iter()
            .find_map(|b| blobs.chain_of(&b.key).ok()?.first().copied())
            .expect("the bisection stored delta blobs");
        let path = blobs.path_of(&base);
        let bytes = std::fs::read(&path).unwrap();
        match damage {
            "truncate" => std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap(),
            "flip" => {
                let mut b = bytes.clone();
                let mid = b.len() / 2;
                b[mid] ^= 0x55;
                std::fs::write(&path, b).unwrap();
            }
            _ => std::fs::remove_file(&path).unwrap(),
        }
        let out = run_status(kc(&cache).arg("verify"), 1);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains(&format!("broken delta chain: its base blob {base}")),
            "{damage}: verify names the broken chain: {said}"
        );

        for n in 0..2 {
            let test = another_test(dir.path(), n);
            let out = bisect_with(&cache, &repo, &good, "HEAD", "make -s vmlinux", test.to_str().unwrap())
                .args(["--runs", "2", "--json", "--policy", "classic", "-v"])
                .output()
                .unwrap();
            let err = stderr(&out);
            assert!(out.status.success(), "{damage}, bisection {n} after the damage: {err}");
            let summary = json(&out);
            assert_eq!(summary["outcome"]["commit"], culprit.as_str(), "{damage} {n}");
            // The summary counts the kernels built again to be tested.
            let built = err.matches("  built in ").count() as u64;
            assert_eq!(totals(&summary, "builds_done"), built, "{damage} {n}: {err}");
            if n == 0 {
                assert!(built > 0, "{damage}: what was lost was built again");
            }
        }
        // Rebuilt: the cache is whole again.
        run_ok(kc(&cache).arg("verify"));
    }
}

/// A TCP server on loopback that accepts connections and never answers;
/// its port.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// `cmd` pointed at an S3 endpoint on `port`.
fn with_s3_endpoint(cmd: &mut Command, port: u16) -> &mut Command {
    cmd.args(["--remote", "s3://bucket/kcache"])
        .env("AWS_ENDPOINT", format!("http://127.0.0.1:{port}"))
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "garage")
}

/// Issue 27: the default (noisy) search's up-front listings went through no
/// deadline: a silent endpoint cost ~81 s. Every call now has the same
/// bound, and listings queued behind one that found the remote down ask
/// nothing. Measured against the same bisection without a remote, with an
/// empty cache and with everything local (the remembered outage forgotten).
#[test]
fn a_silent_remote_costs_the_default_search_seconds() {
    let port = silent_server();
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    let timed = |cmd: &mut Command| {
        let start = Instant::now();
        let out = run_ok(cmd);
        (start.elapsed(), json(&out), stderr(&out))
    };
    let (plain, reference, _) = timed(&mut bisect_cmd(&dir.path().join("plain"), &repo, &good, "HEAD", 2));
    let cache = dir.path().join("cache");
    let (cold, found, err) = timed(with_s3_endpoint(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 2), port));
    assert_eq!(found["outcome"], reference["outcome"]);
    assert!(err.contains("is unavailable"), "{err}");
    std::fs::remove_file(cache.join("remote-down")).unwrap();
    let (warm_plain, _, _) = timed(&mut bisect_cmd(&dir.path().join("plain"), &repo, &good, "HEAD", 2));
    let (warm, found, _) = timed(with_s3_endpoint(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 2), port));
    assert_eq!(found["outcome"], reference["outcome"]);
    eprintln!(
        "silent remote: empty cache {:.1}s (no remote {:.1}s), everything local {:.1}s (no remote {:.1}s)",
        cold.as_secs_f64(),
        plain.as_secs_f64(),
        warm.as_secs_f64(),
        warm_plain.as_secs_f64()
    );
    // Under 10 s of waiting per bisection (measured: about 5 s).
    assert!(cold < plain + Duration::from_secs(10), "{cold:?} against {plain:?}");
    assert!(
        warm < warm_plain + Duration::from_secs(10),
        "{warm:?} against {warm_plain:?}"
    );
}
