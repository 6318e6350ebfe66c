//! The revert check after a bisection names a culprit (`bisect::confirm`),
//! on toy histories built by real gcc in real git.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A toy "kernel" whose BUG fires when any of `a.h`, `b.h` says so; `c.h`
/// is unrelated churn.
const MAIN_C: &str = r#"#include <stdio.h>
#include "a.h"
#include "b.h"
#include "c.h"
int main(void)
{
	if (A_BUG || B_BUG) {
		puts("BUG: KASAN: use-after-free in toy_fn");
		return 1;
	}
	printf("toy kernel booted (%d)\n", C_VAL);
	return 0;
}
"#;

const BUILD: &str = "gcc -O2 -o vmlinux main.c";

/// The test: exit 1 with a `crash:` line on a BUG, 0 when it boots.
fn toy_test(dir: &Path) -> PathBuf {
    test_script(dir, "test.sh", "")
}

/// The toy test as `name`, running the shell lines `first` before it.
fn test_script(dir: &Path, name: &str, first: &str) -> PathBuf {
    let script = dir.join(name);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nv=\"$KCACHE_ARTIFACTS/vmlinux\"\n[ -x \"$v\" ] || exit 125\n{first}\
             bug=$(\"$v\" | grep -o 'BUG: .*')\n[ -n \"$bug\" ] && {{ echo \"crash: $bug\"; exit 1; }}\nexit 0\n"
        ),
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&script));
    script
}

/// A history: the root (no bug), then one commit per (file, content,
/// subject). Returns the repository and the commit ids, root first.
fn toy_history(dir: &Path, commits: &[(&str, &str, &str)]) -> (PathBuf, Vec<String>) {
    let repo = one_commit_repo(&dir.join("repo"));
    std::fs::write(repo.join("main.c"), MAIN_C).unwrap();
    std::fs::write(repo.join("a.h"), "/* a */\n#define A_BUG 0\n/* end */\n").unwrap();
    std::fs::write(repo.join("b.h"), "#define B_BUG 0\n").unwrap();
    std::fs::write(repo.join("c.h"), "#define C_VAL 0\n").unwrap();
    let mut ids = vec![commit_all(&repo, "toy: the kernel")];
    for (file, content, subject) in commits {
        std::fs::write(repo.join(file), content).unwrap();
        ids.push(commit_all(&repo, subject));
    }
    (repo, ids)
}

fn bisect(cache: &Path, repo: &Path, good: &str, bad: &str, test: &Path) -> Command {
    let mut c = bisect_with(cache, repo, good, bad, BUILD, test.to_str().unwrap());
    c.args(["--runs", "3", "--json"]);
    c
}

const A_BUG: &str = "/* a */\n#define A_BUG 1\n/* end */\n";

