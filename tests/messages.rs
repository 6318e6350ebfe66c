//! What a user is told when the machine, not the kernel, is at fault
//! (issue 27): a full disk at the first open and during a build, a test
//! that is not executable, `KCACHE_DIR` naming a file, a quarantined
//! artifact. Real git, gcc, RocksDB, and a real full file system (a small
//! tmpfs, mounted for the test: it needs root; without it those tests say
//! why they skip).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const SMALL: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "20"),
    ("DEMO_REGRESSION", "12"),
    ("DEMO_BREAK_FROM", "3"),
    ("DEMO_BREAK_TO", "4"),
];

/// A tmpfs of `size` mounted at `dir/mnt`, unmounted on drop; `None` (and
/// the reason printed) where mounting is impossible.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Option<SmallDisk> {
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mnt)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk(mnt)),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a small tmpfs (needs root): {}",
                    stderr(&o).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    /// Fills the file system: a file that takes every free byte.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let small = vec![0u8; 512];
        while f.write_all(&small).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn record_run(cache: &Path) -> Command {
    let mut c = kc(cache);
    c.args(ok_run_args());
    c
}

/// A full disk when the cache is first opened is said as a full disk (not
/// "the index is damaged"), and once space is freed the cache just works.
#[test]
fn a_full_disk_at_the_first_open_is_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path(), "2m") else {
        return;
    };
    let filler = disk.fill();
    let cache = disk.0.join("cache");
    let out = run_status(&mut record_run(&cache), 2);
    let err = stderr(&out);
    assert!(err.contains("the disk is full"), "{err}");
    assert!(!err.contains("damaged"), "{err}");
    std::fs::remove_file(filler).unwrap();
    run_ok(&mut record_run(&cache));
    run_ok(kc(&cache).arg("verify"));
}

/// A build that fails because the disk filled up stops the bisection with
/// that said: an infrastructure failure, never recorded as the commit's
/// (the next bisection, with space, builds it and finds the culprit).
#[test]
fn a_build_on_a_full_disk_is_the_machines_failure() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path(), "64m") else {
        return;
    };
    let repo = demo_repo(dir.path(), SMALL);
    let cache = disk.0.join("cache");
    let good = root_commit(&repo);
    // The build fills the disk (as a big kernel build would), then compiles.
    let filling = "dd if=/dev/zero of=\"$KCACHE_CACHE_DIR/../filler\" bs=64k 2>/dev/null; make -s vmlinux";
    let out = run_status(
        bisect_with(&cache, &repo, &good, "HEAD", filling, &demo_test_script()).args(["--runs", "2"]),
        2,
    );
    let err = stderr(&out);
    assert!(err.contains("failed on a full disk"), "{err}");
    assert!(err.contains("not the commit's failure"), "{err}");
    assert!(!err.contains("does not build"), "{err}");
    std::fs::remove_file(disk.0.join("filler")).unwrap();
    let stats = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    assert_eq!(stats["records"]["builds"], 0, "nothing recorded: {stats}");
    let out = run_ok(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 2));
    assert!(json(&out)["outcome"]["commit"].is_string(), "{}", stderr(&out));
}

/// A test given by absolute path that is not executable is said to be
/// that; `KCACHE_DIR` naming a file is said to be that; an artifact whose
/// blob was quarantined is said to be quarantined (not "evicted").
#[test]
fn setup_mistakes_and_quarantine_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    let cache = dir.path().join("cache");

    let test = dir.path().join("test.sh");
    std::fs::copy(demo_test_script(), &test).unwrap();
    run_ok(Command::new("chmod").arg("0644").arg(&test));
    let out = run_status(
        bisect_with(&cache, &repo, &good, "HEAD", "make -s vmlinux", test.to_str().unwrap()).args(["--runs", "2"]),
        2,
    );
    let err = stderr(&out);
    assert!(err.contains(&format!("{} is not executable", test.display())), "{err}");
    assert!(!err.contains("as an absolute path"), "{err}");

    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let out = run_status(&mut record_run(&file), 2);
    let err = stderr(&out);
    assert!(err.contains("is not a directory"), "{err}");
    assert!(!err.contains("os error 17"), "{err}");
    let out = run_status(kcache().env("KCACHE_DIR", &file).arg("stats"), 2);
    assert!(stderr(&out).contains("is not a directory"), "{}", stderr(&out));

    // A kernel's vmlinux blob, damaged: the first `get` finds it corrupt
    // (and quarantines it), the next says it is quarantined.
    let summary = json(&run_ok(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 2)));
    let key = summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["build"] == "built")
        .unwrap()["build_key"]
        .as_str()
        .unwrap()
        .to_string();
    let store = kcache::store::Cache::open(&cache).unwrap();
    let record = store
        .build(&kcache::key::BuildKey(kcache::key::Key::from_hex(&key).unwrap()))
        .unwrap()
        .unwrap();
    drop(store);
    let blobs = kcache::store::BlobStore::new(&cache);
    let blob = record.artifacts[0].blake3;
    let path = blobs.path_of(&blob);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let get = || {
        let mut c = kc(&cache);
        c.args(["get", "--build-key", &key, "--dest"])
            .arg(dir.path().join("out"));
        c
    };
    let first = stderr(&run_status(&mut get(), 1));
    assert!(first.contains("corrupt") && first.contains("quarantined"), "{first}");
    let second = stderr(&run_status(&mut get(), 1));
    assert!(second.contains("quarantined"), "{second}");
    assert!(!second.contains("evicted"), "{second}");
}

