//! `kcache repro`'s words for people: one line per run, the counts, and
//! the first crash's report. (`--json` is the types' own `Serialize`.)

use super::harness::{Run, RunOutcome, Summary};

/// A run's line: `run 3: crash: TITLE (12.1 s, tcg)`.
pub fn run_line(r: &Run) -> String {
    let what = match &r.outcome {
        RunOutcome::Crash { title, corrupted, .. } => {
            format!("crash: {title}{}", if *corrupted { " (report corrupted)" } else { "" })
        }
        RunOutcome::Ok { repro } => format!("ok (reproducer {repro})"),
        RunOutcome::NoInfo(why) => format!("no info: {why}"),
    };
    format!("run {}: {what} ({:.1} s, {})", r.run, r.seconds, r.accel.as_str())
}

/// The counts, the reproduce rate and the titles.
pub fn summary(s: &Summary) -> String {
    let mut out = match s.reproduce_rate {
        Some(rate) => format!(
            "crashed in {} of {} run(s): reproduce rate {:.0}% ({} ok, {} without information)\n",
            s.crashed,
            s.runs,
            rate * 100.0,
            s.ok,
            s.no_info
        ),
        None => format!(
            "no run of {} gave information: the reproducer could not be judged\n",
            s.runs
        ),
    };
    for t in &s.titles {
        out.push_str(&format!("  {:>3} x {}\n", t.count, t.title));
    }
    out
}

/// The first crashing run's report: from where it starts, `lines` lines.
pub fn first_report(runs: &[Run], lines: usize) -> Option<String> {
    runs.iter().find_map(|r| match &r.outcome {
        RunOutcome::Crash { report_line, .. } => {
            let text = String::from_utf8_lossy(&r.console);
            let body: Vec<String> = text
                .lines()
                .skip(report_line.saturating_sub(1))
                .take(lines)
                .map(|l| format!("  | {}", l.trim_end()))
                .collect();
            Some(format!("the report of run {}:\n{}\n", r.run, body.join("\n")))
        }
        _ => None,
    })
}