#[test]
fn a_right_culprit_is_confirmed_and_a_warm_rerun_builds_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = bug_at_commit_2(dir.path());
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    let log = dir.path().join("bisect.log");
    let cold = json(&run_ok(
        bisect(&cache, &repo, &ids[0], "HEAD", &test).arg("--log").arg(&log),
    ));
    assert_eq!(cold["outcome"]["commit"], ids[2].as_str(), "{cold}");
    let c = &cold["confirmation"];
    assert_eq!(c["verdict"], "confirmed", "{cold}");
    assert_eq!(c["change"], "revert");
    assert_eq!(c["on"], ids[4].as_str());
    assert_eq!(c["runs"]["matched"], 0);
    // The culprit and the tip crashed every run: a few runs show a crash at
    // the low end of that rate's interval with >= 99%.
    assert_eq!(c["crash_rate"], 1.0, "{c}");
    let wanted = c["runs_wanted"].as_u64().unwrap();
    assert!((3..=10).contains(&wanted), "{c}");
    assert_eq!(
        (c["builds_done"].as_u64(), c["runs_done"].as_u64()),
        (Some(1), Some(wanted)),
        "{c}"
    );
    // The build record of the reverted kernel names its patch and the tree
    // it built; the bisection record (v3) holds the check as the summary has it.
    assert!(validate_all(&cache) > 0);
    let listed = json(&run_ok(kc(&cache).args(["bisections", "--json"])));
    let recorded = &listed["bisections"][0]["confirmation"];
    assert_eq!(recorded, c, "the record's check is the summary's");
    assert_eq!(recorded["build_key"].as_str().map(str::len), Some(64), "{recorded}");
    let listed_text = String::from_utf8_lossy(&run_ok(kc(&cache).arg("bisections")).stdout).to_string();
    assert!(listed_text.contains("culprit CONFIRMED"), "{listed_text}");
    assert_v2_record_still_loads(&cache);

    // The log: the check's lines after the ending, which still reads back.
    let text = std::fs::read_to_string(&log).unwrap();
    let check: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# kcache: revert check:"))
        .collect();
    assert_eq!(check.len(), 4, "{text}");
    assert!(
        check[0].contains(&format!("{} reverted on {}", ids[2], ids[4])),
        "{text}"
    );
    assert!(check[1].contains(recorded["build_key"].as_str().unwrap()), "{text}");
    assert!(
        check[2].contains(&format!("0 of {wanted} run(s) crashed with the bug")),
        "{text}"
    );
    assert!(check[3].ends_with("culprit confirmed: the crash is gone"), "{text}");
    assert_log_matches(&log, &cold);

    let warm = json(&run_ok(&mut bisect(&cache, &repo, &ids[0], "HEAD", &test)));
    let c = &warm["confirmation"];
    assert_eq!(c["verdict"], "confirmed", "{warm}");
    assert_eq!(
        (c["builds_done"].as_u64(), c["runs_done"].as_u64()),
        (Some(0), Some(0)),
        "{c}"
    );
    assert_eq!(c["runs_reused"].as_u64(), Some(wanted));
    assert_eq!(totals(&warm, "builds_done"), 0, "{warm}");
    assert_eq!(totals(&warm, "runs_done"), 0, "{warm}");

    // Text: the line says so; --no-confirm leaves the check out.
    let text = run_ok(bisect_with(&cache, &repo, &ids[0], "HEAD", BUILD, test.to_str().unwrap()).args(["--runs", "3"]));
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("culprit CONFIRMED"), "{text}");
    let off = json(&run_ok(
        bisect(&cache, &repo, &ids[0], "HEAD", &test).arg("--no-confirm"),
    ));
    assert!(off.get("confirmation").is_none(), "{off}");
}

/// A record kept before the check existed (`kcache/bisection/v2`, no
/// `confirmation`) still loads: listed, and rendered without a check.
fn assert_v2_record_still_loads(cache: &Path) {
    let store = kcache::store::Cache::open(cache).unwrap();
    let records: Vec<(String, serde_json::Value)> = store.raw_records("bisections").unwrap();
    let mut old = records[0].1.clone();
    old.as_object_mut().unwrap().remove("confirmation");
    old["schema"] = "kcache/bisection/v2".into();
    let id = "1000000000-0a0b0c";
    old["id"] = id.into();
    let errors: Vec<String> = schema("bisection.v2.json")
        .iter_errors(&old)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "not a v2 record: {errors:?}");
    let key: kcache::store::BisectionId = serde_json::from_value(id.into()).unwrap();
    store.put_bisection(&key, &old).unwrap();
    drop(store);
    let listed = json(&run_ok(kc(cache).args(["bisections", "--json"])));
    let loaded = listed["bisections"].as_array().unwrap().iter().find(|b| b["id"] == id);
    assert!(loaded.is_some_and(|b| b.get("confirmation").is_none()), "{listed}");
    let html = String::from_utf8_lossy(&run_ok(kc(cache).args(["report", id])).stdout).to_string();
    assert!(html.contains("id=\"culprit\"") && !html.contains("id=\"confirmation\""));
    validate_all(cache);
}

/// The toy test, but each kernel's first run crashes with an unrelated
/// bug (a `WARNING`).
fn unrelated_first_run_test(dir: &Path) -> PathBuf {
    let seen = dir.join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    // mkdir is atomic: of two runs of one kernel at once, one is first.
    let first = format!(
        "s=\"{}/$(sha1sum < \"$v\" | cut -c1-40)\"\n\
         mkdir \"$s\" 2>/dev/null && {{ echo 'crash: WARNING in unrelated_fn'; exit 1; }}\n",
        seen.display()
    );
    test_script(dir, "test-unrelated.sh", &first)
}

/// The bug comes in at commit 2 of 4, between churn.
fn bug_at_commit_2(dir: &Path) -> (PathBuf, Vec<String>) {
    toy_history(
        dir,
        &[
            ("c.h", "#define C_VAL 1\n", "c: one"),
            ("a.h", A_BUG, "a: the bug"),
            ("c.h", "#define C_VAL 2\n", "c: two"),
            ("c.h", "#define C_VAL 3\n", "c: three"),
        ],
    )
}

