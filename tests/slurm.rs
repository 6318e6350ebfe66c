//! Bisections whose builds and test runs are Slurm jobs, on a real
//! one-host cluster (slurmctld + slurmd + munged under a temporary
//! directory, `scripts/slurm.sh`) with a real 3-node Garage as the team
//! store (`scripts/garage.sh`), both started by each test and stopped at
//! its end, also when it fails.
//!
//! The histories are the toy ones of tests/dag.rs and the demo line: each
//! kernel a real gcc build, each run the real test script; the driver is
//! the real kcache binary with `--executor slurm`, the job body the same
//! binary's `kcache step run`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::toy::*;
use common::*;

/// A running one-host Slurm cluster; stopped on drop.
struct Slurm {
    dir: tempfile::TempDir,
}

impl Slurm {
    /// `env`: the environment slurmd (and so an `--export=NONE` job) has.
    fn start(slot: u16, env: &[(String, String)]) -> Slurm {
        let dir = tempfile::tempdir().unwrap();
        // Below Garage's ports (20000-31999) and the ephemeral range.
        let base = 12000 + (std::process::id() % 100) as u16 * 40 + slot * 4;
        let out = Command::new(root().join("scripts/slurm.sh"))
            .arg("start")
            .arg(dir.path())
            .arg(base.to_string())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "slurm.sh start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Slurm { dir }
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("slurm.conf")
    }

