//! The parser: one pass over the lines, a small state machine.

use super::grammar::*;
use super::model::*;

/// Why a file is not a bisection log at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("binary data from line {first_line} on and no 'bisecting ... commit starting from' or 'testing commit' line: not a syzbot bisection log")]
    Binary { first_line: usize },
    #[error("no 'bisecting ... commit starting from' or 'testing commit' line: not a syzbot bisection log")]
    NoBisection,
}

#[derive(Default)]
enum Mode {
    #[default]
    Main,
    /// After `run #N: ...`: continuation lines belong to it until a blank line.
    RunDetail,
    /// After `H is the first bad commit`: the `git show --stat` block.
    CulpritBlock,
    Candidates,
    /// After the trailer's `crash:` line: the report, to the end.
    Report,
}

/// Parses a whole log. Unknown lines (kernel output, reports) are skipped;
/// only input that cannot be a bisection log at all is an error. Console
/// output may hold any bytes: a line with NUL or non-UTF-8 bytes is read
/// with each of them as U+FFFD and counted in [`Log::garbled`].
pub fn parse(bytes: &[u8]) -> Result<Log, ParseError> {
    let mut p = Parser::default();
    let mut garbled: Option<Garbled> = None;
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = decode_line(raw);
        if matches!(line, std::borrow::Cow::Owned(_)) {
            let g = garbled.get_or_insert(Garbled {
                first_line: i + 1,
                lines: 0,
            });
            g.lines += 1;
        }
        p.line(i + 1, line.trim_end_matches('\r'));
    }
    p.finish(garbled)
}

/// A line as text: borrowed when it is clean UTF-8 without NUL bytes,
/// else with every NUL and every invalid sequence as U+FFFD.
fn decode_line(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(text) if !text.contains('\0') => std::borrow::Cow::Borrowed(text),
        Ok(text) => std::borrow::Cow::Owned(text.replace('\0', "\u{FFFD}")),
        Err(_) => std::borrow::Cow::Owned(String::from_utf8_lossy(raw).replace('\0', "\u{FFFD}")),
    }
}

#[derive(Default)]
struct Parser {
    direction: Direction,
    start_commit: Option<String>,
    syzkaller_commit: Option<String>,
    steps: Vec<Step>,
    pending_purpose: Option<Purpose>,
    pending_title: Option<(String, String)>,
    ending: Option<Ending>,
    culprit_signature: Option<String>,
    parent_signature: Option<String>,
    revisions_tested: Option<u32>,
    durations: Option<Durations>,
    flaky: bool,
    trailer: Option<Trailer>,
    mode: Mode,
    /// Inside the culprit block: 0 header, 1 message, 2 diffstat.
    block_part: u8,
}

impl Parser {
    fn set_mode(&mut self, m: Mode) {
        self.mode = m;
    }

    fn line(&mut self, n: usize, line: &str) {
        match self.mode {
            Mode::Report => {
                if let Some(t) = self.trailer.as_mut() {
                    t.report_lines += 1;
                }
                return;
            }
            Mode::RunDetail => {
                if line.is_empty() {
                    self.set_mode(Mode::Main);
                    return;
                }
                if !is_step_level(line) {
                    self.append_run_detail(line);
                    return;
                }
                self.set_mode(Mode::Main);
            }
            Mode::CulpritBlock => {
                if self.culprit_line(line) {
                    return;
                }
                self.set_mode(Mode::Main);
            }
            Mode::Candidates => {
                if let Some(h) = full_hash(line.trim()) {
                    if let Some(Ending::Inconclusive { candidates }) = self.ending.as_mut() {
                        candidates.push(h.to_string());
                    }
                    return;
                }
                self.set_mode(Mode::Main);
            }
            Mode::Main => {}
        }
        self.main_line(n, line);
    }

