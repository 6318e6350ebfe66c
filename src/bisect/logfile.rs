//! `--log FILE`: a syzkaller-style bisection log, written as the bisection
//! goes (so a killed bisection leaves a readable log) and readable by
//! kcache's own log parser.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::exec::BuildSource;
use super::{BisectError, Evaluation, Outcome, Purpose, Step};
use crate::git::Repo;
use crate::store::Outcome as RunOutcome;

pub struct LogFile {
    path: Option<PathBuf>,
    text: String,
}

impl LogFile {
    pub fn new(path: Option<&Path>, bad: &str) -> LogFile {
        let mut log = LogFile {
            path: path.map(Path::to_path_buf),
            text: String::new(),
        };
        let _ = writeln!(log.text, "bisecting cause commit starting from {bad}");
        log
    }

    fn save(&self) -> Result<(), BisectError> {
        let Some(path) = &self.path else { return Ok(()) };
        std::fs::write(path, &self.text).map_err(|source| BisectError::Log {
            path: path.clone(),
            source,
        })
    }

    pub fn step(&mut self, commit: &str, eval: &Evaluation, purpose: Purpose) -> Result<(), BisectError> {
        let t = &mut self.text;
        if purpose == Purpose::SignatureCheck {
            let _ = writeln!(t, "parent commit {commit} wasn't tested");
        }
        let _ = writeln!(t, "testing commit {commit}");
        if let Some(reference) = &eval.predicted_from {
            let _ = writeln!(
                t,
                "# kcache: predicted, not built: no file read by the build of {reference} differs"
            );
        }
        if let Some(sig) = &eval.signature {
            let _ = writeln!(t, "kernel signature: {sig}");
        }
        if matches!(
            eval.build,
            BuildSource::Failed | BuildSource::KnownBroken | BuildSource::TransientFailure
        ) {
            for line in eval
                .log_tail
                .as_deref()
                .unwrap_or("")
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let _ = writeln!(t, "{line}");
            }
        }
        for (i, r) in eval.runs.iter().enumerate() {
            let outcome = match r.outcome {
                RunOutcome::Ok => "OK".to_string(),
                RunOutcome::Crash => format!("crashed: {}", r.title.as_deref().unwrap_or("crash")),
                RunOutcome::Infra => "failed: could not test".to_string(),
                RunOutcome::BootFailed => "boot failed: boot failed".to_string(),
                RunOutcome::Skip => "failed: skipped".to_string(),
            };
            let _ = writeln!(t, "run #{i}: {outcome}");
        }
        if purpose == Purpose::Bisect {
            let _ = writeln!(t, "# git bisect {} {commit}", eval.verdict.as_str());
        }
        self.save()
    }

    /// A `# kcache:` comment line (syzkaller's parsers skip it).
    pub fn note(&mut self, line: &str) -> Result<(), BisectError> {
        let _ = writeln!(self.text, "# kcache: {line}");
        self.save()
    }

    pub fn finish(&mut self, outcome: &Outcome, steps: &[Step], repo: &Repo, wall: f64) -> Result<(), BisectError> {
        let t = &mut self.text;
        let build: f64 = steps.iter().map(|s| s.eval.build_seconds).sum();
        let test: f64 = steps.iter().map(|s| s.eval.test_seconds).sum();
        let tested = steps.iter().filter(|s| s.purpose == Purpose::Bisect).count();
        let revisions = format!(
            "revisions tested: {tested}, total time: {} (build: {}, test: {})",
            go(wall),
            go(build),
            go(test)
        );
        match outcome {
            Outcome::Culprit {
                commit,
                subject,
                signature,
                parents,
            } => {
                let _ = writeln!(t, "{commit} is the first bad commit");
                let show = repo
                    .run(&[
                        "show",
                        "--stat",
                        "--format=commit %H%nAuthor: %an <%ae>%nDate:   %ad%n%n%w(0,4,4)%B",
                        commit,
                    ])
                    .unwrap_or_default();
                t.push_str(show.trim_end());
                t.push_str("\n\n");
                if let Some(sig) = signature {
                    let _ = writeln!(t, "culprit signature: {sig}");
                }
                if let Some((_, Some(psig))) = parents.first() {
                    let _ = writeln!(t, "parent  signature: {psig}");
                }
                let _ = writeln!(t, "{revisions}");
                let _ = writeln!(t, "first bad commit: {commit} {subject}");
            }
            Outcome::Inconclusive { candidates } => {
                let _ = writeln!(t, "{revisions}");
                let _ = writeln!(t, "bisection is inconclusive, the first bad commit could be any of:");
                for c in candidates {
                    let _ = writeln!(t, "{c}");
                }
            }
            Outcome::NoBoundary { reason } => {
                let _ = writeln!(t, "{revisions}");
                let _ = writeln!(t, "error: {reason}");
            }
        }
        self.save()
    }
}

/// A Go `time.Duration` string, as syzkaller prints durations.
fn go(seconds: f64) -> String {
    let total = seconds.max(0.0);
    let h = (total / 3600.0).floor();
    let m = ((total - h * 3600.0) / 60.0).floor();
    let s = total - h * 3600.0 - m * 60.0;
    if h > 0.0 {
        format!("{h}h{m}m{s:.3}s")
    } else if m > 0.0 {
        format!("{m}m{s:.3}s")
    } else {
        format!("{s:.3}s")
    }
}
