//! Teams that share (issue 27): one build script at two paths keys alike
//! (a script the build command runs is keyed by its content), and
//! concurrent default bisections of one range count what another process
//! tested while they waited. Real git, real gcc, real RocksDB.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const RANGE: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "40"),
    ("DEMO_REGRESSION", "25"),
    ("DEMO_BREAK_FROM", "5"),
    ("DEMO_BREAK_TO", "7"),
];

fn write_script(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\nexec make -s vmlinux\n").unwrap();
}

/// Two members' clones, each with its own copy of one build script: the
/// second bisection reuses every build of the first, and `kcache key
/// --json` shows the script keyed by content.
#[test]
fn one_build_script_at_two_paths_shares_every_build() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), RANGE);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let mut summaries = Vec::new();
    let mut keyed = Vec::new();
    for member in ["alice", "bob"] {
        let home = dir.path().join(member);
        let clone = home.join("linux");
        run_ok(Command::new("git").args(["clone", "-q"]).arg(&repo).arg(&clone));
        let script = home.join("bin/build.sh");
        write_script(&script);
        let build = format!("sh {}", script.display());
        let out = run_ok(
            bisect_with(&cache, &clone, &good, "HEAD", &build, &demo_test_script()).args(["--runs", "2", "--json"]),
        );
        summaries.push(json(&out));
        let key = json(&run_ok(kcache().args(["key", "--json", "--repo"]).arg(&clone).args([
            "--commit",
            "HEAD",
            "--build-cmd",
            &build,
        ])));
        keyed.push(key);
    }
    assert!(totals(&summaries[0], "builds_done") > 0);
    assert_eq!(summaries[1]["outcome"], summaries[0]["outcome"]);
    assert_eq!(totals(&summaries[1], "builds_done"), 0, "{}", summaries[1]);
    assert_eq!(keyed[0]["build_key"], keyed[1]["build_key"]);
    let scripts = &keyed[1]["recipe"]["scripts"];
    assert_eq!(
        scripts[0]["path"],
        dir.path().join("bob/bin/build.sh").display().to_string(),
        "{}",
        keyed[1]
    );
    let command = keyed[1]["recipe"]["command"].as_str().unwrap();
    assert_eq!(
        command,
        format!("sh @blake3:{}", scripts[0]["blake3"].as_str().unwrap())
    );
}

fn run_records(cache: &Path) -> u64 {
    let stats = json(&run_ok(
        kcache().arg("--cache-dir").arg(cache).args(["stats", "--json"]),
    ));
    stats["records"]["runs"].as_u64().unwrap()
}

/// A test that takes a while (0.4 s a run), so that concurrent searches
/// wait for each other's test claims as real tests make them do.
fn slow_test(dir: &Path) -> String {
    let path = dir.join("slow-test.sh");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nsleep 0.4\nexec {} \"$@\"\n", demo_test_script()),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&path));
    path.display().to_string()
}

/// Two default (noisy) bisections of one range at once in one cache: the
/// test runs are not doubled (after waiting for the other's test claim, a
/// search counts the runs the other did on that kernel instead of running
/// a full batch again, and runs another process pooled since the search
/// last looked are given to it before any new run), and they build about
/// what one builds.
#[test]
fn concurrent_default_bisections_count_each_others_runs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), RANGE);
    let good = root_commit(&repo);
    let test = slow_test(dir.path());
    // One run slot, and two (each process's runs of a batch, and sets of
    // kernels, in flight while the other lands its own).
    for jobs in ["1", "2"] {
        let bisect = |cache: &Path| {
            let mut c = bisect_with(cache, &repo, &good, "HEAD", "make -s vmlinux", &test);
            c.args(["--runs", "4", "--jobs", jobs, "--json"]);
            c
        };
        let reference_cache = dir.path().join(format!("reference-{jobs}"));
        let reference = json(&run_ok(&mut bisect(&reference_cache)));
        let (builds, runs) = (totals(&reference, "builds_done"), run_records(&reference_cache));

        let cache = dir.path().join(format!("cache-{jobs}"));
        let children: Vec<_> = (0..2).map(|_| spawn_piped(&mut bisect(&cache))).collect();
        let mut built = 0;
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let s = json(&out);
            assert_eq!(s["outcome"]["commit"], reference["outcome"]["commit"]);
            built += totals(&s, "builds_done");
        }
        let ran = run_records(&cache);
        eprintln!(
            "--jobs {jobs}: one bisection: {builds} builds, {runs} runs; two at once: {built} builds, {ran} runs"
        );
        // Measured: as many as one bisection on a quiet machine (16 = 16
        // with --jobs 1; 15-16 = 15 with --jobs 2, where the two searches
        // learn the same costs from each other's builds); up to 22 on a
        // loaded one, where a run's record lands while the other process
        // is choosing (before: 25 with --jobs 2 when a search learnt build
        // costs only from its own builds; 28-29 with the line search). The
        // bound catches a search that reruns what it waited for.
        assert!(
            ran <= runs + runs / 2,
            "--jobs {jobs}: {ran} runs where one bisection does {runs}"
        );
        // The searches' picks can drift apart (a run lands while the other
        // chooses), so a few more kernels may be built between them.
        assert!(
            built <= builds + 3,
            "--jobs {jobs}: {built} builds where one bisection does {builds}"
        );
    }
}