    /// A Slurm client command on this cluster; its stdout.
    fn client(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(program)
            .args(args)
            .env("SLURM_CONF", self.conf())
            .output()
            .unwrap();
        assert!(out.status.success(), "{program} {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Every kcache job slurmctld knows (finished ones too): (name, array job id).
    fn jobs(&self) -> Vec<(String, String)> {
        let mut jobs: Vec<(String, String)> = self
            .client("squeue", &["-h", "-t", "all", "-o", "%j %F"])
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(name, _)| name.starts_with("kcache-"))
            .map(|(n, id)| (n.to_string(), id.to_string()))
            .collect();
        jobs.sort();
        jobs.dedup();
        jobs
    }

    /// The array job id of a kcache job running now, waiting for one.
    fn wait_running(&self) -> String {
        let start = Instant::now();
        loop {
            let running = self.client("squeue", &["-h", "-t", "RUNNING", "-o", "%F %j"]);
            if let Some(id) = running
                .lines()
                .find(|l| l.contains("kcache-"))
                .and_then(|l| l.split(' ').next())
            {
                return id.to_string();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no kcache job started running"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until a kcache job newer than `job` was submitted.
    fn wait_submitted_after(&self, job: &str) {
        let job: u64 = job.parse().unwrap();
        let start = Instant::now();
        while !self
            .jobs()
            .iter()
            .any(|(_, id)| id.parse::<u64>().is_ok_and(|id| id > job))
        {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "no job was submitted after {job}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/slurm.sh"))
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

/// One test's world: the cluster, the store, a config file naming the
/// partitions, and the directories of workers and job logs.
struct World {
    dir: tempfile::TempDir,
    slurm: Slurm,
    garage: Garage,
}

impl World {
    fn new(slot: u16) -> World {
        World::with(slot, false)
    }

    /// `own_environment`: jobs get the workers' environment (`export =
    /// "NONE"`), in which the store's credentials are not.
    fn with(slot: u16, own_environment: bool) -> World {
        let garage = Garage::start(slot);
        let slurm = Slurm::start(slot, &[]);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config/kcache");
        std::fs::create_dir_all(&config).unwrap();
        let export = match own_environment {
            true => "export = \"NONE\"\n",
            false => "",
        };
        std::fs::write(
            config.join("config.toml"),
            format!(
                "[engine]\npoll_seconds = 0.2\n\n[slurm]\nbuild_partition = \"kbuild\"\ntest_partition = \"ktest\"\n\
                 test_constraint = \"kvm\"\nworker_cache_dir = \"{workers}\"\nlog_dir = \"{logs}\"\n{export}",
                workers = dir.path().join("workers").display(),
                logs = dir.path().join("job-logs").display(),
            ),
        )
        .unwrap();
        World { dir, slurm, garage }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// kcache as a driver of this world: its cache, the cluster, and the
    /// store [`store_of`] the cache.
    fn kcache(&self, cache: &str) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kcache"));
        c.env("XDG_CONFIG_HOME", self.path("config"))
            .env("SLURM_CONF", self.slurm.conf())
            .envs(self.garage.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--cache-dir")
            .arg(self.path(cache))
            .args(["--remote", &format!("s3://kcache/{}", store_of(cache))]);
        c
    }

    /// Every job output line (what the workers printed).
    fn job_output(&self) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(self.path("job-logs")).into_iter().flatten().flatten() {
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
        text
    }
}

/// The store a driver's cache writes to: `cache-a` and `cache-b` share
/// `team-cache`; `line-local` and `line-slurm` have one each.
fn store_of(cache: &str) -> &str {
    match cache.starts_with("cache") {
        true => "team-cache",
        false => cache,
    }
}

/// A line: 3 changes, the bug, 3 changes. Returns the history and the bug commit.
fn line(dir: &Path) -> (History, String) {
    let mut h = History::new(dir);
    for i in 1..=3 {
        h.change(&format!("before {i}"));
    }
    let bug = h.bug("the bug");
    for i in 1..=3 {
        h.change(&format!("after {i}"));
    }
    (h, bug)
}

/// A DAG: a topic branch carrying the bug merged into a mainline that went on.
fn dag(dir: &Path) -> (History, String) {
    let mut h = History::new(dir);
    let base = h.change("mainline 1");
    h.branch("topic", &base);
    h.change("topic 1");
    let bug = h.bug("topic: the bug");
    h.change("topic 2");
    h.checkout("master");
    h.change("mainline 2");
    h.merge("topic", "merge topic");
    h.change("mainline 3");
    (h, bug)
}

/// The deterministic test: the toy's BUG every run of a kernel that has it.
fn plain_test(dir: &Path) -> PathBuf {
    counter_test(dir, "test.sh", 0, 1000, "")
}

/// A test whose runs take a while: a driver can be killed, a job cancelled
/// or a node downed while one runs.
fn slow_test(dir: &Path) -> PathBuf {
    let test = dir.join("slow-test.sh");
    std::fs::write(
        &test,
        format!("#!/bin/sh\nsleep 2\nexec {}\n", plain_test(dir).display()),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&test));
    test
}

/// `kcache bisect --json --verbose` of `h` from its root to HEAD with the
/// toy build (`slow`: it takes 2 s more).
fn bisect(world: &World, cache: &str, h: &History, test: &Path, executor: &str, slow: bool) -> Command {
    let build = match slow {
        true => "sleep 2; make -s vmlinux",
        false => "make -s vmlinux",
    };
    let mut c = world.kcache(cache);
    c.args(["bisect", "--repo"])
        .arg(&h.repo)
        .args([
            "--good",
            &root_commit(&h.repo),
            "--bad",
            "HEAD",
            "--build",
            build,
            "--test",
        ])
        .arg(test)
        .args(["--executor", executor, "--crash-title", TITLE, "--json", "--verbose"]);
    c
}

/// [`bisect`] with the noisy test: 10 runs a kernel.
fn bisect_noisy(world: &World, cache: &str, h: &History, executor: &str) -> Command {
    let test = flaky_test(&h.repo.with_file_name("noisy"), "noisy-test.sh", "");
    let mut c = bisect(world, cache, h, &test, executor, false);
    c.args(["--runs", "10"]);
    c
}

/// [`bisect`] with the deterministic test (slow or not): 2 runs a kernel.
fn bisect_plain(world: &World, cache: &str, h: &History, slow: bool) -> Command {
    let dir = h.repo.with_file_name("tests");
    std::fs::create_dir_all(&dir).unwrap();
    let test = match slow {
        true => slow_test(&dir),
        false => plain_test(&dir),
    };
    let mut c = bisect(world, cache, h, &test, "slurm", slow);
    c.args(["--runs", "2"]);
    c
}

fn culprit(out: &Output) -> String {
    let summary = json(out);
    assert_eq!(summary["outcome"]["kind"], "culprit", "{summary}\n{}", stderr(out));
    summary["outcome"]["commit"].as_str().unwrap().to_string()
}

/// The job that was running when the driver was killed was not submitted
/// again: the re-run attached to it.
fn assert_submitted_once(slurm: &Slurm, job: &str) {
    let jobs = slurm.jobs();
    let name = jobs.iter().find(|(_, id)| id == job).map(|(n, _)| n.clone());
    let name = name.unwrap_or_else(|| panic!("job {job} is not in {jobs:?}"));
    let times = jobs.iter().filter(|(n, _)| *n == name).count();
    assert_eq!(times, 1, "the step of job {job} was submitted again: {jobs:?}");
}

/// Each step's job name was submitted once, unless the drivers said why it
/// was submitted again: its job failed (the engine's retry), or it ended
/// without its whole result in the store (asked again, said and bounded).
fn assert_no_step_submitted_twice_unexplained(slurm: &Slurm, logs: &[&str]) {
    let jobs = slurm.jobs();
    assert!(!jobs.is_empty());
    let all = logs.concat();
    for (name, _) in &jobs {
        let ids: Vec<&str> = jobs
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, id)| id.as_str())
            .collect();
        let explained = all.contains(&format!("asked again for {name}"))
            || ids.iter().any(|id| all.contains(&format!("job {id} failed")));
        assert!(
            ids.len() == 1 || explained,
            "step {name} was submitted {} times ({ids:?}) and no driver said why:\n{all}",
            ids.len()
        );
    }
}

#[test]
fn a_bisection_through_slurm_names_the_local_culprit_on_a_line_and_a_dag_with_a_flaky_test() {
    let world = World::new(0);
    let mut logs = Vec::new();
    for (name, make) in [("line", line as fn(&Path) -> (History, String)), ("dag", dag)] {
        let dir = world.path(name);
        let (h, bug) = make(&dir);
        std::fs::create_dir_all(dir.join("noisy")).unwrap();
        let local = run_ok(&mut bisect_noisy(&world, &format!("{name}-local"), &h, "local"));
        let slurm = run_ok(&mut bisect_noisy(&world, &format!("{name}-slurm"), &h, "slurm"));
        assert_eq!(culprit(&local), bug, "{name}: the local bisection");
        assert_eq!(culprit(&slurm), bug, "{name}: through slurm\n{}", stderr(&slurm));
        let log = stderr(&slurm);
        assert!(
            log.contains("slurm: submitted job"),
            "{name}: no job was submitted:\n{log}"
        );
        logs.push(log);
    }
    assert_no_step_submitted_twice_unexplained(&world.slurm, &logs.iter().map(String::as_str).collect::<Vec<_>>());
    let output = world.job_output();
    assert!(output.contains(": built,"), "the workers built:\n{output}");
    assert!(output.contains("run(s) recorded"), "the workers tested:\n{output}");
}

#[test]
fn a_driver_killed_mid_step_reattaches_to_its_job_when_run_again() {
    let world = World::new(1);
    let (h, bug) = line(&world.path("h"));
    // Slow builds and runs: the driver is killed while a job of it runs.
    let mut driver = spawn_piped(&mut bisect_plain(&world, "cache", &h, true));
    let running = world.slurm.wait_running();
    driver.kill().unwrap(); // SIGKILL
    let first = driver.wait_with_output().unwrap();
    let before = world.slurm.jobs();
    let again = run_ok(&mut bisect_plain(&world, "cache", &h, true));
    assert_eq!(culprit(&again), bug);
    let log = stderr(&again);
    assert!(
        log.contains(&format!("attached to job {running}")),
        "the re-run did not attach to job {running}:\n{log}"
    );
    let after = world.slurm.jobs();
    assert!(after.len() > before.len(), "the bisection went on with new steps");
    assert_submitted_once(&world.slurm, &running);
    assert_no_step_submitted_twice_unexplained(&world.slurm, &[&stderr(&first), &log]);
}

#[test]
fn a_remembered_outage_of_the_store_does_not_hide_a_workers_result() {
    let world = World::new(6);
    let (h, bug) = line(&world.path("h"));
    // A process a minute ago found the store down: this driver starts
    // with it off, but a step's result can only come through the store.
    let cache = world.path("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let url = format!("s3://kcache/{}", store_of("cache"));
    std::fs::write(cache.join("remote-down"), format!("{url} {}\n", now - 60)).unwrap();
    let out = run_ok(&mut bisect_plain(&world, "cache", &h, false));
    let log = stderr(&out);
    assert!(log.contains("did not answer"), "the outage was not remembered:\n{log}");
    assert!(log.contains("asking it again"), "the store was not asked again:\n{log}");
    assert_eq!(culprit(&out), bug, "{log}");
    assert_no_step_submitted_twice_unexplained(&world.slurm, &[&log]);
}

#[test]
fn a_worker_without_the_stores_credentials_fails_the_step_saying_so() {
    let world = World::with(2, true);
    let (h, _) = line(&world.path("h"));
    let out = run_ended(&mut bisect_plain(&world, "cache", &h, false));
    assert!(!out.status.success(), "a bisection without results must not succeed");
    let log = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    assert!(
        log.contains("credentials are missing on this worker"),
        "the reason is not said:\n{log}"
    );
    // A failed job is submitted again a bounded number of times (2), then the step is given up.
    let jobs = world.slurm.jobs();
    assert!(!jobs.is_empty() && jobs.len() <= 3 * 8, "{jobs:?}");
    assert!(log.contains("submitting again"), "{log}");
}

#[test]
fn two_concurrent_drivers_build_each_key_once() {
    let world = World::new(3);
    let (h, bug) = line(&world.path("h"));
    let a = spawn_piped(&mut bisect_plain(&world, "cache-a", &h, false));
    let b = spawn_piped(&mut bisect_plain(&world, "cache-b", &h, false));
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(culprit(&a), bug, "{}", stderr(&a));
    assert_eq!(culprit(&b), bug, "{}", stderr(&b));
    let output = world.job_output();
    let mut built: Vec<&str> = output
        .lines()
        .filter(|l| l.ends_with("upload(s)") && l.contains(": built,"))
        .filter_map(|l| l.split("(key ").nth(1))
        .filter_map(|rest| rest.split(')').next())
        .collect();
    assert!(!built.is_empty(), "nothing was built:\n{output}");
    let all = built.len();
    built.sort();
    built.dedup();
    assert_eq!(built.len(), all, "a key was built twice:\n{output}");
}

#[test]
fn a_job_cancelled_from_outside_is_submitted_again_and_the_verdict_stands() {
    let world = World::new(4);
    let (h, bug) = line(&world.path("h"));
    let driver = spawn_piped(&mut bisect_plain(&world, "cache", &h, true));
    let running = world.slurm.wait_running();
    world.slurm.client("scancel", &[&running]);
    let out = driver.wait_with_output().unwrap();
    let log = stderr(&out);
    assert!(
        log.contains(&format!("job {running}")) && log.contains("CANCELLED") && log.contains("submitting again"),
        "the cancelled job was not submitted again:\n{log}"
    );
    assert_eq!(culprit(&out), bug, "{log}");
}

#[test]
fn a_node_set_down_mid_job_ends_in_a_resubmission_never_a_wrong_verdict() {
    let world = World::new(5);
    let (h, bug) = line(&world.path("h"));
    let driver = spawn_piped(&mut bisect_plain(&world, "cache", &h, true));
    let running = world.slurm.wait_running();
    world.slurm.client(
        "scontrol",
        &["update", "nodename=localhost", "state=down", "reason=test"],
    );
    // The driver submits the step again; it waits for the node to come back.
    world.slurm.wait_submitted_after(&running);
    // With ReturnToService=2 the node may be back already (slurmd
    // registered again): then there is nothing to resume.
    let _ = Command::new("scontrol")
        .args(["update", "nodename=localhost", "state=resume"])
        .env("SLURM_CONF", world.slurm.conf())
        .output();
    let out = driver.wait_with_output().unwrap();
    let log = stderr(&out);
    assert!(
        log.contains(&format!("job {running}")) && log.contains("submitting again"),
        "the job on the downed node was not submitted again:\n{log}"
    );
    assert_eq!(culprit(&out), bug, "{log}");
}