    fn main_line(&mut self, n: usize, line: &str) {
        if let Some((dir, commit)) = bisecting_line(line) {
            self.direction = dir;
            self.start_commit = Some(commit.to_string());
        } else if let Some(h) = line.strip_prefix("building syzkaller on ") {
            self.syzkaller_commit = Some(h.trim().to_string());
        } else if line.starts_with("ensuring issue is reproducible on original commit") {
            self.pending_purpose = Some(Purpose::Original);
        } else if let Some(rel) = line.strip_prefix(TESTING_RELEASE) {
            self.pending_purpose = Some(Purpose::Release(rel.trim().to_string()));
        } else if let Some(rest) = line.strip_prefix(PARENT_COMMIT) {
            if rest.ends_with(NOT_TESTED.trim_start()) {
                self.pending_purpose = Some(Purpose::CulpritParent);
            }
        } else if let Some((commit, compiler)) = testing_commit_line(line) {
            self.start_step(n, commit, compiler);
        } else if let Some(c) = line.strip_prefix("compiler: ") {
            if let Some(s) = self.steps.last_mut() {
                s.compiler = Some(c.trim().to_string());
            }
        } else if let Some(sig) = line.strip_prefix(KERNEL_SIGNATURE) {
            if let Some(s) = self.steps.last_mut() {
                s.signature = Some(sig.trim().to_string());
            }
        } else if let Some((index, outcome)) = run_line(line) {
            self.add_run(index, outcome);
        } else if let Some(rest) = line.strip_prefix("all runs: ") {
            if let Some(s) = self.steps.last_mut() {
                s.runs = Runs::All(parse_outcome(rest));
            }
        } else if let Some((verdict, commit)) = verdict_line(line) {
            self.set_verdict(verdict, commit);
        } else if let Some((hash, title)) = bisect_pick_line(line) {
            self.pending_title = Some((hash.to_string(), title.to_string()));
        } else if let Some(h) = line.strip_suffix(FIRST_BAD) {
            if let Some(h) = full_hash(h) {
                self.ending = Some(Ending::FirstBad(CulpritCommit {
                    commit: h.to_string(),
                    ..Default::default()
                }));
                self.block_part = 0;
                self.set_mode(Mode::CulpritBlock);
            }
        } else if let Some(sig) = line.strip_prefix(CULPRIT_SIGNATURE) {
            self.culprit_signature = Some(sig.trim().to_string());
        } else if let Some(sig) = line.strip_prefix(PARENT_SIGNATURE) {
            self.parent_signature = Some(sig.trim().to_string());
        } else if let Some((count, d)) = revisions_line(line) {
            self.revisions_tested = Some(count);
            self.durations = d;
        } else if line.starts_with("bisection is inconclusive") {
            self.ending = Some(Ending::Inconclusive { candidates: Vec::new() });
            self.set_mode(Mode::Candidates);
        } else if line.starts_with("the crash already happened on the oldest tested release") {
            self.ending = Some(Ending::OldestRelease { commit_msg: None });
        } else if let Some(msg) = line.strip_prefix("commit msg: ") {
            if let Some(Ending::OldestRelease { commit_msg }) = self.ending.as_mut() {
                *commit_msg = Some(msg.to_string());
            }
        } else if let Some(msg) = line.strip_prefix(ERROR) {
            if self.ending.is_none() || matches!(self.ending, Some(Ending::Unfinished)) {
                self.ending = Some(Ending::Error {
                    message: msg.to_string(),
                });
            }
        } else if line.starts_with("reproducer seems to be flaky") || line.starts_with("Reproducer flagged being flaky")
        {
            self.flaky = true;
        } else if let Some(rest) = line.strip_prefix(FIRST_BAD_COMMIT) {
            let t = self.trailer.get_or_insert_with(Trailer::default);
            let (h, title) = rest.split_once(' ').unwrap_or((rest, ""));
            t.first_bad_commit = Some(h.to_string());
            t.first_bad_title = Some(title.to_string());
        } else if let Some(list) = line.strip_prefix("recipients (to): ") {
            self.trailer.get_or_insert_with(Trailer::default).recipients_to = quoted_list(list);
        } else if let Some(list) = line.strip_prefix("recipients (cc): ") {
            self.trailer.get_or_insert_with(Trailer::default).recipients_cc = quoted_list(list);
        } else if let Some(title) = line.strip_prefix("crash: ") {
            if self.ending.is_some() || self.revisions_tested.is_some() {
                self.trailer.get_or_insert_with(Trailer::default).crash_title = Some(title.to_string());
                self.set_mode(Mode::Report);
            }
        } else if let Some(err) = line.strip_prefix("failed: ") {
            if let Some(s) = self.steps.last_mut() {
                s.infra_error = Some(err.to_string());
            }
        } else if is_build_error(line) {
            if let Some(s) = self.steps.last_mut() {
                if s.signature.is_none() && !s.tested() {
                    s.build_errors.push(line.to_string());
                }
            }
        }
    }

