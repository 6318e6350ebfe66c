//! `GitOracle`'s parallel side called directly (the noisy search calls
//! `run_set` and `prefetch` once issue 24's search side lands): real git
//! (the demo history), real builds (`make`), real test processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;
use crate::bisect::record::RunTime;
use crate::exec::Recipe;
use crate::search::graph::Direction;

const SMALL: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "40"),
    ("DEMO_REGRESSION", "25"),
    ("DEMO_BREAK_FROM", "5"),
    ("DEMO_BREAK_TO", "7"),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo history; its commits oldest first.
fn demo(dir: &Path) -> (PathBuf, Vec<CommitId>) {
    let repo = dir.join("repo");
    let out = Command::new(root().join("scripts/make-demo-repo.sh"))
        .arg(&repo)
        .envs(SMALL.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list = Command::new("git")
        .arg("-C")
        .arg(&repo)
        .args(["rev-list", "--reverse", "HEAD"])
        .output()
        .unwrap();
    let commits = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(CommitId::from)
        .collect();
    (repo, commits)
}

fn evaluator(dir: &Path, repo: &Repo, cache: &Cache, jobs: u32, build_jobs: u32) -> CommitEvaluator {
    let test = dir.join("slow-test.sh");
    std::fs::write(
        &test,
        format!(
            "#!/bin/sh\nsleep 0.5\nexec {}\n",
            root().join("scripts/demo-test.sh").display()
        ),
    )
    .unwrap();
    assert!(Command::new("chmod").arg("+x").arg(&test).status().unwrap().success());
    let recipe = Recipe {
        runs: 3,
        jobs,
        build_jobs,
        ..Recipe::new("make -s vmlinux", test.display().to_string(), "gcc (the test's)")
    };
    let (tree, state) = (
        crate::bisect::worktree_dir(cache, repo.dir()),
        crate::bisect::state_dir(cache, repo.dir()),
    );
    CommitEvaluator::new(recipe, tree, state, false).unwrap()
}

fn oracle<'a>(
    repo: &'a Repo,
    cache: &'a Cache,
    evaluator: &'a mut CommitEvaluator,
    progress: &'a mut dyn FnMut(&str),
    nodes: Vec<CommitId>,
    speculator: Option<Speculator>,
) -> GitOracle<'a> {
    GitOracle {
        repo,
        cache,
        evaluator,
        nodes: nodes.clone(),
        steps: Vec::new(),
        log: logfile::LogFile::new(None, &nodes[0], Direction::Cause),
        progress,
        build_seconds: (0.0, 0),
        run_seconds: (0.0, 0),
        estimates: (600.0, 60.0),
        evals: HashMap::new(),
        reported: HashSet::new(),
        known: Vec::new(),
        seen_runs: HashSet::new(),
        runs_made: Default::default(),
        speculator,
        predictions: Default::default(),
    }
}

fn signed(k: Kernel) -> KernelSignature {
    match k {
        Kernel::Signed(s) => s,
        other => panic!("not built: {other:?}"),
    }
}

#[test]
fn run_set_tests_two_kernels_at_once_and_records_each_batch() {
    let dir = tempfile::tempdir().unwrap();
    let (repo_dir, commits) = demo(dir.path());
    let repo = Repo::open(&repo_dir).unwrap();
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    let mut ev = evaluator(dir.path(), &repo, &cache, 6, 1);
    let test_key = ev.test_key();
    let mut progress = |_: &str| {};
    // Commit 30 has the bug (it came in at 25), commit 12 not.
    let mut o = oracle(
        &repo,
        &cache,
        &mut ev,
        &mut progress,
        vec![commits[30].clone(), commits[12].clone()],
        None,
    );
    let (bad, good) = (signed(o.build(0).unwrap()), signed(o.build(1).unwrap()));
    let start = Instant::now();
    let classes = o
        .run_set(&[(0, bad.clone(), 3), (1, good.clone(), 3)], &Target::default())
        .unwrap();
    let wall = start.elapsed();
    assert!(classes[0].contains(&RunClass::Match), "{classes:?}");
    assert_eq!(classes[1], vec![RunClass::Ok; 3]);
    assert_eq!(o.steps.len(), 2, "one step per batch");
    assert_eq!(o.steps[1].eval.effort.runs_done, 3);

    let spans = |sig: &str| -> Vec<RunTime> {
        let sig = KernelSignature::parse(sig).unwrap();
        cache
            .runs(&sig, &test_key)
            .unwrap()
            .iter()
            .filter_map(RunTime::of)
            .collect()
    };
    let (bad_runs, good_runs) = (spans(&bad), spans(&good));
    assert_eq!(good_runs.len(), 3);
    let overlap = bad_runs
        .iter()
        .any(|b| good_runs.iter().any(|g| b.start < g.end && g.start < b.end));
    assert!(
        overlap,
        "the two kernels' runs never overlapped: {bad_runs:?} {good_runs:?}"
    );
    let total: f64 = bad_runs.iter().chain(&good_runs).map(|r| r.end - r.start).sum();
    assert!(wall.as_secs_f64() < total * 0.75, "{wall:?} for {total:.1}s of runs");
}

#[test]
fn prefetched_commits_are_built_in_the_background_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (repo_dir, commits) = demo(dir.path());
    let repo = Repo::open(&repo_dir).unwrap();
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    let mut ev = evaluator(dir.path(), &repo, &cache, 1, 2);
    let speculator = Speculator::start(&ev, &repo, &cache, None).unwrap();
    assert!(speculator.is_some(), "--build-jobs 2 has one build slot");
    let mut progress = |_: &str| {};
    let nodes = vec![commits[20].clone(), commits[30].clone(), commits[35].clone()];
    let mut o = oracle(&repo, &cache, &mut ev, &mut progress, nodes, speculator);
    o.prefetch(&[1, 2]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let built = |o: &GitOracle| o.speculator.as_ref().unwrap().stats().built;
    while built(&o) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(built(&o), 2, "the build slot built both wished-for commits");
    for i in [1, 2] {
        o.build(i).unwrap();
        assert_eq!(o.evals[&o.nodes[i]].build, BuildSource::Reused, "node {i} built again");
    }
    let stats = o.speculator.take().unwrap().finish();
    assert_eq!((stats.built, stats.used), (2, 2));
    let slot_tree = crate::bisect::worktree_dir(&cache, repo.dir());
    let slot_tree = slot_tree.with_file_name(format!("{}-b1", slot_tree.file_name().unwrap().to_string_lossy()));
    assert!(slot_tree.join(".git").is_dir(), "the slot built in its own tree");
    assert!(
        !crate::bisect::worktree_dir(&cache, repo.dir()).exists(),
        "the foreground built nothing"
    );
}
