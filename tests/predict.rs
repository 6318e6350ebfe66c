//! No-op prediction without a kernel: a real gcc build that leaves kbuild's
//! `.cmd` records (written the way kbuild's fixdep writes them, from gcc's
//! own dependency output), a real git history, real bisections.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Compiles every top-level `*.c` with `-Wp,-MMD` and turns each
/// dependency file into a kbuild-format `.NAME.o.cmd` (cmd_, source_,
/// deps_), then links `vmlinux`. `LEAK_DATA=1` also compiles in
/// `data/value.txt` without recording it: the input-set blind spot the
/// contradiction test needs.
const BUILD_SH: &str = r#"#!/bin/sh
set -e
extra=""
if [ -n "$LEAK_DATA" ]; then extra="-DVALUE=$(cat data/value.txt)"; fi
objs=""
for c in *.c; do
  o=${c%.c}.o
  cmd="gcc -Wp,-MMD,.$o.d -Iinc -O2 $extra -c -o $o $c"
  $cmd
  {
    echo "cmd_$o := $cmd"
    echo
    echo "source_$o := $c"
    echo
    echo "deps_$o := \\"
    sed -e '1s/^[^:]*://' -e 's/\\$//' .$o.d | tr ' ' '\n' | grep -v '^$' | grep -v "^$c$" |
      sed 's/^/  /; s/$/ \\/'
    echo
    echo "$o: \$(deps_$o)"
  } > .$o.cmd
  rm .$o.d
  objs="$objs $o"
done
gcc -o vmlinux $objs
"#;

const TEST_SH: &str = r#"#!/bin/sh
out=$("$KCACHE_ARTIFACTS/vmlinux")
if [ "$out" = ok ]; then exit 0; fi
echo "crash: BUG: $out"
exit 1
"#;

struct Toy {
    repo: PathBuf,
    build: String,
    test: String,
}

fn write(repo: &Path, path: &str, text: &str) {
    let p = repo.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const COMMITS: usize = 40;

/// A history of COMMITS commits after the base: documentation, an unbuilt
/// driver, a new header beside the built ones, and (commit `regression`)
/// the change that breaks the kernel, which is in `main.c` or, with
/// `in_data`, only in `data/value.txt`.
fn toy_history(dir: &Path, regression: usize, in_data: bool) -> Toy {
    let repo = one_commit_repo(&dir.join("toy"));
    write(
        &repo,
        "main.c",
        "#include <stdio.h>\n#include \"a.h\"\nint main(void) { puts(status()); return 0; }\n",
    );
    write(
        &repo,
        "a.c",
        "#include \"a.h\"\n#ifndef VALUE\n#define VALUE 1\n#endif\nconst char *status(void) { return VALUE ? \"ok\" : \"broken\"; }\n",
    );
    write(&repo, "inc/a.h", "const char *status(void);\n");
    write(&repo, "data/value.txt", "1\n");
    write(&repo, "drivers/unused.c", "int unused;\n");
    write(&repo, "Documentation/guide.txt", "v0\n");
    commit_all(&repo, "base");
    for i in 1..=COMMITS {
        if i == regression {
            if in_data {
                write(&repo, "data/value.txt", "0\n");
            } else {
                write(
                    &repo,
                    "a.c",
                    "#include \"a.h\"\nconst char *status(void) { return \"broken\"; }\n",
                );
            }
            commit_all(&repo, "the regression");
            continue;
        }
        if i == 7 {
            write(&repo, "inc/new.h", "/* could shadow an include */\n");
        } else if i % 3 == 0 {
            write(&repo, "drivers/unused.c", &format!("int unused = {i};\n"));
        } else {
            write(&repo, "Documentation/guide.txt", &format!("v{i}\n"));
        }
        commit_all(&repo, &format!("change {i}"));
    }
    let build = dir.join("build.sh");
    let test = dir.join("test.sh");
    std::fs::write(&build, BUILD_SH).unwrap();
    std::fs::write(&test, TEST_SH).unwrap();
    Toy {
        repo,
        build: format!("sh {}", build.display()),
        test: format!("sh {}", test.display()),
    }
}

/// A `--policy classic` bisection of the toy history.
fn bisect(cache: &Path, toy: &Toy, extra: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    bisect_as(cache, toy, &["--policy", "classic"], extra, env)
}

fn bisect_as(cache: &Path, toy: &Toy, policy: &[&str], extra: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let good = commit_by_subject(&toy.repo, "^base$");
    let mut cmd = kcache();
    cmd.arg("--cache-dir")
        .arg(cache)
        .args(["bisect", "--repo"])
        .arg(&toy.repo)
        .args([
            "--good", &good, "--bad", "HEAD", "--build", &toy.build, "--test", &toy.test,
        ])
        .args(["--runs", "2", "--json", "--toolchain", "gcc test"])
        .args(policy)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    json(&run_ok(&mut cmd))
}

fn steps_with(summary: &serde_json::Value, build: &str) -> Vec<serde_json::Value> {
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["build"] == build)
        .cloned()
        .collect()
}