    fn start_step(&mut self, n: usize, commit: &str, compiler: Option<&str>) {
        let purpose = self.pending_purpose.take().unwrap_or(if self.steps.is_empty() {
            Purpose::Original
        } else {
            Purpose::Bisect
        });
        let mut step = Step::new(n, commit, purpose);
        step.compiler = compiler.map(str::to_string);
        if let Some((h, t)) = self.pending_title.take() {
            if h == commit {
                step.title = Some(t);
            }
        }
        self.steps.push(step);
    }

    fn add_run(&mut self, index: u32, outcome: RunOutcome) {
        let Some(s) = self.steps.last_mut() else { return };
        let run = Run {
            index,
            outcome,
            detail: String::new(),
        };
        match &mut s.runs {
            Runs::Each(v) => v.push(run),
            other => *other = Runs::Each(vec![run]),
        }
        self.set_mode(Mode::RunDetail);
    }

    fn append_run_detail(&mut self, line: &str) {
        if let Some(Step {
            runs: Runs::Each(v), ..
        }) = self.steps.last_mut()
        {
            if let Some(r) = v.last_mut() {
                if !r.detail.is_empty() {
                    r.detail.push('\n');
                }
                r.detail.push_str(line);
            }
        }
    }

    fn set_verdict(&mut self, verdict: Verdict, commit: &str) {
        // The verdict names its commit; attach it to the latest step for it.
        if let Some(s) = self.steps.iter_mut().rev().find(|s| s.commit == commit) {
            s.verdict = Some(verdict);
        }
    }

    /// One line of the `git show --stat` block; false when the block ended.
    fn culprit_line(&mut self, line: &str) -> bool {
        let Some(Ending::FirstBad(c)) = self.ending.as_mut() else {
            return false;
        };
        if self.block_part == 0 {
            if line.starts_with("commit ") {
                return true;
            }
            if let Some(a) = line.strip_prefix("Author:") {
                c.author = Some(a.trim().to_string());
                return true;
            }
            if let Some(d) = line.strip_prefix("Date:") {
                c.date = Some(d.trim().to_string());
                return true;
            }
            if let Some(m) = line.strip_prefix("Merge:") {
                c.merge_parents = m.split_whitespace().map(str::to_string).collect();
                return true;
            }
            if line.is_empty() {
                self.block_part = 1;
                return true;
            }
            return false;
        }
        if let Some(m) = line.strip_prefix("    ") {
            c.message.push(m.to_string());
            return true;
        }
        if line.is_empty() {
            return true;
        }
        if let Some((path, _)) = diffstat_file(line) {
            self.block_part = 2;
            c.files.push(path.to_string());
            return true;
        }
        if is_diffstat_summary(line) {
            c.diffstat_summary = Some(line.trim().to_string());
            return true;
        }
        if line.starts_with(" create mode")
            || line.starts_with(" delete mode")
            || line.starts_with(" rename ")
            || line.starts_with(" mode change")
        {
            return true;
        }
        false
    }

    fn finish(self, garbled: Option<Garbled>) -> Result<Log, ParseError> {
        if self.start_commit.is_none() && self.steps.is_empty() {
            return Err(match garbled {
                Some(g) => ParseError::Binary {
                    first_line: g.first_line,
                },
                None => ParseError::NoBisection,
            });
        }
        Ok(Log {
            direction: self.direction,
            start_commit: self.start_commit,
            syzkaller_commit: self.syzkaller_commit,
            steps: self.steps,
            ending: self.ending.unwrap_or(Ending::Unfinished),
            culprit_signature: self.culprit_signature,
            parent_signature: self.parent_signature,
            revisions_tested: self.revisions_tested,
            durations: self.durations,
            flaky: self.flaky,
            trailer: self.trailer,
            garbled,
        })
    }
}