#[test]
fn an_unrelated_crash_does_not_end_the_check_early() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = bug_at_commit_2(dir.path());
    let (cache, test) = (dir.path().join("cache"), unrelated_first_run_test(dir.path()));
    let mut cmd = bisect(&cache, &repo, &ids[0], "HEAD", &test);
    cmd.args(["--crash-title", "BUG: KASAN: use-after-free in toy_fn"]);
    let s = json(&run_ok(&mut cmd));
    assert_eq!(s["outcome"]["commit"], ids[2].as_str(), "{s}");
    let c = &s["confirmation"];
    // The reverted kernel's first run is the unrelated WARNING: it neither
    // confirms nor refutes, and the check goes on to its informative runs.
    assert_eq!(c["verdict"], "confirmed", "{c}");
    assert_eq!(
        (
            c["runs"]["other"].as_u64(),
            c["runs"]["ok"].as_u64(),
            c["runs"]["matched"].as_u64()
        ),
        (Some(1), c["runs_wanted"].as_u64(), Some(0)),
        "{c}"
    );
    assert_eq!(c["runs_done"].as_u64(), c["runs_wanted"].as_u64().map(|n| n + 1), "{c}");
    validate_all(&cache);
}

#[test]
fn a_culprit_whose_revert_still_crashes_is_not_confirmed_with_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    // Two causes of one crash: the bisection names the first; reverting it
    // on the tip leaves the second.
    let (repo, ids) = toy_history(
        dir.path(),
        &[
            ("a.h", A_BUG, "a: the bug"),
            ("c.h", "#define C_VAL 1\n", "c: one"),
            ("b.h", "#define B_BUG 1\n", "b: the same bug again"),
        ],
    );
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    let out = run_status(&mut bisect(&cache, &repo, &ids[0], "HEAD", &test), 4);
    let s = json(&out);
    assert_eq!(s["outcome"]["commit"], ids[1].as_str(), "{s}");
    let c = &s["confirmation"];
    assert_eq!(c["verdict"], "not-confirmed", "{s}");
    assert!(c["runs"]["matched"].as_u64() > Some(0), "{c}");
    let notes = strings(&s["notes"]).join("\n");
    assert!(notes.contains("NOT confirmed"), "{notes}");
    let listed = json(&run_ok(kc(&cache).args(["bisections", "--json"])));
    assert_eq!(&listed["bisections"][0]["confirmation"], c, "the record's check");
    validate_all(&cache);
    let text = run_status(
        bisect_with(&cache, &repo, &ids[0], "HEAD", BUILD, test.to_str().unwrap()).args(["--runs", "3"]),
        4,
    );
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("culprit NOT CONFIRMED"), "{text}");
}

#[test]
fn a_revert_that_conflicts_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = toy_history(
        dir.path(),
        &[
            ("a.h", A_BUG, "a: the bug"),
            (
                "a.h",
                "/* a */\n#define A_BUG 1 /* on purpose */\n/* end */\n",
                "a: a comment on the bug",
            ),
        ],
    );
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    let s = json(&run_ok(&mut bisect(&cache, &repo, &ids[0], "HEAD", &test)));
    assert_eq!(s["outcome"]["commit"], ids[1].as_str(), "{s}");
    let c = &s["confirmation"];
    assert_eq!(c["verdict"], "cannot-revert", "{s}");
    assert_eq!(strings(&c["conflicts"]), vec!["a.h"], "{c}");
    assert_eq!(c["builds_done"], 0);
}

#[test]
fn a_fix_is_confirmed_by_applying_it_on_the_crashing_end() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = toy_history(
        dir.path(),
        &[
            ("a.h", A_BUG, "a: the bug"),
            ("c.h", "#define C_VAL 1\n", "c: one"),
            ("a.h", "/* a */\n#define A_BUG 0\n/* end */\n", "a: the fix"),
            ("c.h", "#define C_VAL 2\n", "c: two"),
        ],
    );
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    let s = json(&run_ok(bisect(&cache, &repo, "HEAD", &ids[1], &test).arg("--fix")));
    assert_eq!(s["outcome"]["commit"], ids[3].as_str(), "{s}");
    let c = &s["confirmation"];
    assert_eq!(
        (c["verdict"].as_str(), c["change"].as_str()),
        (Some("confirmed"), Some("apply-fix")),
        "{s}"
    );
    assert_eq!(c["on"], ids[1].as_str());
}

/// `kcache test-patch` of `patch` on `repo` with the toy build and test.
fn test_patch(cache: &Path, repo: &Path, patch: &Path, base: &str, test: &Path) -> Command {
    let mut c = kcache();
    c.arg("--cache-dir").arg(cache).args(["test-patch", "--repo"]).arg(repo);
    c.arg("--patch")
        .arg(patch)
        .args(["--base", base, "--build", BUILD, "--test"]);
    c.arg(test).args(["--runs", "3", "--json"]);
    c
}

