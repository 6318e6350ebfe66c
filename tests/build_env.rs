//! Build environments (issue 32) on real parts: a toy history whose code
//! builds only with GCC 11 before the tag `v2` and only with GCC 12 from
//! it (Debian 12's `gcc-11` and `gcc-12`, real builds), bisected across
//! the tag with a table and without one; the keys `kcache key` gives; a
//! table naming a compiler that is not installed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::toy::{History, MAIN_C};
use common::*;

/// Builds with the build's `$CC` (make's `cc` when unset) and warnings as errors.
const MAKEFILE: &str = ".PHONY: vmlinux\nvmlinux: $(sort $(wildcard *.c))\n\t$(CC) -O2 -Wall -Werror -o $@ $^\n";

/// GCC 12 rejects it under -Wall -Werror (-Wdangling-pointer, new in 12); GCC 11 does not warn.
const OLD_C: &str = "int *remembered;\nvoid remember(void)\n{\n\tint local = 1;\n\tremembered = &local;\n}\n";

/// Only GCC 12 has `__builtin_dynamic_object_size`.
const NEW_C: &str =
    "#include <stddef.h>\nsize_t object_size(void *p)\n{\n\treturn __builtin_dynamic_object_size(p, 0);\n}\n";

/// GCC 11 before `v2`, GCC 12 from it.
const TABLE: &str = "version = 1\n[[compiler]]\nsince = \"v2\"\ncc = \"gcc-12\"\n[[compiler]]\ncc = \"gcc-11\"\n";

const BUILD: &str = "make -s vmlinux";

/// The history: the bug comes in before `v2`, where only GCC 11 builds.
struct Toy {
    h: History,
    root: String,
    culprit: String,
}

fn toy(dir: &Path) -> Toy {
    let mut h = History::new(dir);
    std::fs::write(h.repo.join("Makefile"), MAKEFILE).unwrap();
    std::fs::write(h.repo.join("main.c"), MAIN_C).unwrap();
    let root = h.write("old.c", OLD_C, "old code: GCC 11 only");
    h.change("pre 1");
    h.change("pre 2");
    let culprit = h.bug("pre 3: the regression");
    h.change("pre 4");
    h.delete("old.c", "drop the old code");
    h.write("new.c", NEW_C, "new code: GCC 12 only");
    h.tag("v2");
    h.change("post 1");
    h.change("post 2");
    Toy { h, root, culprit }
}

fn table(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `kcache bisect --json` of the toy from its root to HEAD, `args` added;
/// `CC` unset, so a build without a table uses make's `cc` (GCC 12).
fn bisect(cache: &Path, t: &Toy, test: &Path, args: &[&str]) -> Command {
    let mut c = bisect_with(cache, &t.h.repo, &t.root, "HEAD", BUILD, test.to_str().unwrap());
    c.args(["--runs", "3", "--json"]).args(args).env_remove("CC");
    c
}

fn steps(s: &serde_json::Value) -> Vec<serde_json::Value> {
    s["steps"].as_array().cloned().unwrap_or_default()
}

#[test]
fn a_table_builds_each_side_with_its_compiler_and_the_bisection_crosses_the_tag_without_skips() {
    let dir = tempfile::tempdir().unwrap();
    let t = toy(dir.path());
    let test = counter_test(dir.path(), "test.sh", 0, 1000, "");
    let env = table(dir.path(), "build-env.toml", TABLE);
    let args = ["--build-env", env.to_str().unwrap()];
    let cache = dir.path().join("cache");
    let log = dir.path().join("bisect.log");
    let cold = json(&run_ok(bisect(&cache, &t, &test, &args).arg("--log").arg(&log)));
    assert_eq!(cold["outcome"]["kind"], "culprit", "{cold}");
    assert_eq!(cold["outcome"]["commit"], t.culprit.as_str(), "{cold}");
    let (mut old, mut new) = (0, 0);
    for s in steps(&cold) {
        assert_ne!(s["verdict"], "skip", "no step is skipped: {s}");
        assert!(
            s["build"] != "failed" && s["build"] != "known-broken",
            "every build succeeds: {s}"
        );
        let commit = s["commit"].as_str().unwrap();
        let after_tag = Command::new("git")
            .arg("-C")
            .arg(&t.h.repo)
            .args(["merge-base", "--is-ancestor", "v2", commit])
            .status()
            .unwrap()
            .success();
        let cc = s["build_env"]["compiler"]["cc"]
            .as_str()
            .unwrap_or_else(|| panic!("{s}"));
        assert_eq!(cc, if after_tag { "gcc-12" } else { "gcc-11" }, "{s}");
        assert!(s["build_env"]["toolchain"].as_str().unwrap().starts_with(cc), "{s}");
        match after_tag {
            true => new += 1,
            false => old += 1,
        }
    }
    assert!(old > 0 && new > 0, "the bisection tested both sides of the tag: {cold}");
    // Warm: the same answer from the cache alone.
    let warm = json(&run_ok(&mut bisect(&cache, &t, &test, &args)));
    assert_eq!(warm["outcome"]["commit"], t.culprit.as_str(), "{warm}");
    assert_eq!(totals(&warm, "builds_done"), 0, "warm rerun builds nothing: {warm}");
    assert_eq!(totals(&warm, "runs_done"), 0, "warm rerun runs nothing: {warm}");
    // The cold run's text log names each step's compiler.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("compiler: gcc-11") && text.contains("compiler: gcc-12"),
        "{text}"
    );
    assert!(
        text.contains("# kcache: build environment: gcc-11 ([[compiler]] #2 (always))"),
        "{text}"
    );
}

