//! Crash titles on real console outputs: the 305 reports of
//! `../shared/crash-reports/linux/`, each with the title syzkaller gives it.
//! The misses are printed (file, expected, got), never hidden.

use std::path::{Path, PathBuf};
use std::time::Instant;

use kcache::title::{self, BugClass};

mod common;

/// One corpus file: its header (TITLE, ALT..., CORRUPTED) and the console.
struct Case {
    file: String,
    title: Option<String>,
    alts: Vec<String>,
    corrupted: bool,
    console: Vec<u8>,
}

fn corpus() -> Vec<Case> {
    cases_in(&common::shared_file("crash-reports/linux"))
}

/// The cases of a directory of files in the corpus format.
fn cases_in(dir: &Path) -> Vec<Case> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"))
        .collect();
    files.sort();
    files.iter().map(|p| read_case(p)).collect()
}

fn read_case(path: &Path) -> Case {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The header ends at the first empty line (the first line, when the
    // output holds no crash).
    let split = if bytes.first() == Some(&b'\n') {
        0
    } else {
        bytes
            .windows(2)
            .position(|w| w == b"\n\n")
            .map(|p| p + 1)
            .unwrap_or_else(|| panic!("{}: no empty line after the header", path.display()))
    };
    let header = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut case = Case {
        file: path.file_name().unwrap().to_string_lossy().into_owned(),
        title: None,
        alts: Vec::new(),
        corrupted: header.lines().any(|l| l.trim() == "CORRUPTED: Y"),
        console: bytes[split + 1..].to_vec(),
    };
    for line in header.lines() {
        if let Some(t) = line.strip_prefix("TITLE: ") {
            case.title = Some(t.trim().to_string());
        } else if let Some(t) = line.strip_prefix("ALT: ") {
            case.alts.push(t.trim().to_string());
        }
    }
    case
}

#[test]
fn titles_agree_with_syzkaller_on_the_corpus() {
    let cases = corpus();
    assert!(cases.len() >= 305, "expected the 305 reports, found {}", cases.len());
    let started = Instant::now();
    let mut slowest: Vec<(std::time::Duration, &str)> = Vec::new();
    let got: Vec<Option<title::Report>> = cases
        .iter()
        .map(|c| {
            let t = Instant::now();
            let r = title::title(&c.console);
            slowest.push((t.elapsed(), &c.file));
            r
        })
        .collect();
    let elapsed = started.elapsed();
    slowest.sort();
    slowest.reverse();
    println!("slowest: {:?}", &slowest[..3]);

    let (mut exact, mut alt_only, mut invented) = (0, 0, 0);
    let mut misses = Vec::new();
    for (case, report) in cases.iter().zip(&got) {
        let got_title = report.as_ref().map(|r| r.title.as_str());
        match (&case.title, got_title) {
            (Some(want), Some(g)) if want == g => exact += 1,
            (None, None) => exact += 1,
            (None, Some(g)) => {
                invented += 1;
                misses.push(format!("{}: expected no crash, got {g:?} (INVENTED)", case.file));
            }
            (Some(want), g) => {
                if g.is_some_and(|g| case.alts.iter().any(|a| a == g)) {
                    alt_only += 1;
                }
                misses.push(format!("{}: expected {want:?}, got {g:?}", case.file));
            }
        }
    }
    let total = cases.len();
    let share = exact as f64 / total as f64;
    // Informational: whether a report looks corrupted is a judgement call.
    let corrupted_agree = cases
        .iter()
        .zip(&got)
        .filter(|(c, r)| c.title.is_some() && r.as_ref().is_some_and(|r| r.corrupted == c.corrupted))
        .count();
    let crashes = cases.iter().filter(|c| c.title.is_some()).count();
    println!("corrupted flag agrees with syzkaller on {corrupted_agree}/{crashes} crashes");
    println!(
        "crash titles: {exact}/{total} exact ({:.1}%), {alt_only} more match an ALT title, {invented} invented; {} ms for the corpus",
        share * 100.0,
        elapsed.as_millis()
    );
    for m in &misses {
        println!("  miss {m}");
    }
    assert_eq!(invented, 0, "titles invented for outputs without a crash");
    // The accuracy reached (305/305 since the issue-36 classes): at most
    // one miss before this fails.
    assert!(exact + 1 >= total, "only {exact}/{total} exact titles");
    // Generous: the corpus takes a few tens of milliseconds in release.
    assert!(elapsed.as_secs_f64() < 2.0, "the corpus took {elapsed:?}");
}

#[test]
fn every_title_classifies_and_frames_agree_with_the_title() {
    for case in corpus() {
        let Some(r) = title::title(&case.console) else { continue };
        assert_eq!(r.class, BugClass::of_title(&r.title), "{}", case.file);
        assert!(r.start_line >= 1, "{}", case.file);
        if let Some(frame) = &r.frame {
            assert!(
                r.title.contains(frame.as_str()),
                "{}: {frame} not in {}",
                case.file,
                r.title
            );
        }
    }
}

/// The corpus file with this expected title.
fn case_titled(title: &str) -> Case {
    corpus()
        .into_iter()
        .find(|c| c.title.as_deref() == Some(title))
        .unwrap_or_else(|| panic!("no corpus file titled {title:?}"))
}

#[test]
fn the_title_command_prints_one_line_per_file_and_its_json_follows_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let kasan = case_titled("KASAN: use-after-free Read in strp_check_rcv");
    let crash = dir.path().join("crash.log");
    std::fs::write(&crash, &kasan.console).unwrap();
    // Binary garbage and invalid UTF-8 around a clean boot: no crash.
    let quiet = dir.path().join("quiet.log");
    let mut bytes = b"[    0.000000] Linux version 6.1.0\n\xff\xfe\x00garbage\x80\n".to_vec();
    bytes.extend((0..=255u8).cycle().take(100_000));
    bytes.extend(b"\n[    5.000000] syz-executor: all good\n");
    std::fs::write(&quiet, &bytes).unwrap();

    let out = common::kcache().arg("title").arg(&crash).arg(&quiet).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text,
        format!(
            "{}: KASAN: use-after-free Read in strp_check_rcv\n{}: no crash\n",
            crash.display(),
            quiet.display()
        )
    );

    let out = common::kcache()
        .args(["title", "--json"])
        .arg(&crash)
        .arg(&quiet)
        .output()
        .unwrap();
    assert!(out.status.success());
    let schema = common::schema("title.v1.json");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for v in &lines {
        let errors: Vec<String> = schema.iter_errors(v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{v} violates title.v1.json: {errors:?}");
    }
    assert_eq!(lines[0]["title"], "KASAN: use-after-free Read in strp_check_rcv");
    assert_eq!(lines[0]["class"], "memory-safety");
    assert_eq!(lines[0]["frame"], "strp_check_rcv");
    assert!(lines[0]["start_line"].as_u64().unwrap() >= 1);
    assert!(lines[1]["title"].is_null() && lines[1]["class"].is_null());

    // A file that cannot be read: named, non-zero exit, the others still titled.
    let missing = dir.path().join("missing.log");
    let out = common::kcache()
        .arg("title")
        .arg(&missing)
        .arg(&crash)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.log"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("strp_check_rcv"));
}

