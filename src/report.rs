//! Human-readable renderings of the library's results. JSON output is the
//! results' own `Serialize` form; this module only does text.

use std::fmt::Write;
use std::path::Path;

use crate::signature::{diff::Change, DiffReport};
use crate::syzlog::{Analysis, ReplayReport, ResultVerdict, Severity};

/// `kcache diff` text output.
pub fn diff_text(report: &DiffReport, a: &Path, b: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "a: {}  {}", report.a, a.display());
    let _ = writeln!(s, "b: {}  {}", report.b, b.display());
    if report.equal {
        s.push_str("signatures are equal: the two builds have the same machine code and data\n");
        return s;
    }
    let _ = writeln!(s, "{} hashed section(s) differ:", report.sections.len());
    for sec in &report.sections {
        match sec.change {
            Change::Changed => {
                let _ = writeln!(
                    s,
                    "  changed  {}  ({} -> {} bytes)",
                    sec.name,
                    sec.size_a.unwrap_or(0),
                    sec.size_b.unwrap_or(0)
                );
            }
            Change::Added => {
                let _ = writeln!(s, "  added    {}  ({} bytes)", sec.name, sec.size_b.unwrap_or(0));
            }
            Change::Removed => {
                let _ = writeln!(s, "  removed  {}  ({} bytes)", sec.name, sec.size_a.unwrap_or(0));
            }
        }
        for sym in &sec.symbols {
            let sizes = match (sym.size_a, sym.size_b) {
                (Some(x), Some(y)) if x != y => format!(" ({x} -> {y} bytes)"),
                _ => String::new(),
            };
            let word = match sym.change {
                Change::Changed => "changed",
                Change::Added => "added",
                Change::Removed => "removed",
            };
            let _ = writeln!(s, "      {word:<8} {}{sizes}", sym.name);
        }
        if sec.symbols_omitted > 0 {
            let _ = writeln!(s, "      ... {} more symbol(s) (--all lists them)", sec.symbols_omitted);
        }
    }
    if !report.symbols_compared {
        s.push_str("(no .symtab in both files: symbols not compared)\n");
    }
    s
}

fn hours(seconds: f64) -> String {
    format!("{:.1}h", seconds / 3600.0)
}

/// `kcache log analyze` text output for one log.
pub fn analysis_text(path: &Path, a: &Analysis) -> String {
    let mut s = String::new();
    let verdict = match a.verdict {
        ResultVerdict::Ok => "OK",
        ResultVerdict::Warn => "WARN",
        ResultVerdict::Reject => "REJECT",
        ResultVerdict::NoCulprit => "NO CULPRIT",
    };
    let _ = writeln!(s, "{}: {verdict}", path.display());
    if let Some(c) = &a.culprit {
        let _ = writeln!(s, "  culprit: {c}");
    }
    let _ = writeln!(
        s,
        "  steps: {} ({} tested, {} runs); revisions tested: {}; build {}, test {}",
        a.steps,
        a.tested_steps,
        a.runs,
        a.revisions_tested.map_or("?".to_string(), |n| n.to_string()),
        a.build_seconds.map_or("?".to_string(), hours),
        a.test_seconds.map_or("?".to_string(), hours),
    );
    let _ = writeln!(
        s,
        "  tests a signature cache would skip: {} (~{})",
        a.repeated_tests.len(),
        hours(a.repeated_test_seconds)
    );
    for r in &a.repeated_tests {
        let _ = writeln!(s, "    line {}: {} has the kernel of {}", r.line, short(&r.commit), short(&r.same_as));
    }
    for i in &a.inconsistencies {
        let _ = writeln!(
            s,
            "  signature {} judged good at {} and bad at {}",
            short(&i.signature),
            i.good.iter().map(|c| short(c)).collect::<Vec<_>>().join(","),
            i.bad.iter().map(|c| short(c)).collect::<Vec<_>>().join(",")
        );
    }
    for f in a.findings.iter().filter(|f| f.severity == Severity::Reject) {
        let _ = writeln!(s, "  REJECT [{}]: {}", f.rule, f.message);
    }
    for f in a.findings.iter().filter(|f| f.severity == Severity::Warning) {
        let _ = writeln!(s, "  warning [{}]: {}", f.rule, f.message);
    }
    s
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// `kcache log replay` text output.
pub fn replay_text(r: &ReplayReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "logs: {} ({} unreadable)", r.logs, r.unreadable.len());
    let _ = writeln!(s, "steps: {} ({} tested)", r.steps, r.tested_steps);
    let _ = writeln!(
        s,
        "reusable builds: {} (~{:.1}h of {:.1}h building)",
        r.reusable_builds, r.reusable_build_hours, r.total_build_hours
    );
    let _ = writeln!(
        s,
        "reusable tests: {} (~{:.1}h of {:.1}h testing)",
        r.reusable_tests, r.reusable_test_hours, r.total_test_hours
    );
    let _ = writeln!(s, "rejected results: {} {:?}", r.rejected.len(), r.rejected);
    let _ = writeln!(
        s,
        "logs with a signature judged good and bad: {} {:?}",
        r.inconsistent.len(),
        r.inconsistent
    );
    let _ = writeln!(
        s,
        "eras: {} without signatures, {} with 40-hex, {} with 64-hex",
        r.eras.no_signature, r.eras.hex40, r.eras.hex64
    );
    s
}
