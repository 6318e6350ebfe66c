//! The reproducer harness end to end: a real Debian kernel
//! (`linux-image-cloud-amd64`, installed by scripts/setup.sh) booted in a
//! real `qemu-system-x86_64`, real reproducers compiled static by gcc.
//! KVM is used only where it really starts a guest; on this project's
//! machines it does not, so these runs are TCG (and `--accel tcg` is
//! forced where the test is not about the choice).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

use serde_json::Value;

mod common;

/// The Debian kernel setup installs: the cloud flavour first (small, has
/// the serial console, initramfs and devtmpfs built in).
fn debian_kernel() -> PathBuf {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    kernels.retain(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
    });
    kernels.sort_by_key(|p| (p.to_string_lossy().contains("cloud"), p.clone()));
    kernels.pop().unwrap_or_else(|| {
        panic!("no /boot/vmlinuz-*: scripts/setup.sh installs linux-image-cloud-amd64 for this test")
    })
}

/// Crashes the kernel the way a test can as root: sysrq `c` panics it
/// (`Kernel panic - not syncing: sysrq triggered crash`). It waits a
/// moment first, so that two VMs at once really overlap.
const SYSRQ_CRASH: &str = r#"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(void)
{
	int fd;
	sleep(2);
	fd = open("/proc/sysrq-trigger", O_WRONLY);
	if (fd < 0) { perror("open /proc/sysrq-trigger"); return 1; }
	if (write(fd, "c", 1) != 1) perror("write");
	return 0;
}
"#;

/// Does what reproducers do (threads, files in the current directory,
/// /dev, /proc) without hurting the kernel.
const HARMLESS: &str = r#"
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *worker(void *arg) { (void)arg; return NULL; }
int main(void)
{
	pthread_t t[4];
	char buf[64];
	int fd, i;
	for (i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, NULL);
	for (i = 0; i < 4; i++) pthread_join(t[i], NULL);
	fd = open("./file", O_CREAT | O_RDWR, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1) return 2;
	fd = open("/dev/null", O_WRONLY);
	if (fd < 0) return 3;
	fd = open("/proc/self/status", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf)) <= 0) return 4;
	printf("harmless reproducer done\n");
	return 0;
}
"#;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn repro(cache: &Path, args: &[&str]) -> Output {
    common::kcache()
        .arg("--cache-dir")
        .arg(cache)
        .arg("repro")
        .args(args)
        .output()
        .unwrap()
}