#[test]
fn prediction_skips_no_op_builds_and_still_builds_culprit_and_parent() {
    let dir = tempfile::tempdir().unwrap();
    let toy = toy_history(dir.path(), 29, false);
    let regression = commit_by_subject(&toy.repo, "the regression");
    let cache = dir.path().join("cache");
    let log = dir.path().join("bisect.log");
    let log_arg = log.display().to_string();
    let predicted = bisect(&cache, &toy, &["--log", &log_arg], &[]);
    assert_eq!(predicted["outcome"]["commit"], regression.as_str(), "{predicted:#}");
    let n_predicted = totals(&predicted, "builds_predicted");
    assert!(n_predicted > 0, "{predicted:#}");
    for s in steps_with(&predicted, "predicted") {
        assert!(
            s["predicted_from"].is_string(),
            "a predicted step names its reference: {s}"
        );
        assert_eq!(s["purpose"], "bisect");
    }
    // The culprit and its parent are real builds with different signatures.
    let parent = git(&toy.repo, &["rev-parse", &format!("{regression}^")]);
    for c in [&regression, &parent] {
        let real = predicted["steps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["commit"] == c.as_str() && s["build"] == "built");
        assert!(real, "{c} really built: {predicted:#}");
    }
    assert_ne!(
        predicted["outcome"]["signature"],
        predicted["outcome"]["parents"][0]["signature"]
    );
    assert_eq!(totals(&predicted, "prediction_contradictions"), 0);
    assert!(std::fs::read_to_string(&log).unwrap().contains("predicted, not built"));
    // The log with predicted steps still reads back with kcache's own parser.
    let parsed = kcache::syzlog::parse_file(&log).unwrap();
    assert_eq!(parsed.culprit(), Some(regression.as_str()));
    // Input sets were recorded, and they are what the schema says.
    let sets: Vec<(String, serde_json::Value)> = kcache::store::Cache::open(&cache)
        .unwrap()
        .raw_records(kcache::store::index::CF_INPUT_SETS)
        .unwrap();
    assert!(!sets.is_empty());
    let files = sets[0].1["files"].as_array().unwrap();
    assert!(
        files.iter().any(|f| f == "inc/a.h") && files.iter().any(|f| f == "a.c"),
        "{files:?}"
    );
    validate_all(&cache);

    // `kcache predict`: the regression has no predecessor's kernel, a
    // documentation change right after it has the regression's.
    let doc_after = git(&toy.repo, &["rev-list", "--reverse", &format!("{regression}..HEAD")]);
    let doc_after = doc_after.lines().next().unwrap();
    let out = run_ok(
        kcache()
            .arg("--cache-dir")
            .arg(&cache)
            .args(["predict", "--json", "--repo"])
            .arg(&toy.repo)
            .args([doc_after, &parent]),
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let same_as = |v: &serde_json::Value| -> Vec<String> {
        v["references"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["same_kernel"] == true)
            .map(|r| r["reference"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(same_as(&lines[0]).contains(&regression), "{lines:?}");
    assert!(!same_as(&lines[1]).contains(&regression), "{lines:?}");

    // The same bisection without prediction: same answer, more builds.
    let plain = bisect(&dir.path().join("cache2"), &toy, &["--no-predict"], &[]);
    assert_eq!(plain["outcome"]["commit"], regression.as_str());
    assert_prediction_saved_builds(&predicted, &plain);

    // Warm: nothing built, nothing run.
    let warm = bisect(&cache, &toy, &[], &[]);
    assert_eq!(warm["outcome"]["commit"], regression.as_str());
    assert_eq!(totals(&warm, "builds_done"), 0, "{warm:#}");
    assert_eq!(totals(&warm, "runs_done"), 0, "{warm:#}");
}

/// Bisects the toy history whose regression is in a file the build reads
/// but does not record (a prediction across it is wrong) under `policy`:
/// the contradiction is said in the notes and counted in `stats`, and the
/// bisection recovers the right culprit. The contradictions counted.
fn a_wrong_prediction_is_caught(policy: &[&str]) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let toy = toy_history(dir.path(), 13, true);
    let regression = commit_by_subject(&toy.repo, "the regression");
    let cache = dir.path().join("cache");
    let out = bisect_as(&cache, &toy, policy, &[], &[("LEAK_DATA", "1")]);
    assert!(
        out["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("PREDICTION CONTRADICTED")),
        "{out:#}"
    );
    assert_eq!(
        out["outcome"]["commit"],
        regression.as_str(),
        "recovered the right culprit: {out:#}"
    );
    let contradictions = totals(&out, "prediction_contradictions");
    let stats = run_ok(kcache().arg("--cache-dir").arg(&cache).args(["stats", "--json"]));
    let counted = format!("\"prediction_contradictions\": {contradictions}");
    assert!(String::from_utf8_lossy(&stats.stdout).contains(&counted));
    contradictions
}

#[test]
fn a_contradicted_prediction_is_loud_and_the_bisection_recovers() {
    assert_eq!(a_wrong_prediction_is_caught(&["--policy", "classic"]), 1);
}

/// Commits of a summary's steps whose kernel was really built.
fn built_commits(summary: &serde_json::Value) -> Vec<String> {
    steps_with(summary, "built")
        .iter()
        .map(|s| s["commit"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_default_search_predicts_no_op_commits_and_builds_fewer_kernels() {
    let dir = tempfile::tempdir().unwrap();
    let toy = toy_history(dir.path(), 29, false);
    let regression = commit_by_subject(&toy.repo, "the regression");
    let parent = git(&toy.repo, &["rev-parse", &format!("{regression}^")]);
    let cache = dir.path().join("cache");
    let predicted = bisect_as(&cache, &toy, &[], &[], &[]);
    assert_eq!(predicted["outcome"]["commit"], regression.as_str(), "{predicted:#}");
    assert!(totals(&predicted, "builds_predicted") > 0, "{predicted:#}");
    assert_eq!(totals(&predicted, "prediction_contradictions"), 0, "{predicted:#}");
    // The answer rests on real builds: the culprit and its parent.
    let built = built_commits(&predicted);
    for c in [&regression, &parent] {
        assert!(built.contains(c), "{c} really built: {predicted:#}");
    }
    assert_ne!(
        predicted["outcome"]["signature"],
        predicted["outcome"]["parents"][0]["signature"]
    );
    // Every kernel is built at most once.
    let mut unique = built.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), built.len(), "{built:?}");

    // The same search without prediction: same culprit, more builds.
    let plain = bisect_as(&dir.path().join("cache2"), &toy, &[], &["--no-predict"], &[]);
    assert_eq!(plain["outcome"]["commit"], regression.as_str(), "{plain:#}");
    assert_prediction_saved_builds(&predicted, &plain);

    // Warm: nothing built, nothing run; the same commits predicted.
    let warm = bisect_as(&cache, &toy, &[], &[], &[]);
    assert_eq!(warm["outcome"]["commit"], regression.as_str(), "{warm:#}");
    assert_eq!(totals(&warm, "builds_done"), 0, "{warm:#}");
    assert_eq!(totals(&warm, "runs_done"), 0, "{warm:#}");
}

#[test]
fn the_default_search_catches_a_wrong_prediction_and_searches_again() {
    assert!(a_wrong_prediction_is_caught(&[]) >= 1);
}

/// The same search without prediction (`plain`) predicted nothing and built
/// more kernels than with it (`predicted`); both counts are printed.
fn assert_prediction_saved_builds(predicted: &serde_json::Value, plain: &serde_json::Value) {
    assert_eq!(totals(plain, "builds_predicted"), 0);
    let (with, without) = (totals(predicted, "builds_done"), totals(plain, "builds_done"));
    eprintln!(
        "builds: {with} with prediction ({} predicted), {without} without",
        totals(predicted, "builds_predicted")
    );
    assert!(
        without > with,
        "prediction saved builds: {without} without, {with} with"
    );
}