#[test]
fn start_line_points_at_the_report() {
    let case = case_titled("KASAN: use-after-free Read in strp_check_rcv");
    let r = title::title(&case.console).unwrap();
    let text = String::from_utf8_lossy(&case.console);
    let line = text.lines().nth(r.start_line - 1).unwrap();
    assert!(line.contains("BUG: KASAN: use-after-free"), "{line}");
}

#[test]
fn garbage_never_panics_and_stays_linear() {
    // Pathological inputs: a header on every line, very long lines,
    // lines of nothing but report words, random bytes.
    let mut inputs: Vec<Vec<u8>> = vec![
        "BUG: KASAN: use-after-free in f+0x1/0x2\n".repeat(20_000).into_bytes(),
        format!("WARNING: {}\n", "x".repeat(2_000_000)).into_bytes(),
        "Call Trace:\n ? \n".repeat(50_000).into_bytes(),
        "INFO: task hung blocked for more than 1 seconds\nCall Trace:\n"
            .repeat(10_000)
            .into_bytes(),
    ];
    let mut x: u32 = 12345;
    inputs.push(
        (0..1_000_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (x >> 16) as u8
            })
            .collect(),
    );
    for input in &inputs {
        let t = Instant::now();
        let _ = title::title(input);
        assert!(
            t.elapsed().as_secs_f64() < 5.0,
            "{:?} for {} bytes",
            t.elapsed(),
            input.len()
        );
    }
}