#[test]
fn one_compiler_for_every_commit_cannot_build_before_the_tag() {
    let dir = tempfile::tempdir().unwrap();
    let t = toy(dir.path());
    let test = counter_test(dir.path(), "test.sh", 0, 1000, "");
    let out = bisect(&dir.path().join("cache"), &t, &test, &[]).output().unwrap();
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !(out.status.success() && s["outcome"]["commit"] == t.culprit.as_str()),
        "GCC 12 alone cannot find the culprit among commits it cannot build: {s}\n{stderr}"
    );
    let failed: Vec<serde_json::Value> = steps(&s).into_iter().filter(|s| s["build"] == "failed").collect();
    assert!(!failed.is_empty(), "{s}");
    for f in &failed {
        let tail = f["failure"]["tail"].as_str().unwrap();
        assert!(
            tail.contains("dangling-pointer"),
            "GCC 12's error, recorded as the commit's: {f}"
        );
        assert_eq!(f["failure"]["deterministic"], true, "{f}");
    }
}

/// `kcache key --json` of a commit with the toy's build, `args` added.
fn key(repo: &Path, commit: &str, args: &[&str]) -> serde_json::Value {
    let mut c = kcache();
    c.args(["key", "--json", "--build-cmd", BUILD, "--commit", commit, "--repo"])
        .arg(repo)
        .args(args);
    json(&run_ok(&mut c))
}

#[test]
fn keys_hold_the_environment_and_a_table_change_moves_only_the_keys_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    // Four commits of one tree: two before `v2`, two from it.
    let repo = one_commit_repo(&dir.path().join("repo"));
    let before = [commit_all(&repo, "a"), commit_all(&repo, "b")];
    let after = [commit_all(&repo, "tagged"), commit_all(&repo, "c")];
    git(&repo, &["tag", "v2", &after[0]]);
    let config = dir.path().join("config");
    std::fs::write(&config, "CONFIG_KCOV=y\nCONFIG_LOCALVERSION_AUTO=y\n").unwrap();
    let env = table(dir.path(), "build-env.toml", TABLE);
    let keyed = |commit: &str, table: &Path| {
        key(
            &repo,
            commit,
            &[
                "--config",
                config.to_str().unwrap(),
                "--build-env",
                table.to_str().unwrap(),
            ],
        )
    };
    let k = |v: &serde_json::Value| v["build_key"].as_str().unwrap().to_string();
    let (b0, b1, a0, a1) = (
        keyed(&before[0], &env),
        keyed(&before[1], &env),
        keyed(&after[0], &env),
        keyed(&after[1], &env),
    );
    assert_eq!(k(&b0), k(&b1), "one tree, one environment: one build");
    assert_eq!(k(&a0), k(&a1));
    assert_ne!(k(&b0), k(&a0), "one tree in two environments: two builds");
    assert_eq!(b0["build_env"]["compiler"]["cc"], "gcc-11", "{b0}");
    assert_eq!(a0["build_env"]["compiler"]["cc"], "gcc-12", "{a0}");
    assert!(
        b0["inputs"]["toolchain"].as_str().unwrap().starts_with("gcc-11 "),
        "{b0}"
    );
    // A config fixup from `v2` on: the keys after the tag change, the ones before stay.
    let fixup = table(
        dir.path(),
        "fixup.toml",
        &format!("{TABLE}[[config]]\nsince = \"v2\"\noff = [\"KCOV\"]\n"),
    );
    let (b0f, a0f) = (keyed(&before[0], &fixup), keyed(&after[0], &fixup));
    assert_eq!(k(&b0f), k(&b0), "a rule that does not apply keeps the key");
    assert_ne!(k(&a0f), k(&a0), "a fixup changes the key");
    assert_eq!(a0f["build_env"]["config"]["KCOV"], false, "{a0f}");
    // No table: the key is what it always was (the toolchain given).
    let plain = key(
        &repo,
        &before[0],
        &["--config", config.to_str().unwrap(), "--toolchain", "gcc"],
    );
    assert!(plain.get("build_env").is_none(), "{plain}");
    assert!(plain["inputs"].get("patches").is_none(), "{plain}");
}

