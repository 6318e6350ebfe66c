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
    console: Vec<u8>,
}

fn corpus() -> Vec<Case> {
    let dir = common::shared_file("crash-reports/linux");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
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
    println!(
        "crash titles: {exact}/{total} exact ({:.1}%), {alt_only} more match an ALT title, {invented} invented; {} ms for the corpus",
        share * 100.0,
        elapsed.as_millis()
    );
    for m in &misses {
        println!("  miss {m}");
    }
    assert_eq!(invented, 0, "titles invented for outputs without a crash");
    assert!(share >= 0.97, "only {exact}/{total} exact titles");
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
