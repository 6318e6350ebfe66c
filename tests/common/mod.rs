//! Helpers shared by the integration tests: the real kcache binary, real git
//! repositories from `scripts/make-demo-repo.sh`, real gcc.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kcache::store::index as idx;

pub mod toy;

/// The kcache binary, with no config file of the user's (a test that
/// wants one sets `XDG_CONFIG_HOME` itself).
pub fn kcache() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kcache"));
    c.env(
        "XDG_CONFIG_HOME",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-user-config"),
    );
    c
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The project's shared test data (`shared/` beside the repository, as CI
/// clones it; `KCACHE_SHARED` elsewhere). A test that needs it and cannot
/// find it stops with one line saying what is missing and where it was looked
/// for, instead of an unexplained "No such file or directory".
pub fn shared() -> PathBuf {
    let dir = std::env::var_os("KCACHE_SHARED").map_or_else(|| root().join("../shared"), PathBuf::from);
    assert!(
        dir.is_dir(),
        "test data missing: this test reads the shared data directory, expected at {} \
         (beside the repository, as CI has it; or set KCACHE_SHARED)",
        dir.display()
    );
    dir
}

/// A file under [`shared`], which must exist.
pub fn shared_file(rel: &str) -> PathBuf {
    let path = shared().join(rel);
    assert!(
        path.exists(),
        "test data missing: {} (part of the shared data at {})",
        path.display(),
        shared().display()
    );
    path
}

pub fn demo_test_script() -> String {
    root().join("scripts/demo-test.sh").display().to_string()
}