/// One run of `repro_file` on the Debian kernel under TCG with a budget of
/// `timeout` seconds, the cache in `dir`; `extra` arguments last.
fn one_tcg_run(dir: &Path, repro_file: &Path, timeout: &str, extra: &[&str]) -> Output {
    let (kernel, repro_file) = (debian_kernel(), repro_file.to_str().unwrap());
    let common = [
        "--kernel",
        kernel.to_str().unwrap(),
        "--repro",
        repro_file,
        "--runs",
        "1",
    ];
    let tcg = ["--timeout", timeout, "--accel", "tcg"];
    repro(&dir.join("cache"), &[&common[..], &tcg[..], extra].concat())
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn explain(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn sysrq_crash_gets_syzkallers_title_in_two_vms_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let crash = write(dir.path(), "repro.c", SYSRQ_CRASH);
    let kernel = debian_kernel();
    // --accel auto: KVM only if a guest really starts there (it is probed,
    // and TCG taken when it does not).
    let out = repro(
        &dir.path().join("cache"),
        &[
            "--kernel",
            kernel.to_str().unwrap(),
            "--repro",
            crash.to_str().unwrap(),
            "--runs",
            "2",
            "--jobs",
            "2",
            "--timeout",
            "30",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "a crash exits 1\n{}", explain(&out));
    let v = json_of(&out);
    assert_eq!(v["schema"], "kcache/repro/v1");
    assert!(v["cmdline"].as_str().unwrap().contains("panic_on_warn=1"), "{v}");
    let runs = v["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{v}");
    for r in runs {
        assert_eq!(r["outcome"], "crash", "{v}");
        // syzkaller's title for `Kernel panic - not syncing: sysrq triggered crash`.
        assert_eq!(r["title"], "kernel panic: sysrq triggered crash", "{v}");
        assert_eq!(r["class"], "panic", "{v}");
    }
    assert_eq!(v["summary"]["crashed"], 2);
    assert_eq!(v["summary"]["reproduce_rate"], 1.0);
    assert_eq!(v["summary"]["titles"][0]["count"], 2);
    // Two VMs at once: the runs' own intervals intersect (each waits 2 s
    // inside its VM). Wall time would also count the compile and a KVM
    // probe, which on a host whose KVM guest hangs takes its full time.
    let at = |r: &serde_json::Value, f: &str| r[f].as_f64().unwrap_or_else(|| panic!("{f} in {r}"));
    let latest_start = runs.iter().map(|r| at(r, "started")).fold(f64::MIN, f64::max);
    let earliest_end = runs.iter().map(|r| at(r, "ended")).fold(f64::MAX, f64::min);
    assert!(
        latest_start < earliest_end,
        "runs did not overlap: one started at {latest_start:.1}, after the other ended at {earliest_end:.1}: {v}"
    );
}

#[test]
fn harmless_reproducer_is_ok_and_its_console_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(dir.path(), "repro.c", HARMLESS);
    let consoles = dir.path().join("consoles");
    let out = one_tcg_run(dir.path(), &ok, "20", &["--console-dir", consoles.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run 1: ok (reproducer exited status=0)"), "{text}");
    assert!(text.contains("reproduce rate 0% (1 ok"), "{text}");
    let console = std::fs::read_to_string(consoles.join("run-1.log")).unwrap();
    assert!(
        console.contains("Linux version") && console.contains("harmless reproducer done"),
        "{console}"
    );
}

#[test]
fn broken_command_line_gives_no_information() {
    let dir = tempfile::tempdir().unwrap();
    let ok = write(dir.path(), "repro.c", HARMLESS);
    // No such init in the initramfs: the kernel falls back to a root
    // filesystem it does not have and panics before the reproducer runs.
    let out = one_tcg_run(dir.path(), &ok, "20", &["--cmdline", "rdinit=/no/such/init", "--json"]);
    assert_eq!(out.status.code(), Some(3), "no information exits 3\n{}", explain(&out));
    let v = json_of(&out);
    let run = &v["runs"][0];
    assert_eq!(run["outcome"], "no-info", "{v}");
    assert_eq!(run["reason"], "boot-crash", "{v}");
    assert!(
        run["detail"].as_str().unwrap().contains("Unable to mount root fs"),
        "{v}"
    );
    assert_eq!(v["summary"]["reproduce_rate"], Value::Null);
}

#[test]
fn a_reproducer_that_does_not_compile_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "broken-repro.c", "int main(void) { return undeclared; }\n");
    let start = Instant::now();
    let out = repro(
        &dir.path().join("cache"),
        &[
            "--kernel",
            debian_kernel().to_str().unwrap(),
            "--repro",
            bad.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken-repro.c") && err.contains("does not compile") && err.contains("undeclared"),
        "{err}"
    );
    assert!(start.elapsed().as_secs() < 30, "no VM should have been started");
}

/// `--repro` as a bisection's test (`kcache exec`, the step `git bisect
/// run` calls): the harness runs on the recipe's boot image, runs are
/// titled and pooled under a test key of the reproducer, and a config
/// without what the harness needs is refused before any build.
#[test]
fn repro_as_the_test_of_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = common::one_commit_repo(&dir.path().join("repo"));
    std::fs::write(repo.join("k.c"), "int kernel_entry(void) { return 42; }\n").unwrap();
    common::commit_all(&repo, "a toy vmlinux beside a real boot image");
    let cache = dir.path().join("cache");
    let crash = write(dir.path(), "crash.c", SYSRQ_CRASH);
    let ok = write(dir.path(), "ok.c", HARMLESS);
    // The "build": a real ELF to sign, the Debian kernel as the boot image.
    let build = format!(
        "gcc -O1 -c k.c -o vmlinux && cp {} boot-image",
        debian_kernel().display()
    );
    let exec = |repro: &Path, extra: &[&str]| {
        common::kcache()
            .current_dir(&repo)
            .arg("--cache-dir")
            .arg(&cache)
            .args([
                "exec",
                "--build",
                &build,
                "--artifact",
                "vmlinux",
                "--artifact",
                "boot-image",
            ])
            .args([
                "--runs",
                "1",
                "--repro-timeout",
                "20",
                "--accel",
                "tcg",
                "--json",
                "--repro",
            ])
            .arg(repro)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = exec(&crash, &[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a crashing kernel is bad\n{}",
        explain(&out)
    );
    let v = json_of(&out);
    assert_eq!(v["verdict"], "bad", "{v}");
    assert_eq!(v["evidence"]["titles"][0], "kernel panic: sysrq triggered crash", "{v}");
    assert_eq!(v["runs_done"], 1, "{v}");

    // Another reproducer is another test key: tested anew, and good.
    let out = exec(&ok, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let v = json_of(&out);
    assert_eq!(
        (v["verdict"].as_str(), v["runs_done"].as_u64()),
        (Some("good"), Some(1)),
        "{v}"
    );

    // The first reproducer again: its run is pooled, no VM boots.
    let out = exec(&crash, &[]);
    let v = json_of(&out);
    assert_eq!(
        (v["verdict"].as_str(), v["runs_done"].as_u64()),
        (Some("bad"), Some(0)),
        "{v}"
    );

    // A config the harness cannot boot (the benchmark's has no devtmpfs):
    // refused, naming the option, before anything is built.
    let config = common::root().join("scripts/kernel/bench.config");
    let out = exec(&ok, &["--config", config.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", explain(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bench.config") && err.contains("CONFIG_DEVTMPFS=y"),
        "{err}"
    );
}

/// Never returns: a reproducer that survives its budget is ok.
const FOREVER: &str = r#"
#include <unistd.h>
int main(void) { for (;;) pause(); }
"#;

#[test]
fn surviving_the_budget_is_ok() {
    let dir = tempfile::tempdir().unwrap();
    let forever = write(dir.path(), "repro.c", FOREVER);
    let out = one_tcg_run(dir.path(), &forever, "3", &["--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    let v = json_of(&out);
    assert_eq!(v["runs"][0]["outcome"], "ok", "{v}");
    assert_eq!(v["runs"][0]["repro"], "budget used up", "{v}");
}

/// The qemu-system-x86_64 processes whose parent is `pid`.
fn qemu_children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // pid (comm) state ppid ...
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok());
        if comm.contains("qemu-system") && ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Gone, or a zombie waiting for its reaper, is not running.
    !stat.is_empty() && stat.rsplit(") ").next().is_some_and(|rest| !rest.starts_with('Z'))
}

#[test]
fn a_killed_kcache_leaves_no_vm_behind() {
    let dir = tempfile::tempdir().unwrap();
    let forever = write(dir.path(), "repro.c", FOREVER);
    let mut kcache = common::kcache()
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .args(["repro", "--kernel", debian_kernel().to_str().unwrap(), "--repro"])
        .arg(&forever)
        .args(["--runs", "2", "--jobs", "2", "--timeout", "300", "--accel", "tcg"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let vms = loop {
        let vms = qemu_children(kcache.id());
        if vms.len() == 2 {
            break vms;
        }
        assert!(start.elapsed().as_secs() < 60, "two VMs never started: {vms:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    kcache.kill().unwrap();
    kcache.wait().unwrap();
    let killed = Instant::now();
    while vms.iter().any(|&vm| alive(vm)) {
        if killed.elapsed().as_secs() >= 10 {
            for vm in &vms {
                let _ = std::process::Command::new("kill")
                    .arg("-9")
                    .arg(vm.to_string())
                    .status();
            }
            panic!("VMs {vms:?} outlived kcache");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The harness's work files (`<cache>/vm/`: compiled programs, initramfs
/// images, 1-2 MB each) are cache content: `stats` counts them, `verify`
/// checks each against its digest (`--repair` deletes a bad one, made again
/// on the next run), and `gc` evicts them least recently used first along
/// with blobs, but never while a harness uses them.
#[test]
fn vm_work_files_are_counted_verified_and_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let vm = cache.join("vm");
    let ok = write(dir.path(), "repro.c", HARMLESS);
    let run_harmless = || {
        let out = repro(
            &cache,
            &[
                "--kernel",
                debian_kernel().to_str().unwrap(),
                "--repro",
                ok.to_str().unwrap(),
                "--runs",
                "1",
                "--timeout",
                "20",
                "--accel",
                "tcg",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", explain(&out));
    };
    run_harmless();
    let kc_json = |args: &[&str]| {
        let out = common::kc(&cache).args(args).arg("--json").output().unwrap();
        (out.status.code(), json_of(&out))
    };
    let stats = kc_json(&["stats"]).1;
    assert_eq!(stats["vm_files"], 3, "init, reproducer, initramfs: {stats}");
    let vm_bytes = stats["vm_bytes"].as_u64().unwrap();
    assert!(vm_bytes > 1_000_000, "{stats}");
    let (code, v) = kc_json(&["verify"]);
    assert_eq!((code, &v["vm_files"]), (Some(0), &Value::from(3)), "{v}");

    // A damaged initramfs: named by verify, deleted by --repair, made
    // again by the next run.
    let initramfs = vm_files(&vm)
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with(".cpio"))
        .unwrap();
    let mut bytes = std::fs::read(&initramfs).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&initramfs, bytes).unwrap();
    let (code, v) = kc_json(&["verify"]);
    assert_eq!(code, Some(1), "{v}");
    let problems = v["problems"].to_string();
    assert!(
        problems.contains("vm/initramfs-") && problems.contains("does not match its digest"),
        "{v}"
    );
    let (_, v) = kc_json(&["verify", "--repair"]);
    assert_eq!(v["repaired"], true, "{v}");
    assert!(!initramfs.exists());
    assert_eq!(kc_json(&["verify"]).0, Some(0));
    run_harmless();
    assert!(initramfs.exists(), "the next run packs it again");

    // A harness in use (prepared in this process) keeps its files from gc.
    let harness = kcache::vm::Harness::prepare(&vm, &ok, kcache::vm::Settings::default()).unwrap();
    let (_, gc) = kc_json(&["gc", "--max-size", "0"]);
    assert_eq!(
        (&gc["vm_in_use"], &gc["vm_evicted"]),
        (&Value::from(true), &Value::from(0)),
        "{gc}"
    );
    assert_eq!(vm_files(&vm).len(), 3);
    // ... and from verify --repair, which says so (the file is the
    // harness's own compiled init: damaged after it was prepared).
    let init = vm_files(&vm)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("/init-"))
        .unwrap();
    let good_init = std::fs::read(&init).unwrap();
    std::fs::write(&init, b"not a program").unwrap();
    let (code, v) = kc_json(&["verify", "--repair"]);
    assert_eq!(code, Some(1), "{v}");
    assert!(
        v["problems"]
            .to_string()
            .contains("not deleted: a running harness uses vm/"),
        "{v}"
    );
    assert!(init.exists());
    std::fs::write(&init, good_init).unwrap();
    assert_eq!(kc_json(&["verify"]).0, Some(0));
    drop(harness);

    // One blob, newer than the work files: gc down to the blob's size
    // evicts the older work files and keeps the blob (one LRU order).
    let (repo, vmlinux) = (
        common::one_commit_repo(&dir.path().join("repo")),
        dir.path().join("vmlinux.c"),
    );
    std::fs::write(&vmlinux, "int kernel_entry(void) { return 42; }\n").unwrap();
    let elf = dir.path().join("vmlinux");
    assert!(std::process::Command::new("gcc")
        .args(["-O1", "-c", "-o"])
        .arg(&elf)
        .arg(&vmlinux)
        .status()
        .unwrap()
        .success());
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for f in vm_files(&vm) {
        std::fs::File::options()
            .append(true)
            .open(&f)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
    let put = common::kc(&cache)
        .args(["put", "--repo", repo.to_str().unwrap(), "--toolchain", "gcc (test) 1"])
        .arg(&elf)
        .output()
        .unwrap();
    assert!(put.status.success(), "{}", explain(&put));
    let blob_bytes = kc_json(&["stats"]).1["blob_bytes"].as_u64().unwrap();
    let (_, gc) = kc_json(&["gc", "--max-size", &blob_bytes.to_string()]);
    assert_eq!(
        (&gc["vm_evicted"], &gc["evicted"]),
        (&Value::from(3), &Value::from(0)),
        "{gc}"
    );
    assert_eq!(
        (&gc["vm_bytes"], &gc["vm_in_use"]),
        (&Value::from(0), &Value::from(false)),
        "{gc}"
    );
    assert_eq!(gc["bytes_after"], blob_bytes, "{gc}");
    assert!(vm_files(&vm).is_empty());
    let stats = kc_json(&["stats"]).1;
    assert_eq!(
        (&stats["vm_files"], &stats["blobs"]),
        (&Value::from(0), &Value::from(1)),
        "{stats}"
    );
    // And the next run compiles and packs again.
    run_harmless();
    assert_eq!(vm_files(&vm).len(), 3);
}

/// The derived files in a harness work directory (not digests, not locks).
fn vm_files(vm: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(vm)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".blake3")
        })
        .collect()
}

/// The harness API's promise to parallel bisections: one `Harness`, two
/// `run_one` calls at once from two threads (even with the same run
/// number) boot two VMs that overlap in time and whose consoles are each
/// one whole boot, the crash titled in both.
#[test]
fn two_run_one_calls_at_once_on_one_harness_do_not_collide() {
    let dir = tempfile::tempdir().unwrap();
    let crash = write(dir.path(), "repro.c", SYSRQ_CRASH);
    let settings = kcache::vm::Settings {
        accel: kcache::vm::AccelChoice::Tcg,
        budget: std::time::Duration::from_secs(30),
        ..Default::default()
    };
    let harness = kcache::vm::Harness::prepare(&dir.path().join("vm"), &crash, settings).unwrap();
    let kernel = debian_kernel();
    let runs: Vec<(Instant, Instant, kcache::vm::Run)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let start = Instant::now();
                    let run = harness.run_one(&kernel, 1).unwrap();
                    (start, Instant::now(), run)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (_, _, run) in &runs {
        let console = String::from_utf8_lossy(&run.console);
        match &run.outcome {
            kcache::vm::RunOutcome::Crash { title, .. } => {
                assert_eq!(title, "kernel panic: sysrq triggered crash")
            }
            other => panic!("{other:?}\n{console}"),
        }
        // One boot per console: nothing of the other VM in it.
        for line in [
            "Linux version",
            "kcache-init: start",
            "Kernel panic - not syncing: sysrq",
        ] {
            assert_eq!(console.matches(line).count(), 1, "{line:?} in\n{console}");
        }
    }
    let (a, b) = (&runs[0], &runs[1]);
    assert!(a.0.max(b.0) < a.1.min(b.1), "the two VMs did not run at the same time");
}

/// `scripts/kernel/repro.fragment` gives the benchmark config what the
/// harness needs (`scripts/bench-kernel.sh --maintainer-repro` appends it;
/// a later assignment wins in olddefconfig, and the check reads it so).
#[test]
fn the_repro_fragment_completes_the_bench_config() {
    let read = |rel: &str| std::fs::read_to_string(common::root().join(rel)).unwrap();
    let bench = read("scripts/kernel/bench.config");
    assert!(!kcache::kernel::harness::missing(&bench).is_empty());
    let both = bench + &read("scripts/kernel/repro.fragment");
    assert_eq!(kcache::kernel::harness::missing(&both), []);
    assert!(
        both.lines().any(|l| l == "CONFIG_MAGIC_SYSRQ=y"),
        "yama-repro.c crashes through sysrq"
    );
}