/// A history with the bug in `a.h` since commit 1, churn in `c.h` after.
fn buggy_history(dir: &Path) -> (PathBuf, Vec<String>) {
    toy_history(
        dir,
        &[
            ("a.h", A_BUG, "a: the bug"),
            ("c.h", "#define C_VAL 1\n", "c: one"),
            ("c.h", "#define C_VAL 2\n", "c: two"),
        ],
    )
}

/// The diff (with full blob ids) of editing `file` to `content` at HEAD,
/// left uncommitted.
fn patch_of(repo: &Path, file: &str, content: &str, out: &Path) -> PathBuf {
    let before = std::fs::read_to_string(repo.join(file)).unwrap();
    std::fs::write(repo.join(file), content).unwrap();
    let diff = git(repo, &["diff", "--full-index"]);
    std::fs::write(repo.join(file), before).unwrap();
    std::fs::write(out, format!("{diff}\n")).unwrap();
    out.to_path_buf()
}

#[test]
fn test_patch_passes_a_real_fix_and_fails_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = buggy_history(dir.path());
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    let fix = patch_of(
        &repo,
        "a.h",
        "/* a */\n#define A_BUG 0\n/* end */\n",
        &dir.path().join("fix.diff"),
    );
    let s = json(&run_ok(&mut test_patch(&cache, &repo, &fix, "HEAD", &test)));
    assert_eq!(s["verdict"], "fixed", "{s}");
    assert!(s["base_runs"]["matched"].as_u64() > Some(0), "{s}");
    assert_eq!(s["patched_runs"]["matched"], 0);
    let wrong = patch_of(&repo, "c.h", "#define C_VAL 7\n", &dir.path().join("wrong.diff"));
    let s = json(&run_status(&mut test_patch(&cache, &repo, &wrong, "HEAD", &test), 1));
    assert_eq!(s["verdict"], "not-fixed", "{s}");
    // Again: both kernels are cached, every run pooled.
    let s = json(&run_ok(&mut test_patch(&cache, &repo, &fix, "HEAD", &test)));
    assert_eq!(s["patched_eval"]["build"], "reused", "{s}");
    assert_eq!(s["patched_eval"]["runs_done"], 0, "{s}");
}

#[test]
fn test_patch_names_the_hunk_that_does_not_apply() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = buggy_history(dir.path());
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    let patch = dir.path().join("stale.diff");
    std::fs::write(
        &patch,
        "diff --git a/c.h b/c.h\n--- a/c.h\n+++ b/c.h\n@@ -1 +1 @@\n-#define C_VAL 9\n+#define C_VAL 10\n",
    )
    .unwrap();
    let out = run_status(&mut test_patch(&cache, &repo, &patch, &ids[3], &test), 2);
    let err = stderr(&out);
    assert!(err.contains("does not apply") && err.contains("c.h:1"), "{err}");
}

#[test]
fn base_auto_finds_an_older_base_and_refuses_unknown_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, ids) = buggy_history(dir.path());
    let (cache, test) = (dir.path().join("cache"), toy_test(dir.path()));
    // Made against commit 2 (c.h at "C_VAL 1"), which HEAD no longer has.
    let branch = git(&repo, &["rev-parse", "--abbrev-ref", "HEAD"]);
    git(&repo, &["checkout", "-q", &ids[2]]);
    let old = patch_of(&repo, "c.h", "#define C_VAL 5\n", &dir.path().join("old.diff"));
    git(&repo, &["checkout", "-q", &branch]);
    let s = json(&run_status(&mut test_patch(&cache, &repo, &old, "auto", &test), 1));
    assert_eq!(
        (s["base"].as_str(), s["base_from"].as_str()),
        (Some(ids[2].as_str()), Some("blob-ids")),
        "{s}"
    );
    // A blob this repository never had.
    let alien = dir.path().join("alien.diff");
    let text = std::fs::read_to_string(&old).unwrap();
    let index = text.lines().find(|l| l.starts_with("index ")).unwrap();
    std::fs::write(
        &alien,
        text.replace(index, &format!("index {}..{} 100644", "1".repeat(40), "2".repeat(40))),
    )
    .unwrap();
    let err = stderr(&run_status(&mut test_patch(&cache, &repo, &alien, "auto", &test), 2));
    assert!(err.contains("no commit reachable") && err.contains("c.h 1111"), "{err}");
}
