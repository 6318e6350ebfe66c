//! The writer: kcache's `--log`, in the syntax the reader (`parse`) takes,
//! with the words `grammar` defines for both. Written as the bisection goes,
//! so a killed bisection leaves a readable log.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::grammar::*;
use super::model::{Direction, Purpose, RunOutcome, Verdict};

/// One step as the log shows it.
#[derive(Debug, Clone)]
pub struct StepEntry<'a> {
    pub commit: &'a str,
    pub purpose: Purpose,
    /// `# kcache:` comments shown right after the `testing commit` line.
    pub notes: Vec<String>,
    /// The `compiler: ` line (the build's toolchain), when known.
    pub compiler: Option<&'a str>,
    pub signature: Option<&'a str>,
    /// The end of a failed build's output.
    pub build_errors: Vec<&'a str>,
    pub runs: Vec<RunOutcome>,
    /// The `# git bisect` line (bisection steps only).
    pub verdict: Option<Verdict>,
}

/// What every ending states: the tested steps and the time they took.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub tested: usize,
    pub wall_seconds: f64,
    pub build_seconds: f64,
    pub test_seconds: f64,
}

/// A culprit ending.
#[derive(Debug, Clone)]
pub struct CulpritEntry<'a> {
    pub commit: &'a str,
    pub subject: &'a str,
    /// `git show --stat` of the culprit, as syzbot quotes it.
    pub show: &'a str,
    pub signature: Option<&'a str>,
    pub parent_signature: Option<&'a str>,
}