/// Issue 36: `gc` frees space on a disk with no free space left (it cannot
/// write its eviction markers first there: the blobs go first, then the
/// markers), and what it evicted is said as evicted afterwards.
#[test]
fn gc_frees_space_on_a_full_disk() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path(), "64m") else {
        return;
    };
    let repo = demo_repo(dir.path(), SMALL);
    let cache = disk.0.join("cache");
    run_ok(&mut bisect_cmd(&cache, &repo, &root_commit(&repo), "HEAD", 2));
    // A run's console of 4 MiB that does not compress: what gc can free is
    // more than what opening the index takes (a kernel's blobs are far more).
    let console = dir.path().join("console.log");
    run_ok(
        Command::new("head")
            .args(["-c", "4194304", "/dev/urandom"])
            .stdout(std::fs::File::create(&console).unwrap()),
    );
    run_ok(kc(&cache).args(ok_run_args()).arg("--log").arg(&console));
    let before = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    assert!(before["blobs"].as_u64().unwrap() > 0, "{before}");
    let _filler = disk.fill();
    let out = run_ok(kc(&cache).args(["gc", "--max-size", "0"]));
    let err = stderr(&out);
    assert!(!err.contains("kcache gc"), "gc does not advise gc: {err}");
    let after = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    assert_eq!(after["blobs"], 0, "{after}");
    assert!(
        after["records"]["evicted"].as_u64().unwrap() > 0,
        "the evicted blobs are marked: {after}"
    );
    run_ok(kc(&cache).arg("verify"));
}

/// Issue 36: an OS error is said once (not "X (os error 30): X (os error
/// 30)"), with what to do: a read-only cache, a full disk under a
/// restore's destination, a `--config` that is not there.
#[test]
fn os_errors_are_said_once_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let once = |err: &str| {
        let first = err.find("(os error").map(|at| &err[at..]);
        assert!(
            first.is_none_or(|rest| !rest[1..].contains("(os error")),
            "the OS error is said once: {err}"
        );
    };

    let missing = dir.path().join("no-such.config");
    let mut c = bisect_cmd(&cache, &repo, &good, "HEAD", 2);
    let err = stderr(&run_status(c.arg("--config").arg(&missing), 2));
    assert!(err.contains("no such file: give the kernel .config"), "{err}");

    let summary = json(&run_ok(&mut bisect_cmd(&cache, &repo, &good, "HEAD", 2)));
    let key = summary["steps"][0]["build_key"].as_str().unwrap().to_string();
    let Some(disk) = SmallDisk::mount(dir.path(), "1m") else {
        return;
    };
    let _filler = disk.fill();
    let out = run_status(
        kc(&cache)
            .args(["get", "--build-key", &key, "--dest"])
            .arg(disk.0.join("restored")),
        2,
    );
    let err = stderr(&out);
    once(&err);
    assert!(err.contains("the disk is full"), "{err}");

    let ro = dir.path().join("ro");
    std::fs::create_dir_all(&ro).unwrap();
    let bound = Command::new("mount")
        .args(["--bind", "-o", "ro"])
        .arg(&cache)
        .arg(&ro)
        .status()
        .unwrap();
    assert!(bound.success(), "root mounted a tmpfs above, so it may bind-mount");
    let out = kc(&ro).args(ok_run_args()).output().unwrap();
    let _ = Command::new("umount").arg(&ro).status();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    once(&err);
    assert!(err.contains("kcache may not write there"), "{err}");
}

/// Issue 31: a kcache built without the `kubernetes` feature refuses
/// `--executor kubernetes` (flag or config file) before any work, saying
/// how to build one that has it.
#[cfg(not(feature = "kubernetes"))]
#[test]
fn the_kubernetes_executor_without_the_feature_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), SMALL);
    let good = root_commit(&repo);
    let cache = dir.path().join("cache");
    let out = run_status(
        bisect_cmd(&cache, &repo, &good, "HEAD", 2).args(["--executor", "kubernetes"]),
        2,
    );
    let err = stderr(&out);
    assert!(
        err.contains("built without Kubernetes support") && err.contains("--features kubernetes"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "nothing ran before the refusal: {err}");
    assert!(out.stdout.is_empty());

    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("kcache")).unwrap();
    std::fs::write(config.join("kcache/config.toml"), "executor = \"kubernetes\"\n").unwrap();
    let out = run_status(
        bisect_cmd(&cache, &repo, &good, "HEAD", 2).env("XDG_CONFIG_HOME", &config),
        2,
    );
    assert!(stderr(&out).contains("--features kubernetes"), "{}", stderr(&out));
}