/// Generates a demo repository; `settings` are DEMO_* variables.
pub fn demo_repo(dir: &Path, settings: &[(&str, &str)]) -> PathBuf {
    let repo = dir.join("repo");
    let mut cmd = Command::new(root().join("scripts/make-demo-repo.sh"));
    cmd.arg(&repo);
    for (k, v) in settings {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("make-demo-repo.sh runs");
    assert!(
        out.status.success(),
        "make-demo-repo.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo
}

/// A new repository at `dir` with one empty commit.
pub fn one_commit_repo(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    git(dir, &["init", "-q"]);
    commit_all(dir, "init");
    dir.to_path_buf()
}

/// Commits everything in the work tree (or nothing); returns the commit id.
pub fn commit_all(repo: &Path, subject: &str) -> String {
    git(repo, &["add", "-A"]);
    git(
        repo,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            subject,
        ],
    );
    git(repo, &["rev-parse", "HEAD"])
}

pub fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The commit whose subject matches `pattern` (git --grep).
pub fn commit_by_subject(repo: &Path, pattern: &str) -> String {
    git(repo, &["log", "--format=%H", "-n", "1", &format!("--grep={pattern}")])
}

/// The commit `n` commits after the root (the generator's commit number).
pub fn commit_number(repo: &Path, n: usize) -> String {
    let all = git(repo, &["rev-list", "--reverse", "HEAD"]);
    all.lines().nth(n).expect("commit exists").to_string()
}

pub fn root_commit(repo: &Path) -> String {
    git(repo, &["rev-list", "--max-parents=0", "HEAD"])
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A bisection that ended: with a culprit (exit 0) or without one (exit 3).
pub fn run_ended(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("command runs");
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "{cmd:?} failed ({:?}): {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd`, which must exit with `code`; returns its output.
pub fn run_status(cmd: &mut Command, code: i32) -> Output {
    let out = cmd.output().expect("command runs");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// `kcache bisect` of `repo` from `good` to `bad` with this build and test.
pub fn bisect_with(cache: &Path, repo: &Path, good: &str, bad: &str, build: &str, test: &str) -> Command {
    let mut c = kcache();
    c.arg("--cache-dir")
        .arg(cache)
        .args(["bisect", "--repo"])
        .arg(repo)
        .args(["--good", good, "--bad", bad, "--build", build, "--test", test]);
    c
}

/// `kcache bisect` of the whole demo history (root to HEAD) with its build
/// and this test.
pub fn bisect_whole(cache: &Path, repo: &Path, test: &Path) -> Command {
    bisect_with(
        cache,
        repo,
        &root_commit(repo),
        "HEAD",
        "make -s vmlinux",
        test.to_str().unwrap(),
    )
}

/// `kcache bisect --json` on the demo scripts.
pub fn bisect_cmd(cache: &Path, repo: &Path, good: &str, bad: &str, runs: u32) -> Command {
    let mut c = bisect_with(cache, repo, good, bad, "make -s vmlinux", &demo_test_script());
    c.args(["--runs", &runs.to_string(), "--json"]);
    c
}

pub fn totals(summary: &serde_json::Value, field: &str) -> u64 {
    summary["totals"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("totals.{field} in {summary}"))
}

pub fn schema(name: &str) -> jsonschema::Validator {
    let text = std::fs::read_to_string(root().join("cache-schema").join(name)).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

/// Validates every record in the index against its schema.
pub fn validate_all(cache_dir: &Path) -> usize {
    let cache = kcache::store::Cache::open(cache_dir).unwrap();
    let mut n = 0;
    for (cf, file) in [
        (idx::CF_BUILDS, "build.v1.json"),
        (idx::CF_SIGNATURES, "signature.v1.json"),
        (idx::CF_RUNS, "run.v1.json"),
        (idx::CF_KNOWN, "known-signature.v1.json"),
        (idx::CF_INPUT_SETS, "input-set.v1.json"),
        (idx::CF_PREBUILDS, "prebuild.v1.json"),
        (idx::CF_BISECTIONS, "bisection.v3.json"),
    ] {
        let v = schema(file);
        let records: Vec<(String, serde_json::Value)> = cache.raw_records(cf).unwrap();
        for (key, record) in records {
            // A record kept by an older kcache is valid against its own version's schema.
            let older = older_bisection_schema(cf, &record);
            let (v, file) = match &older {
                Some((v, file)) => (v, file.as_str()),
                None => (&v, file),
            };
            let errors: Vec<String> = v.iter_errors(&record).map(|e| e.to_string()).collect();
            assert!(errors.is_empty(), "{cf}/{key} violates {file}: {errors:?}\n{record}");
            n += 1;
        }
    }
    n
}

/// The schema of a bisection record written by an older kcache (v1, v2),
/// by its `schema` field; `None` for the current one and other records.
fn older_bisection_schema(cf: &str, record: &serde_json::Value) -> Option<(jsonschema::Validator, String)> {
    let version = record["schema"].as_str()?.strip_prefix("kcache/bisection/")?;
    let file = format!("bisection.{version}.json");
    (cf == idx::CF_BISECTIONS && matches!(version, "v1" | "v2")).then(|| (schema(&file), file))
}

/// Every step of a bisection's `--log` reads back (kcache's own parser) as
/// the JSON summary has it: commit, signature, runs, verdict.
pub fn assert_log_matches(log: &Path, summary: &serde_json::Value) {
    let parsed = kcache::syzlog::parse_file(log).unwrap();
    let steps = summary["steps"].as_array().unwrap();
    assert_eq!(parsed.steps.len(), steps.len(), "steps in {}", log.display());
    for (read, s) in parsed.steps.iter().zip(steps) {
        assert_eq!(read.commit, s["commit"].as_str().unwrap(), "{s}");
        assert_eq!(read.signature.as_deref(), s["signature"].as_str(), "{s}");
        let e = &s["evidence"];
        let runs: u64 = ["ok", "crash", "infra", "boot_failed", "skip"]
            .iter()
            .map(|k| e[k].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(read.run_count() as u64, runs, "{s}");
        if let Some(v) = read.verdict {
            assert_eq!(v.as_str(), s["verdict"].as_str().unwrap(), "{s}");
        }
    }
}

/// The kcache binary on the cache at `cache` (`--cache-dir`).
/// A test script for the toy kernel, reproducible from a counter in `dir`:
/// an unrelated `WARNING` in `warn` of every 1000 runs, the toy's BUG (its
/// vmlinux run with `vmlinux_args`) in `fire` of 1000 when the kernel has
/// it; exit 125 without a vmlinux.
pub fn counter_test(dir: &Path, name: &str, warn: u32, fire: u32, vmlinux_args: &str) -> PathBuf {
    let script = dir.join(name);
    let counter = dir.join("counter");
    std::fs::write(
        &script,
        format!(
            r#"#!/bin/sh
{next}
r=$(( (n * 2654435761 + 12345) % 1000 ))
v="$KCACHE_ARTIFACTS/vmlinux"
[ -x "$v" ] || exit 125
if [ $r -lt {warn} ]; then echo "crash: WARNING in unrelated_function"; exit 1; fi
bug=$("$v"{vmlinux_args} 2>&1 | grep -o 'BUG: .*' | head -n 1)
if [ -n "$bug" ] && [ $r -lt {fire} ]; then echo "crash: $bug"; exit 1; fi
exit 0
"#,
            next = counter_next(&counter)
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    script
}

/// A flaky test of the toy kernel: its BUG in 30% of the runs on a bad
/// kernel and an unrelated WARNING in 6% of all runs, from a counter in
/// `dir`, so the sequence of outcomes is reproducible.
pub fn flaky_test(dir: &Path, name: &str, vmlinux_args: &str) -> PathBuf {
    counter_test(dir, name, 60, 360, vmlinux_args)
}

/// A test whose every run hangs (for `--test-timeout`).
pub fn hanging_test(dir: &Path) -> PathBuf {
    let hang = dir.join("hang.sh");
    std::fs::write(&hang, "#!/bin/sh\nsleep 60\n").unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&hang));
    hang
}

/// A JSON array of strings as `&str`s (a summary's notes, a credible set).
pub fn strings(v: &serde_json::Value) -> Vec<&str> {
    v.as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect()
}

/// Shell that sets `n` to the next value (1, 2, ...) of the counter in
/// file `counter`, under a lock: runs of a batch go at once (`--jobs`), and
/// an unlocked read-increment-write let two runs read one value, or one
/// read the file another was rewriting (the counter restarted at 1, and a
/// "deterministic" sequence of flaky outcomes was not).
pub fn counter_next(counter: &Path) -> String {
    format!(
        "n=$(flock {c}.lock sh -c 'n=$(cat {c} 2>/dev/null || echo 0); echo $((n + 1)) > {c}; echo $((n + 1))')",
        c = counter.display()
    )
}

/// Starts `cmd` with its stdout and stderr captured (for processes that
/// run at once and are waited for later).
pub fn spawn_piped(cmd: &mut Command) -> std::process::Child {
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

pub fn kc(cache: &Path) -> Command {
    let mut c = kcache();
    c.arg("--cache-dir").arg(cache);
    c
}

/// A finished command's stderr, as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `kcache record-run` of one ok run on a made-up kernel and test key: the
/// smallest write to a cache (tests of locks, full disks, remotes).
pub fn ok_run_args() -> Vec<String> {
    [
        "record-run",
        "--signature",
        &"c".repeat(64),
        "--test-key",
        &"d".repeat(64),
        "--outcome",
        "ok",
    ]
    .map(String::from)
    .to_vec()
}

/// A running 3-node Garage cluster (`scripts/garage.sh`): the team store
/// of the remote tests; stopped on drop (also when a test fails).
pub struct Garage {
    pub dir: tempfile::TempDir,
    /// The environment kcache needs to use it (`AWS_*`).
    pub env: Vec<(String, String)>,
}

impl Garage {
    pub fn start(slot: u16) -> Garage {
        let dir = tempfile::tempdir().unwrap();
        // Distinct ports per test and per concurrent test run, all below
        // Linux's ephemeral range (32768-60999): a port there can be taken
        // by any outgoing connection, and a node whose S3 port was taken
        // starts without its API (the cause of rare "error sending request"
        // failures). 40 runs x 10 slots x 3 nodes fit in 20000-31999.
        assert!(slot < 10, "ports are laid out for 10 clusters per test run");
        let base = 20000 + (std::process::id() % 40) as u16 * 300 + slot * 10 * 3;
        let out = Command::new(root().join("scripts/garage.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(base.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage.sh start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(dir.path().join("env"))
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Garage { dir, env }
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/garage.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}