/// How the log ends.
#[derive(Debug, Clone)]
pub enum EndingEntry<'a> {
    Culprit(CulpritEntry<'a>),
    Inconclusive(&'a [String]),
    Error(&'a str),
}

/// A log being written; every call saves the whole text.
pub struct LogWriter {
    path: Option<PathBuf>,
    text: String,
    direction: Direction,
}

impl LogWriter {
    /// A bisection starting from `bad` (a fix bisection's crashing, older
    /// end), in `direction`'s words; `path: None` keeps it in memory. Steps'
    /// verdicts are written as given: git's terms (for a fix bisection as
    /// syzkaller drives git, "good" is the crashing side).
    pub fn new(path: Option<&Path>, bad: &str, direction: Direction) -> LogWriter {
        LogWriter {
            path: path.map(Path::to_path_buf),
            text: format!("{}\n", bisecting_header(direction, bad)),
            direction,
        }
    }

    /// The path it saves to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn step(&mut self, s: &StepEntry) -> std::io::Result<()> {
        let t = &mut self.text;
        match &s.purpose {
            Purpose::CulpritParent => {
                let _ = writeln!(t, "{PARENT_COMMIT}{}{NOT_TESTED}", s.commit);
            }
            Purpose::Release(tag) => {
                let _ = writeln!(t, "{TESTING_RELEASE}{tag}");
            }
            Purpose::Original | Purpose::Bisect => {}
        }
        let _ = writeln!(t, "{TESTING_COMMIT}{}", s.commit);
        if let Some(c) = s.compiler {
            let _ = writeln!(t, "compiler: {c}");
        }
        for note in &s.notes {
            let _ = writeln!(t, "# kcache: {note}");
        }
        if let Some(sig) = s.signature {
            let _ = writeln!(t, "{KERNEL_SIGNATURE}{sig}");
        }
        for line in &s.build_errors {
            let _ = writeln!(t, "{line}");
        }
        for (i, r) in s.runs.iter().enumerate() {
            let _ = writeln!(t, "{RUN}{i}: {}", format_outcome(r));
        }
        if let Some(v) = s.verdict {
            let _ = writeln!(t, "{GIT_BISECT}{} {}", v.as_str(), s.commit);
        }
        self.save()
    }

    /// A `# kcache:` comment line (syzkaller's parsers skip it).
    pub fn note(&mut self, line: &str) -> std::io::Result<()> {
        let _ = writeln!(self.text, "# kcache: {line}");
        self.save()
    }

    /// `# kcache:` comment lines added to the end of a finished log at
    /// `path` (what kcache did after the bisection: the culprit's check).
    pub fn append_notes(path: &Path, lines: &[String]) -> std::io::Result<()> {
        use std::io::Write as _;
        let mut text = String::new();
        for line in lines {
            let _ = writeln!(text, "# kcache: {line}");
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)?
            .write_all(text.as_bytes())
    }

    pub fn finish(&mut self, ending: &EndingEntry, totals: Totals) -> std::io::Result<()> {
        let revisions = format!(
            "{REVISIONS_TESTED}{}, total time: {} (build: {}, test: {})",
            totals.tested,
            go_duration_text(totals.wall_seconds),
            go_duration_text(totals.build_seconds),
            go_duration_text(totals.test_seconds)
        );
        let fix = self.direction == Direction::Fix;
        let t = &mut self.text;
        match ending {
            EndingEntry::Culprit(c) => {
                let _ = writeln!(t, "{}{FIRST_BAD}", c.commit);
                t.push_str(c.show.trim_end());
                t.push_str("\n\n");
                if let Some(sig) = c.signature {
                    let _ = writeln!(t, "{CULPRIT_SIGNATURE}{sig}");
                }
                if let Some(sig) = c.parent_signature {
                    let _ = writeln!(t, "{PARENT_SIGNATURE}{sig}");
                }
                let _ = writeln!(t, "{revisions}");
                let first = if fix { FIRST_GOOD_COMMIT } else { FIRST_BAD_COMMIT };
                let _ = writeln!(t, "{first}{} {}", c.commit, c.subject);
            }
            EndingEntry::Inconclusive(candidates) => {
                let _ = writeln!(t, "{revisions}");
                let _ = writeln!(t, "{}", if fix { INCONCLUSIVE_FIX } else { INCONCLUSIVE });
                for c in candidates.iter() {
                    let _ = writeln!(t, "{c}");
                }
            }
            EndingEntry::Error(reason) => {
                let _ = writeln!(t, "{revisions}");
                let _ = writeln!(t, "{ERROR}{reason}");
            }
        }
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        match &self.path {
            Some(path) => std::fs::write(path, &self.text),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syzlog::{parse, Ending, Runs};

    const A: &str = "1111111111111111111111111111111111111111";
    const B: &str = "2222222222222222222222222222222222222222";
    const C: &str = "3333333333333333333333333333333333333333";
    /// The start commit: a step testing it would read back as `Original`.
    const START: &str = "4444444444444444444444444444444444444444";
    const SIG: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const PSIG: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn step(commit: &str, purpose: Purpose, runs: Vec<RunOutcome>, verdict: Option<Verdict>) -> StepEntry<'_> {
        StepEntry {
            commit,
            purpose,
            notes: vec!["predicted, not built".into()],
            compiler: Some("gcc-11 (Debian 11.3.0-12) 11.3.0, GNU ld (GNU Binutils for Debian) 2.40"),
            signature: Some(SIG),
            build_errors: Vec::new(),
            runs,
            verdict,
        }
    }

    /// Everything the writer can say is read back as written.
    #[test]
    fn every_kind_of_step_and_ending_reads_back() {
        let outcomes = vec![
            RunOutcome::Ok,
            RunOutcome::Crashed("KASAN: use-after-free Read in foo".into()),
            RunOutcome::BootFailed("boot failed".into()),
            RunOutcome::TestFailed("lost connection".into()),
            RunOutcome::Infra("could not test".into()),
        ];
        let mut w = LogWriter::new(None, START, Direction::Cause);
        let mut failed = step(B, Purpose::Bisect, Vec::new(), Some(Verdict::Skip));
        failed.signature = None;
        failed.build_errors = vec!["mm/x.c:1:2: error: expected ';'"];
        let steps = [
            step(A, Purpose::Bisect, outcomes.clone(), Some(Verdict::Bad)),
            failed,
            step(C, Purpose::Bisect, vec![RunOutcome::Ok], Some(Verdict::Good)),
            step(C, Purpose::CulpritParent, Vec::new(), None),
        ];
        for s in &steps {
            w.step(s).unwrap();
        }
        let totals = Totals {
            tested: 3,
            wall_seconds: 3725.5,
            build_seconds: 61.0,
            test_seconds: 2.25,
        };
        let culprit = CulpritEntry {
            commit: A,
            subject: "mm: grow the pool",
            show: &format!("commit {A}\nAuthor: A <a@b>\n\n    mm: grow the pool\n\n mm/x.c | 1 +\n 1 file changed, 1 insertion(+)\n"),
            signature: Some(SIG),
            parent_signature: Some(PSIG),
        };
        w.finish(&EndingEntry::Culprit(culprit), totals).unwrap();
        let log = parse(w.text().as_bytes()).unwrap();
        assert_eq!(log.steps.len(), steps.len());
        // The format has no mark for the first step's purpose: readers take
        // it for the original commit's test, as syzbot's logs begin.
        assert_eq!(log.steps[0].purpose, Purpose::Original);
        for (i, (read, written)) in log.steps.iter().zip(&steps).enumerate() {
            assert_eq!(read.commit, written.commit);
            if i > 0 {
                assert_eq!(read.purpose, written.purpose);
            }
            assert_eq!(read.signature.as_deref(), written.signature);
            assert_eq!(
                read.compiler.as_deref(),
                written.compiler,
                "the compiler line reads back"
            );
            assert_eq!(read.verdict, written.verdict);
            let runs: Vec<RunOutcome> = match &read.runs {
                Runs::Each(rs) => rs.iter().map(|r| r.outcome.clone()).collect(),
                Runs::None => Vec::new(),
                Runs::All(o) => vec![o.clone()],
            };
            assert_eq!(runs, written.runs);
            assert_eq!(read.build_errors.len(), written.build_errors.len());
        }
        assert!(
            matches!(&log.ending, Ending::FirstBad(c) if c.commit == A),
            "{:?}",
            log.ending
        );
        assert_eq!(log.culprit_signature.as_deref(), Some(SIG));
        assert_eq!(log.parent_signature.as_deref(), Some(PSIG));
        assert_eq!(log.revisions_tested, Some(3));
        let d = log.durations.unwrap();
        assert!((d.total_seconds - 3725.5).abs() < 1e-6 && (d.test_seconds - 2.25).abs() < 1e-6);

        for ending in [
            EndingEntry::Inconclusive(&[A.to_string(), B.to_string()]),
            EndingEntry::Error("no target"),
        ] {
            let mut w = LogWriter::new(None, START, Direction::Cause);
            w.step(&steps[0]).unwrap();
            w.finish(&ending, totals).unwrap();
            let log = parse(w.text().as_bytes()).unwrap();
            match (ending, &log.ending) {
                (EndingEntry::Inconclusive(c), Ending::Inconclusive { candidates }) => assert_eq!(candidates, c),
                (EndingEntry::Error(e), Ending::Error { message }) => assert_eq!(message, e),
                (_, other) => panic!("read back as {other:?}"),
            }
        }
    }

    /// A fix bisection's log is worded as syzkaller's: "fixing commit
    /// since", git's verdicts as given, "first good commit"; and reads back
    /// as a fix bisection naming the same commit.
    #[test]
    fn a_fix_bisection_is_worded_as_syzkaller_words_it() {
        let mut w = LogWriter::new(None, START, Direction::Fix);
        w.step(&step(A, Purpose::Bisect, vec![RunOutcome::Ok], Some(Verdict::Bad)))
            .unwrap();
        let totals = Totals {
            tested: 1,
            wall_seconds: 1.0,
            build_seconds: 0.5,
            test_seconds: 0.5,
        };
        let culprit = CulpritEntry {
            commit: A,
            subject: "mm: fix the pool",
            show: &format!("commit {A}\nAuthor: A <a@b>\n\n    mm: fix the pool\n"),
            signature: Some(SIG),
            parent_signature: Some(PSIG),
        };
        w.finish(&EndingEntry::Culprit(culprit), totals).unwrap();
        let text = w.text();
        assert!(
            text.starts_with(&format!("bisecting fixing commit since {START}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("first good commit: {A} mm: fix the pool")),
            "{text}"
        );
        assert!(!text.contains("first bad commit: "), "{text}");
        let log = parse(text.as_bytes()).unwrap();
        assert_eq!(log.direction, Direction::Fix);
        assert_eq!(log.start_commit.as_deref(), Some(START));
        assert!(
            matches!(&log.ending, Ending::FirstBad(c) if c.commit == A),
            "{:?}",
            log.ending
        );
        assert_eq!(log.trailer.unwrap().first_bad_commit.as_deref(), Some(A));

        let mut w = LogWriter::new(None, START, Direction::Fix);
        w.finish(&EndingEntry::Inconclusive(&[A.to_string(), B.to_string()]), totals)
            .unwrap();
        assert!(
            w.text().contains("the first good commit could be any of:"),
            "{}",
            w.text()
        );
        let log = parse(w.text().as_bytes()).unwrap();
        assert!(matches!(&log.ending, Ending::Inconclusive { candidates } if candidates.len() == 2));
    }
}
