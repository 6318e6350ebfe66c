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
    let start = Instant::now();
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
    let wall = start.elapsed().as_secs_f64();
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
    // Two VMs at once: the runs overlapped (the wall time is less than
    // their sum; each run waits 2 s inside its VM).
    let sum: f64 = runs.iter().map(|r| r["seconds"].as_f64().unwrap()).sum();
    assert!(
        wall < sum,
        "runs did not overlap: wall {wall:.1}s, runs {sum:.1}s in total"
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