#[test]
fn console_titles_classify_as_the_syzbot_title_of_the_same_bug() {
    use kcache::crash::{normalize_title, RunClass, Target};
    use kcache::store::Outcome;
    let cases = corpus();
    let mut distinct: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for case in &cases {
        let Some(want) = &case.title else { continue };
        // Distinct syzbot titles stay distinct after normalization.
        let n = normalize_title(want);
        if let Some(other) = distinct.insert(n.clone(), want.clone()) {
            assert_eq!(&other, want, "{} and {want} normalize alike: {n}", other);
        }
        let Some(got) = title::title(&case.console) else {
            continue;
        };
        if &got.title == want {
            let target = Target::new([want.as_str()]);
            assert_eq!(
                target.classify(Outcome::Crash, Some(&got.title)),
                RunClass::Match,
                "{}",
                case.file
            );
        }
    }
    // What a test script may print raw names the same bug as syzbot's title.
    let target = Target::new(["BUG: Bad page state in process syz-executor"]);
    assert!(target.matches("BUG: Bad page state in process syz-executor.3"));
    let target = Target::new(["kernel BUG at fs/ext4/inode.c:LINE!"]);
    assert!(target.matches("kernel BUG at fs/ext4/inode.c:2711!"));
    assert!(!target.matches("kernel BUG at fs/ext4/super.c:2711!"));
}

const SMALL: &[(&str, &str)] = &[("DEMO_COMMITS", "24"), ("DEMO_REGRESSION", "15")];

/// A test that leaves the toy kernel's console where kcache says
/// (`KCACHE_CONSOLE`) and prints no `crash:` line: kcache titles it.
/// With `stdout`, the console goes to the test's stdout instead, after
/// binary garbage.
fn console_test_script(dir: &Path, stdout: bool) -> PathBuf {
    let path = dir.join(if stdout { "stdout-test.sh" } else { "console-test.sh" });
    let to = if stdout {
        "printf 'garbage \\377\\376\\n'; \"$vmlinux\" \"$KCACHE_RUN\" 2>&1 | tee out.txt"
    } else {
        "\"$vmlinux\" \"$KCACHE_RUN\" > out.txt 2>&1; cp out.txt \"$KCACHE_CONSOLE\""
    };
    let script = format!(
        "#!/bin/sh\nvmlinux=\"$KCACHE_ARTIFACTS/vmlinux\"\n[ -x \"$vmlinux\" ] || exit 125\n{to}\n\
         grep -q 'BUG:' out.txt && exit 1\ngrep -q 'toy kernel booted' out.txt && exit 0\nexit 1\n"
    );
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_bisection_titles_the_console_its_test_leaves_and_keeps_every_console() {
    for stdout in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let repo = common::demo_repo(dir.path(), SMALL);
        let cache = dir.path().join("cache");
        let test = console_test_script(dir.path(), stdout);
        let html = dir.path().join("report.html");
        let out = common::run_ok(
            common::bisect_whole(&cache, &repo, &test)
                .args(["--runs", "2", "--json", "--policy", "classic", "--report"])
                .arg(&html),
        );
        // The report shows the crash as the culprit's kernel printed it.
        let page = std::fs::read_to_string(&html).unwrap();
        let oops = page
            .split("<pre class=\"oops\">")
            .nth(1)
            .unwrap_or_else(|| panic!("no oops in {page}"));
        assert!(oops.starts_with("BUG: KASAN: slab-out-of-bounds in mm_init"), "{oops}");
        let result = common::json(&out);
        assert_eq!(result["outcome"]["kind"], "culprit", "{result}");
        assert_eq!(
            result["outcome"]["commit"],
            common::commit_by_subject(&repo, "grow the pool").as_str()
        );
        // Every run's record is schema-valid, names its console, and the
        // crashes carry the title kcache read from that console.
        common::validate_all(&cache);
        let c = kcache::store::Cache::open(&cache).unwrap();
        let runs: Vec<(String, kcache::store::RunRecord)> = c.raw_records(kcache::store::index::CF_RUNS).unwrap();
        assert!(!runs.is_empty());
        let mut crashes = 0;
        for (key, run) in &runs {
            let console = c
                .console_of(run)
                .unwrap_or_else(|| panic!("run {key} kept no console (stdout: {stdout}): {run:?}"));
            let text = String::from_utf8_lossy(&console);
            assert!(
                text.contains("toy kernel") || text.contains("BUG: KASAN"),
                "{key}: {text:?}"
            );
            if run.outcome == kcache::store::Outcome::Crash {
                crashes += 1;
                assert_eq!(
                    run.title.as_deref(),
                    Some("KASAN: slab-out-of-bounds in mm_init"),
                    "{key} (stdout: {stdout})"
                );
                // Re-titling the kept console gives the same title.
                assert_eq!(title::title(&console).map(|r| r.title).as_deref(), run.title.as_deref());
            }
        }
        assert!(crashes > 0, "the regression crashed no run");
        let verify = common::kcache()
            .arg("--cache-dir")
            .arg(&cache)
            .arg("verify")
            .output()
            .unwrap();
        assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    }
}

