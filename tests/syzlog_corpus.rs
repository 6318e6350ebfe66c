//! The log parser on every real log we have, and on broken input.

use std::path::PathBuf;

use kcache::syzlog::{self, Ending, ParseError, Purpose, ResultVerdict, Runs};

mod common;

fn shared() -> PathBuf {
    common::shared_file("bisect-logs")
}

fn all_logs() -> Vec<PathBuf> {
    syzlog::corpus_files(&[shared().join("seeds"), shared().join("dev")]).expect("shared logs are readable")
}

#[test]
fn every_real_log_parses_and_reconciles() {
    let files = all_logs();
    assert!(
        files.len() >= 466,
        "expected the seed and dev logs, found {}",
        files.len()
    );
    let mut culprits = 0;
    for path in &files {
        let log = syzlog::parse_file(path).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !log.steps.is_empty() || matches!(log.ending, Ending::Error { .. }),
            "{}: no steps",
            path.display()
        );
        if let Some(fbc) = log.trailer.as_ref().and_then(|t| t.first_bad_commit.as_deref()) {
            assert_eq!(
                log.culprit(),
                Some(fbc),
                "{}: culprit differs from the trailer",
                path.display()
            );
            culprits += 1;
        }
        assert_ne!(
            log.reconciles(),
            Some(false),
            "{}: {} steps do not reconcile with revisions tested {:?}",
            path.display(),
            log.counted_steps(),
            log.revisions_tested
        );
    }
    assert!(culprits > 100, "only {culprits} culprits found");
}

#[test]
fn seed_replay_matches_the_known_answer() {
    let files = syzlog::corpus_files(&[shared().join("seeds")]).unwrap();
    let r = syzlog::replay(&files);
    assert_eq!(r.logs, 5);
    assert_eq!(r.tested_steps, 82);
    assert_eq!(r.reusable_builds, 14);
    assert_eq!(r.reusable_tests, 5);
    assert_eq!(r.rejected, vec!["002_9f5fff6f4365948f.txt".to_string()]);
    assert_eq!(r.inconsistent, vec!["002_9f5fff6f4365948f.txt".to_string()]);
    assert!(r.unreadable.is_empty());
}

#[test]
fn seed_002_locking_selftests_blame_is_rejected() {
    let log = syzlog::parse_file(&shared().join("seeds/002_9f5fff6f4365948f.txt")).unwrap();
    let a = syzlog::analyze(&log);
    assert_eq!(a.verdict, ResultVerdict::Reject);
    assert!(a
        .findings
        .iter()
        .any(|f| f.rule == "identical-culprit-parent-signature"));
    let Ending::FirstBad(c) = &log.ending else {
        panic!("002 names a culprit")
    };
    assert!(c.message.iter().any(|l| l.contains("local_lock inversion")));
}

#[test]
fn seed_000_structure() {
    let log = syzlog::parse_file(&shared().join("seeds/000_e3960454e11cd2ea.txt")).unwrap();
    assert_eq!(log.steps.len(), 16);
    assert_eq!(log.revisions_tested, Some(16));
    assert_eq!(log.steps[1].purpose, Purpose::Release("v5.15".into()));
    assert_eq!(log.steps[0].purpose, Purpose::Original);
    assert!(matches!(&log.steps[0].runs, Runs::Each(r) if r.len() == 20));
    let a = syzlog::analyze(&log);
    // Four commits, one binary: three tests a cache would have skipped.
    assert_eq!(a.repeated_tests.len(), 3);
    assert_eq!(a.verdict, ResultVerdict::Ok);
    let Ending::FirstBad(c) = &log.ending else { panic!() };
    assert_eq!(c.files, vec!["net/ethtool/netlink.c", "net/ethtool/netlink.h"]);
    let d = log.durations.unwrap();
    assert!((d.build_seconds - 9210.353200664).abs() < 1e-6);
}

#[test]
fn broken_inputs_get_precise_errors() {
    assert_eq!(syzlog::parse(b"").unwrap_err(), ParseError::NoBisection);
    assert_eq!(syzlog::parse(b"hello\nworld\n").unwrap_err(), ParseError::NoBisection);
    // Binary through and through: not a log, and the error says binary.
    assert_eq!(
        syzlog::parse(b"\x7fELF\x02\x01\x00\x00\nmore\x00\xff\n").unwrap_err(),
        ParseError::Binary { first_line: 1 }
    );
}

