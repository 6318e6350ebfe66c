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

/// Parses a whole log held in memory (see [`parse_reader`]).
pub fn parse(bytes: &[u8]) -> Result<Log, ParseError> {
    match parse_reader(bytes) {
        Ok(log) => Ok(log),
        Err(ReadError::Parse(e)) => Err(e),
        // Reading a byte slice cannot fail; were it to, the input is
        // unreadable, never a panic.
        Err(ReadError::Io(_)) => Err(ParseError::NoBisection),
    }
}

/// Why a log stream could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(std::io::Error),
    #[error("{0}")]
    Parse(ParseError),
}

/// Parses a log from a stream, one line at a time, in memory bounded
/// whatever the input's size: a line is kept up to [`MAX_LINE`] bytes (the
/// rest is skipped: no line the grammar reads is that long), a run's
/// continuation up to [`MAX_DETAIL`], and the lists a log can repeat
/// without end (runs, build errors, candidates, message lines) up to
/// [`MAX_ITEMS`] entries each, far above any real log. Unknown lines
/// (kernel output, reports) are skipped; only input that cannot be a
/// bisection log at all is an error. Console output may hold any bytes: a
/// line with NUL or non-UTF-8 bytes is read with each of them as U+FFFD
/// and counted in [`Log::garbled`].
pub fn parse_reader<R: std::io::BufRead>(input: R) -> Result<Log, ReadError> {
    let mut p = Parser::default();
    let mut garbled: Option<Garbled> = None;
    let mut raw = Vec::with_capacity(256);
    let mut n = 0;
    let mut lines = CappedLines { input, done: false };
    while lines.next_into(&mut raw).map_err(ReadError::Io)? {
        n += 1;
        let line = decode_line(&raw);
        if matches!(line, std::borrow::Cow::Owned(_)) {
            let g = garbled.get_or_insert(Garbled {
                first_line: n,
                lines: 0,
            });
            g.lines += 1;
        }
        p.line(n, line.trim_end_matches('\r'));
    }
    p.finish(garbled).map_err(ReadError::Parse)
}

/// The longest line kept; longer lines (console garbage) are cut there.
pub const MAX_LINE: usize = 64 * 1024;
/// The most bytes of continuation kept for one run.
pub const MAX_DETAIL: usize = 16 * 1024;
/// The most entries kept in any one list of a log (steps, runs of a step,
/// build errors, candidates, message lines, files).
pub const MAX_ITEMS: usize = 10_000;

/// Lines of a stream as `split(b'\n')` gives them (input ending in `\n`
/// has a last, empty line; empty input is one empty line), each cut at
/// [`MAX_LINE`] bytes.
struct CappedLines<R> {
    input: R,
    done: bool,
}

impl<R: std::io::BufRead> CappedLines<R> {
    /// Reads the next line into `buf`; false when there is none.
    fn next_into(&mut self, buf: &mut Vec<u8>) -> std::io::Result<bool> {
        buf.clear();
        if self.done {
            return Ok(false);
        }
        loop {
            let chunk = match self.input.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                self.done = true;
                return Ok(true);
            }
            let (take, found) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (chunk.len(), false),
            };
            let room = MAX_LINE.saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..take.min(room)]);
            self.input.consume(take + usize::from(found));
            if found {
                return Ok(true);
            }
        }
    }
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
    /// The count of git's last `Bisecting: N revisions left` line.
    pending_left: Option<u32>,
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
                        push_capped(candidates, h.to_string());
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
        } else if let Some(left) = revisions_left_line(line) {
            self.pending_left = Some(left);
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
            let sig = sig.trim().to_string();
            // Logs of 2019-2020 sum up after the culprit with `kernel
            // signature:` (the culprit's) and `previous signature:`; only a
            // step started after the result (the parent's build) owns one.
            let after_result = matches!(self.ending, Some(Ending::FirstBad(_)))
                && self.steps.last().is_some_and(|s| s.purpose != Purpose::CulpritParent);
            if after_result {
                self.culprit_signature = Some(sig);
            } else if let Some(s) = self.steps.last_mut() {
                s.signature = Some(sig);
            }
        } else if let Some(sig) = line.strip_prefix("previous signature: ") {
            if matches!(self.ending, Some(Ending::FirstBad(_))) {
                self.parent_signature = Some(sig.trim().to_string());
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
        } else if let Some(rest) = line
            .strip_prefix(FIRST_BAD_COMMIT)
            .or_else(|| line.strip_prefix(FIRST_GOOD_COMMIT))
        {
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
                    push_capped(&mut s.build_errors, line.to_string());
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
        step.left = self.pending_left.take();
        if let Some((h, t)) = self.pending_title.take() {
            if h == commit {
                step.title = Some(t);
            }
        }
        push_capped(&mut self.steps, step);
    }

    fn add_run(&mut self, index: u32, outcome: RunOutcome) {
        let Some(s) = self.steps.last_mut() else { return };
        let run = Run {
            index,
            outcome,
            detail: String::new(),
        };
        match &mut s.runs {
            Runs::Each(v) => push_capped(v, run),
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
                if r.detail.len() + line.len() < MAX_DETAIL {
                    if !r.detail.is_empty() {
                        r.detail.push('\n');
                    }
                    r.detail.push_str(line);
                }
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
            push_capped(&mut c.message, m.to_string());
            return true;
        }
        if line.is_empty() {
            return true;
        }
        if let Some((path, _)) = diffstat_file(line) {
            self.block_part = 2;
            push_capped(&mut c.files, path.to_string());
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

/// Appends unless the list already holds [`MAX_ITEMS`]: a log repeating a
/// line without end cannot grow memory without end.
fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_ITEMS {
        list.push(item);
    }
}