/// The fixed held-back fifth of the corpus: files whose name's FNV-1a
/// hash is 0 mod 5 (63 of the 305). Rules were developed on the others.
fn held_back(file: &str) -> bool {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in file.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.is_multiple_of(5)
}

/// Exact titles (no crash counts as a title) and titles invented for
/// crash-free outputs, over some cases.
fn score<'a>(cases: impl Iterator<Item = &'a Case>) -> (usize, usize, usize, Vec<String>) {
    let (mut total, mut exact, mut invented) = (0, 0, 0);
    let mut misses = Vec::new();
    for case in cases {
        total += 1;
        let got = title::title(&case.console).map(|r| r.title);
        if got == case.title {
            exact += 1;
        } else {
            if case.title.is_none() {
                invented += 1;
            }
            misses.push(format!("{}: expected {:?}, got {got:?}", case.file, case.title));
        }
    }
    (total, exact, invented, misses)
}

/// The estimate for reports not seen: the held-back fifth. (The rules
/// before this split existed were written against all 305 files, so this
/// estimate flatters them; see the notes.)
#[test]
fn held_back_split_estimate() {
    let cases = corpus();
    let (dev_total, dev_exact, _, _) = score(cases.iter().filter(|c| !held_back(&c.file)));
    let (total, exact, invented, misses) = score(cases.iter().filter(|c| held_back(&c.file)));
    assert_eq!(total, 63, "the held-back split changed");
    println!(
        "held-back split: {exact}/{total} exact ({:.1}%), {invented} invented; development split: {dev_exact}/{dev_total}",
        100.0 * exact as f64 / total as f64
    );
    for m in &misses {
        println!("  miss {m}");
    }
    assert_eq!(invented, 0);
    assert!(
        exact as f64 >= 0.98 * total as f64,
        "held-back: {exact}/{total}: {misses:#?}"
    );
}

/// Reports of newer kernels from syzkaller's own test data (not among
/// the 305; sources in tests/data/title/README.md): each exact, and no
/// title for the crash-free ones.
#[test]
fn newer_report_formats_from_syzkallers_test_data() {
    let cases = cases_in(&common::root().join("tests/data/title"));
    assert!(cases.len() >= 21, "found {}", cases.len());
    let (total, exact, invented, misses) = score(cases.iter());
    assert_eq!(invented, 0, "{misses:#?}");
    assert_eq!(exact, total, "{misses:#?}");
    // Only the Go runtime's crash is suppressed (not a kernel bug).
    for case in &cases {
        if let Some(r) = title::title(&case.console) {
            assert_eq!(r.suppressed, r.title == title::GO_RUNTIME_ERROR, "{}", case.file);
        }
    }
}

/// A Go runtime crash is titled and said to be no kernel crash, and no
/// bisection may be about it: `--crash-title` naming it is refused before
/// any work (an empty target would otherwise take any kernel crash).
#[test]
fn a_suppressed_crash_is_said_and_never_a_bisections_target() {
    let kcache = env!("CARGO_BIN_EXE_kcache");
    let go = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/title/syzkaller-707");
    let out = std::process::Command::new(kcache)
        .arg("title")
        .arg(&go)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("go runtime error (suppressed: not a kernel crash)"),
        "{text}"
    );
    for cmd in [
        &["bisect", "--repo", ".", "--bad", "HEAD", "--test", "true"][..],
        &["lookup"][..],
    ] {
        let out = std::process::Command::new(kcache)
            .args(cmd)
            .args(["--crash-title", "go runtime error"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(err.contains("is not a kernel crash"), "{cmd:?}: {err}");
    }
}