/// The stderr of a bisection with `table` that must fail.
fn refused(cache: &Path, t: &Toy, test: &Path, table: &Path) -> String {
    let out = bisect(cache, t, test, &["--build-env", table.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_compiler_that_is_not_installed_stops_before_building_and_names_its_package() {
    let dir = tempfile::tempdir().unwrap();
    let t = toy(dir.path());
    let test = counter_test(dir.path(), "test.sh", 0, 1000, "");
    let missing = TABLE.replace("gcc-11", "gcc-4.9");
    let env = table(dir.path(), "missing.toml", &missing);
    let stderr = refused(&dir.path().join("cache"), &t, &test, &env);
    assert!(
        stderr.contains("needs the compiler gcc-4.9")
            && stderr.contains("apt-get install gcc-4.9")
            && stderr.contains("[[compiler]] #2 (always)")
            && stderr.contains(env.to_str().unwrap()),
        "{stderr}"
    );
    assert!(!stderr.contains("building..."), "nothing was built: {stderr}");
    // A table that does not parse stops too, naming the file and the problem.
    let bad = table(
        dir.path(),
        "bad.toml",
        "version = 1\n[[compiler]]\nsince = \"v2\"\ncc = \"gcc-12\"\n",
    );
    let stderr = refused(&dir.path().join("cache"), &t, &test, &bad);
    assert!(
        stderr.contains(&format!("build environment table {}", bad.display()))
            && stderr.contains("the last [[compiler]] (#1) has a condition"),
        "{stderr}"
    );
}

/// `kcache prebuild --json` of `repo`'s root..HEAD with `build`, `args` added.
fn prebuild(cache: &Path, repo: &Path, build: &str, args: &[&str]) -> serde_json::Value {
    let root = root_commit(repo);
    let mut c = kcache();
    c.arg("--cache-dir")
        .arg(cache)
        .args(["prebuild", "--repo"])
        .arg(repo)
        .args([&format!("{root}..HEAD"), "--build", build, "--json"])
        .args(args)
        .env_remove("CC");
    json(&run_ok(&mut c))
}

#[test]
fn a_build_fix_is_cherry_picked_by_the_rule_and_the_fixed_up_config_reaches_the_build() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new(dir.path());
    std::fs::write(h.repo.join("Makefile"), MAKEFILE).unwrap();
    h.change("root");
    let broken = h.write("broken.c", "int broken(void) { return missing; }\n", "break the build");
    let inside = h.change("while broken");
    let fix = h.write("broken.c", "int broken(void) { return 0; }\n", "fix the build");
    let after = h.change("after the fix");
    let config = dir.path().join("config");
    std::fs::write(&config, "CONFIG_KCOV=y\nCONFIG_X=y\n").unwrap();
    let env = table(
        dir.path(),
        "fixes.toml",
        &format!(
            "version = 1\n[[compiler]]\ncc = \"gcc-12\"\n[[config]]\noff = [\"KCOV\"]\n\
             [[backport]]\nname = \"fix the build\"\nfixes = \"{broken}\"\nfix = \"{fix}\"\n"
        ),
    );
    // The build keeps the config and the compiler it was given beside vmlinux.
    let build = "make -s vmlinux && cp \"$KCACHE_CONFIG\" seen-config && echo \"CC=$CC\" >> seen-config";
    let with = |cache: &str, table: bool| {
        let mut args = vec![
            "--config",
            config.to_str().unwrap(),
            "--artifact",
            "vmlinux",
            "--artifact",
            "seen-config",
        ];
        if table {
            args.extend(["--build-env", env.to_str().unwrap()]);
        }
        prebuild(&dir.path().join(cache), &h.repo, build, &args)
    };
    let plain = with("plain", false);
    assert_eq!(
        plain["failed"], 2,
        "without the fix, the two broken commits fail: {plain}"
    );
    let fixed = with("fixed", true);
    assert_eq!(fixed["failed"], 0, "{fixed}");
    assert_eq!(fixed["built"], fixed["selected"], "every commit built: {fixed}");
    // The rule: the fixed commit contained, the fix not.
    let keyed = |commit: &str| {
        key(
            &h.repo,
            commit,
            &[
                "--config",
                config.to_str().unwrap(),
                "--build-env",
                env.to_str().unwrap(),
            ],
        )
    };
    for (commit, picked) in [(&broken, true), (&inside, true), (&fix, false), (&after, false)] {
        let k = keyed(commit);
        let backports = k["build_env"]["backports"].as_array().map_or(0, Vec::len);
        assert_eq!(backports, usize::from(picked), "{commit}: {k}");
        assert_eq!(
            k["inputs"]["patches"].as_array().map_or(0, Vec::len),
            usize::from(picked),
            "{k}"
        );
    }
    // The record keeps the patch and the tree it produced; the build saw the fixed-up config and $CC.
    let store = kcache::store::Cache::open(&dir.path().join("fixed")).unwrap();
    let builds: Vec<(String, kcache::store::BuildRecord)> = store.raw_records(kcache::store::index::CF_BUILDS).unwrap();
    drop(store);
    let record = &builds
        .iter()
        .find(|(_, b)| b.commit.as_str() == inside)
        .expect("a record of the patched build")
        .1;
    assert_eq!(record.patches.len(), 1, "{record:?}");
    assert!(record.patched_tree.is_some(), "{record:?}");
    let dest = dir.path().join("restored");
    run_ok(
        kcache()
            .arg("--cache-dir")
            .arg(dir.path().join("fixed"))
            .args(["get", "--build-key", &record.build_key.to_hex(), "--dest"])
            .arg(&dest),
    );
    let seen = std::fs::read_to_string(dest.join("seen-config")).unwrap();
    assert_eq!(seen, "CONFIG_X=y\n# CONFIG_KCOV is not set\nCC=gcc-12\n");
}

#[test]
fn a_compiler_that_crashes_is_the_machines_failure_and_nothing_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = History::new(dir.path());
    std::fs::write(h.repo.join("Makefile"), MAKEFILE).unwrap();
    h.change("one");
    h.change("two");
    // Identifies itself like a compiler, crashes like one.
    let cc = dir.path().join("crashing-gcc");
    std::fs::write(
        &cc,
        "#!/bin/sh\ncase \"$1\" in --version) echo 'crashing-gcc 1.0' ;; *) \
         echo 'gcc: internal compiler error: Segmentation fault signal terminated program cc1' >&2; exit 4 ;; esac\n",
    )
    .unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&cc));
    let env = table(
        dir.path(),
        "crashing.toml",
        &format!("version = 1\n[[compiler]]\ncc = \"{}\"\n", cc.display()),
    );
    let cache = dir.path().join("cache");
    for attempt in 0..2 {
        let root = root_commit(&h.repo);
        let out = kcache()
            .arg("--cache-dir")
            .arg(&cache)
            .args(["prebuild", "--repo"])
            .arg(&h.repo)
            .args([&format!("{root}..HEAD"), "--build", BUILD, "--json", "--build-env"])
            .arg(&env)
            .output()
            .unwrap();
        let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            !out.status.success(),
            "a prebuild with the machine's failures says so: {p}"
        );
        // The two commits built with $(CC) crash it (the root's Makefile names gcc);
        // not recorded: the second attempt builds them again and fails the same way.
        assert_eq!(p["failed"], 0, "attempt {attempt}: {p}");
        assert_eq!(p["transient"], 2, "attempt {attempt}: {p}");
        assert_eq!(
            p["cached"], attempt,
            "attempt {attempt}: only the root's build was recorded: {p}"
        );
    }
}