/// Kernels print NUL bytes and Latin-1 to the console (`Unexpected user
/// alpha2: \0\0`): such a log is still a log, read lossily, and the lines
/// that held the bytes are counted once.
#[test]
fn binary_bytes_in_console_output_are_read_lossily() {
    let text = std::fs::read(shared().join("seeds/000_e3960454e11cd2ea.txt")).unwrap();
    let clean = syzlog::parse(&text).unwrap();
    assert!(clean.garbled.is_none());
    // Insert garbage into a crash report line, after the first step.
    let cut = text.windows(5).position(|w| w == b"run #").expect("the seed has runs");
    let mut dirty = text[..cut].to_vec();
    dirty.extend_from_slice(b"cfg80211: Unexpected user alpha2: \x00\x00\nLatin-1 caf\xe9 \xff\xfe\n");
    dirty.extend_from_slice(&text[cut..]);
    let log = syzlog::parse(&dirty).expect("a log with binary console output parses");
    let line = text[..cut].iter().filter(|&&b| b == b'\n').count() + 1;
    assert_eq!(
        log.garbled,
        Some(syzlog::Garbled {
            first_line: line,
            lines: 2
        })
    );
    assert_eq!(log.steps.len(), clean.steps.len());
    assert_eq!(log.culprit(), clean.culprit());
    assert_eq!(
        syzlog::analyze(&log).verdict,
        syzlog::analyze(&clean).verdict,
        "the garbage changes nothing in the analysis"
    );
}

#[test]
fn truncated_logs_parse_as_unfinished() {
    let text = std::fs::read(shared().join("seeds/001_7c9f106649ff4028.txt")).unwrap();
    for cut in [200, text.len() / 3, text.len() / 2] {
        let log = syzlog::parse(&text[..cut]).expect("a truncated log still parses");
        assert!(matches!(log.ending, Ending::Unfinished), "cut at {cut}");
    }
}

#[test]
fn replay_reports_bad_files_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a_garbage.txt"), b"\x00\x01binary").unwrap();
    std::fs::copy(
        shared().join("seeds/000_e3960454e11cd2ea.txt"),
        dir.path().join("b.txt"),
    )
    .unwrap();
    let r = syzlog::replay(&syzlog::corpus_files(&[dir.path().to_path_buf()]).unwrap());
    assert_eq!(r.logs, 1);
    assert_eq!(r.unreadable.len(), 1);
    assert!(r.unreadable[0].contains("a_garbage.txt") && r.unreadable[0].contains("binary data"));
}

#[test]
fn import_makes_log_signatures_and_runs_visible_to_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let seed = shared().join("seeds/000_e3960454e11cd2ea.txt");
    let kc = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kcache"));
        c.arg("--cache-dir").arg(&cache);
        c
    };
    for _ in 0..2 {
        // Twice: importing the same log again adds nothing.
        let out = kc().args(["log", "import", "--json"]).arg(&seed).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Four commits, one binary (seed 000): all four are known under that signature.
    let sig = "27df1ac1b14a3e005719d80b0062d732dec127a7f9bf39fbde85c8f967cd9072";
    let out = kc().args(["lookup", "--json", "--signature", sig]).output().unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut commits: Vec<&str> = v["known"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["commit"].as_str().unwrap())
        .collect();
    commits.sort();
    assert_eq!(commits.len(), 4, "{v}");
    assert!(commits.contains(&"f06bd8a1471d490a800a9a29614485f9e68b4562"));
    assert_eq!(v["tests"].as_array().unwrap().len(), 1);
    assert_eq!(v["tests"][0]["verdict"], "bad");
    assert_eq!(v["tests"][0]["sources"][0], "syzbot-log:000_e3960454e11cd2ea.txt");
    // 10 + 10 + 1 + 1 runs on this signature (two steps spelled out, two `all runs`).
    assert_eq!(v["tests"][0]["runs"], 22);
    let garbage = dir.path().join("garbage.txt");
    std::fs::write(&garbage, "hello").unwrap();
    let out = kc().args(["log", "import"]).arg(&garbage).arg(&seed).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.txt"));
}

/// What a user sees from `kcache log`: one warning naming the file and line
/// for binary console output, one line per error (not the same text three
/// times), a missing directory named, a truncated log called truncated, and
/// distinct exit statuses (0 fine, 1 a rejected result, 2 an unreadable log).
#[test]
fn log_commands_warn_once_name_what_is_missing_and_exit_by_result() {
    let dir = tempfile::tempdir().unwrap();
    let kc = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kcache"))
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .output()
            .unwrap()
    };
    let seed = shared().join("seeds/000_e3960454e11cd2ea.txt");
    let mut text = std::fs::read(&seed).unwrap();
    text.extend_from_slice(b"Unexpected user alpha2: \x00\x00\nsecond \xe9\n");
    let dirty = dir.path().join("dirty.txt");
    std::fs::write(&dirty, &text).unwrap();
    let out = kc(&["log".as_ref(), "analyze".as_ref(), dirty.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines = std::str::from_utf8(&std::fs::read(&seed).unwrap())
        .unwrap()
        .lines()
        .count();
    assert_eq!(stderr.matches("warning:").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("dirty.txt:{}: 2 line(s)", lines + 1)),
        "{stderr}"
    );

    // Seed 002 blames a commit with its parent's signature: REJECT, exit 1.
    let reject = shared().join("seeds/002_9f5fff6f4365948f.txt");
    let out = kc(&["log".as_ref(), "analyze".as_ref(), reject.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("REJECT"));

    let elf = dir.path().join("not-a-log.bin");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01\x00\x00\x00").unwrap();
    let out = kc(&["log".as_ref(), "analyze".as_ref(), elf.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.lines().count(), 1, "one line per error: {stderr}");
    assert_eq!(stderr.matches("binary data").count(), 1, "{stderr}");
    assert!(stderr.contains("not-a-log.bin"), "{stderr}");

    let truncated = dir.path().join("truncated.txt");
    let full = std::fs::read(shared().join("seeds/001_7c9f106649ff4028.txt")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let out = kc(&["log".as_ref(), "analyze".as_ref(), truncated.as_os_str()]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("TRUNCATED"));

    let missing = dir.path().join("no-such-dir");
    let out = kc(&["log".as_ref(), "replay".as_ref(), missing.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("no-such-dir"), "{stderr}");

    // Replay with an unreadable log still reports the rest, and exits 2.
    let corpus = dir.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    std::fs::copy(&elf, corpus.join("a.bin")).unwrap();
    std::fs::copy(&seed, corpus.join("b.txt")).unwrap();
    let out = kc(&["log".as_ref(), "replay".as_ref(), corpus.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("logs: 1 (1 unreadable)"));
}

/// A real log with `megabytes` of console garbage after its first run
/// line (no blank line, so a run's continuation would swallow it all),
/// long lines and binary bytes included.
fn huge_log(dir: &std::path::Path, megabytes: usize) -> PathBuf {
    use std::io::Write;
    let text = std::fs::read(shared().join("seeds/000_e3960454e11cd2ea.txt")).unwrap();
    let cut = text.windows(5).position(|w| w == b"run #").unwrap();
    let cut = cut + text[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let path = dir.join("huge.txt");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    out.write_all(&text[..cut]).unwrap();
    let mut chunk = Vec::new();
    for i in 0..100 {
        chunk.extend_from_slice(format!("[  {i}.000000] console garbage ").as_bytes());
        chunk.extend_from_slice(b"\x00\xff caf\xe9 ");
        chunk.extend_from_slice(&[b'x'; 900]);
        chunk.push(b'\n');
    }
    // One line of a megabyte without a newline in it.
    let long = vec![b'y'; 1 << 20];
    let mut written = 0;
    while written < megabytes << 20 {
        out.write_all(&chunk).unwrap();
        written += chunk.len();
        if written % (16 << 20) < chunk.len() {
            out.write_all(&long).unwrap();
            out.write_all(b"\n").unwrap();
            written += long.len() + 1;
        }
    }
    out.write_all(&text[cut..]).unwrap();
    out.flush().unwrap();
    path
}

/// Runs `kcache log analyze` on `log`: its exit code and peak RSS in KiB.
// The child is reaped by `wait4` (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn analyze_peak_rss(log: &std::path::Path) -> (Option<i32>, i64) {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kcache"))
        .args(["log", "analyze"])
        .arg(log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: plain wait4 on our own child, into zeroed out-parameters.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss)
}

/// `log analyze` streams: a 64 MB log with console garbage (binary bytes,
/// a megabyte-long line, no blank line to end a run's continuation) is
/// analyzed like the log it came from, in memory far below its size.
#[test]
fn a_huge_log_is_analyzed_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = huge_log(dir.path(), 64);
    let (code, kib) = analyze_peak_rss(&log);
    assert_eq!(code, Some(0));
    assert!(kib < 48 * 1024, "peak RSS {kib} KiB for a 64 MB log");
    let parsed = syzlog::parse_file(&log).unwrap();
    let clean = syzlog::parse_file(&shared().join("seeds/000_e3960454e11cd2ea.txt")).unwrap();
    assert_eq!(parsed.steps.len(), clean.steps.len());
    assert_eq!(parsed.culprit(), clean.culprit());
    let detail = match &parsed.steps[0].runs {
        Runs::Each(r) => r[0].detail.len(),
        _ => panic!("runs"),
    };
    assert!(detail <= syzlog::MAX_DETAIL, "{detail}");
}

/// The 200 MB case of issue 27 (slow to write: run by hand).
/// `cargo test --release --test syzlog_corpus huge_200 -- --ignored --nocapture`
#[test]
#[ignore]
fn a_200_mb_log_peak_rss() {
    let dir = tempfile::tempdir().unwrap();
    let log = huge_log(dir.path(), 200);
    let (code, kib) = analyze_peak_rss(&log);
    println!(
        "log analyze of a {} MB log: exit {code:?}, peak RSS {kib} KiB",
        std::fs::metadata(&log).unwrap().len() >> 20
    );
    assert!(kib < 48 * 1024);
}

#[test]
fn replay_sums_up_the_evidence() {
    let files = syzlog::corpus_files(&[shared().join("seeds"), shared().join("dev")]).unwrap();
    let r = kcache::judge::replay(&files);
    let e = &r.evidence;
    let culprits = files
        .iter()
        .filter(|f| syzlog::parse_file(f).unwrap().culprit().is_some())
        .count();
    assert_eq!(e.supported + e.weak.len() + e.undecided, culprits);
    assert!(e.supported > e.weak.len() && !e.weak.is_empty(), "{e:?}");
    assert!(
        e.weak.contains(&"Log_1012ee8b900000.txt".to_string()),
        "a bisection of another bug's crash"
    );
}
