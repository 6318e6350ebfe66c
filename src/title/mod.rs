//! Crash titles from console output, as syzkaller/syzbot write them.
//!
//! [`title`] finds the first kernel report in a console log (KASAN, KMSAN,
//! KCSAN, UBSAN, WARNING, BUG:, general protection fault, lockdep, hung
//! tasks, RCU stalls, panics, ...), keeps the lines of the task or CPU that
//! printed it, and names it the way syzkaller's report parser does: the
//! report's kind, then the guilty frame, found by skipping the frames of the
//! report machinery itself (sanitizers, `dump_stack`, locking, allocators,
//! string helpers) and, for stalls and hangs, by anchoring on the
//! dispatching frame. Numbers, addresses and executor ids in titles become
//! placeholders (`NUM`, `ADDR`, `syz-executor`), as in syzbot's titles.
//!
//! The rules are kcache's own, learned from the kernel's report formats and
//! syzkaller's published conventions: `rules` holds the report formats,
//! `frames` the frame-skipping lists and the stall/hang anchors; this file
//! is the engine that applies them.
//!
//! Invariant: a pure function of the bytes it is given: never panics on
//! any input (binary garbage, invalid UTF-8, lines of any length), runs in
//! time linear in the input (every rule is a `regex` automaton compiled
//! once), knows nothing of the cache, the search or the processes that
//! produced the output.

pub mod console;
mod frames;
mod rules;

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use rules::{Format, Oops, Part, StackFmt};

/// A crash report found in console output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The crash title as syzbot would write it (`KASAN: use-after-free
    /// Read in link_path_walk`, `WARNING in f`, `INFO: task hung in g`).
    pub title: String,
    /// What kind of bug the title names.
    pub class: BugClass,
    /// The report looks mangled (interleaved output, a missing stack
    /// trace, a truncated header): the title is a best effort.
    pub corrupted: bool,
    /// The 1-based line of the console output where the report starts.
    pub start_line: usize,
    /// The guilty function the title names, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
    /// Not a kernel bug (a Go program on the machine died): never the
    /// target of a bisection ([`is_suppressed`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// The title of a Go runtime crash on the console (syzkaller's).
pub const GO_RUNTIME_ERROR: &str = "go runtime error";

/// Titles of crashes that are not the kernel's: syzkaller reports them
/// but marks them suppressed, and no bisection may chase them.
pub const SUPPRESSED_TITLES: &[&str] = &[GO_RUNTIME_ERROR];

/// Whether a title (from [`title`], a test's `crash:` line or a syzbot
/// log) names a crash that is not a kernel bug.
pub fn is_suppressed(title: &str) -> bool {
    let t = canonical(title);
    SUPPRESSED_TITLES.iter().any(|s| t == *s)
}

/// The kind of bug a title names (serialized as kebab-case words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BugClass {
    /// KASAN, KFENCE, general protection faults, bad page accesses,
    /// invalid frees, corrupted lists, stack overflows.
    MemorySafety,
    /// A NULL pointer dereference.
    NullDeref,
    /// KMSAN: use of uninitialized memory or an info leak.
    UninitValue,
    /// KCSAN: a data race.
    DataRace,
    /// UBSAN: undefined behaviour.
    Ubsan,
    /// A `WARNING` (WARN_ON and friends).
    Warning,
    /// A refcount underflow or overflow warning.
    Refcount,
    /// Lockdep: a possible deadlock, an inconsistent lock state, bad
    /// unlock balance.
    Lockdep,
    /// Sleeping in atomic context.
    AtomicSleep,
    /// A `kernel BUG` (BUG_ON), an invalid opcode, a divide error.
    Bug,
    /// A hung task, an RCU stall, a soft lockup.
    Hang,
    /// A kmemleak report.
    MemoryLeak,
    /// A kernel panic with no more specific report.
    Panic,
    /// The kernel rebooted unexpectedly.
    Reboot,
    /// syzkaller's own failure (`SYZFAIL`, `SYZFATAL`), not the kernel's.
    Infrastructure,
    /// Any other report.
    Other,
}

impl BugClass {
    /// The class a (syzkaller-style) title names: a function of the title
    /// alone, so a title from a syzbot log and one from [`title`] class
    /// alike.
    pub fn of_title(title: &str) -> BugClass {
        let t = title.trim_start();
        let starts = |p: &str| t.starts_with(p);
        if starts("SYZFAIL") || starts("SYZFATAL") || starts("panic:") || starts(GO_RUNTIME_ERROR) {
            BugClass::Infrastructure
        } else if starts("unexpected kernel reboot") {
            BugClass::Reboot
        } else if starts("memory leak") {
            BugClass::MemoryLeak
        } else if starts("KCSAN") {
            BugClass::DataRace
        } else if starts("KMSAN") {
            BugClass::UninitValue
        } else if starts("KASAN: null-ptr-deref") || t.contains("NULL pointer dereference") {
            BugClass::NullDeref
        } else if starts("KASAN")
            || starts("KFENCE")
            || starts("general protection fault")
            || starts("BUG: unable to handle")
            || starts("Unable to handle")
            || starts("Unhandled fault")
            || starts("Internal error")
            || starts("BUG: corrupted list")
            || starts("BUG: bad usercopy")
            || starts("WARNING: bad usercopy")
            || starts("BUG: stack guard page")
            || starts("kernel stack overflow")
            || starts("kernel panic: stack is corrupted")
            || starts("kernel panic: corrupted stack end")
            || starts("PANIC: double fault")
            || starts("BUG: Object already free")
            || starts("VFS: ")
            || starts("stack segment fault")
            || starts("INFO: Allocated")
            || starts("INFO: Freed")
        {
            BugClass::MemorySafety
        } else if starts("UBSAN") {
            BugClass::Ubsan
        } else if starts("WARNING: refcount bug") {
            BugClass::Refcount
        } else if starts("possible deadlock")
            || starts("inconsistent lock state")
            || starts("WARNING: locking bug")
            || starts("WARNING: nested lock")
            || starts("WARNING: held lock")
            || starts("WARNING: still has locks held")
            || starts("WARNING: lock held")
            || starts("WARNING: bad unlock balance")
            || starts("WARNING: suspicious RCU usage")
            || starts("INFO: suspicious RCU usage")
            || starts("BUG: bad unlock balance")
            || starts("BUG: held lock freed")
            || starts("BUG: still has locks held")
            || starts("BUG: lock held")
            || starts("BUG: spinlock")
            || starts("BUG: rwlock")
            || starts("INFO: trying to register non-static key")
        {
            BugClass::Lockdep
        } else if starts("BUG: sleeping function") || starts("BUG: scheduling while atomic") {
            BugClass::AtomicSleep
        } else if starts("INFO: task hung")
            || starts("INFO: task can't die")
            || starts("INFO: rcu detected stall")
            || starts("BUG: soft lockup")
            || starts("BUG: workqueue lockup")
        {
            BugClass::Hang
        } else if starts("WARNING") {
            BugClass::Warning
        } else if starts("kernel BUG")
            || starts("invalid opcode")
            || starts("divide error")
            || starts("int3")
            || starts("BUG: Bad page")
            || starts("attempt to")
        {
            BugClass::Bug
        } else if starts("kernel panic") {
            BugClass::Panic
        } else {
            BugClass::Other
        }
    }
}

/// The crash as syzkaller/syzbot would title it, or `None` when the output
/// holds no crash.
pub fn title(console: &[u8]) -> Option<Report> {
    let text = String::from_utf8_lossy(console);
    let (lines, origin) = unreplayed_lines(&text);
    let (oops, start, context) = first_oops(&lines)?;
    let found = find_report(&lines, oops, start, &context);
    let mut described = describe(&found.report[..found.report_end], oops);
    if described.is_none() {
        let raw = lines[start..=found.end_line.max(start)].join("\n");
        described = describe(&raw, oops);
    }
    let d = described?;
    let mut corrupted = d.corrupted;
    if !corrupted {
        corrupted = looks_corrupted(&d.title, &found.report, d.format);
    }
    if text.contains("serialport: VM disconnected.") {
        corrupted = true;
    }
    let title = sanitize(&replace_dynamic(&d.title));
    let frame = FRAME_IN_TITLE
        .captures(&title)
        .and_then(|c| c.get(1))
        .map(|m| m.as_str().to_string());
    Some(Report {
        class: BugClass::of_title(&title),
        suppressed: is_suppressed(&title),
        title,
        corrupted,
        start_line: origin[start] + 1,
        frame,
    })
}

/// What the printk console prints when it takes a line over from another
/// CPU mid-way: the cut line, this marker, then the whole line again.
const REPLAY_MARKER: &str = "** replaying previous printk message **";

/// The console's lines with every line cut short by a console takeover
/// dropped (its replay follows it), and each kept line's 0-based index in
/// the console.
fn unreplayed_lines(text: &str) -> (Vec<&str>, Vec<usize>) {
    let mut lines: Vec<&str> = Vec::new();
    let mut origin: Vec<usize> = Vec::new();
    for (i, line) in text.split('\n').enumerate() {
        let Some(at) = line.find(REPLAY_MARKER) else {
            lines.push(line);
            origin.push(i);
            continue;
        };
        // The cut line is before the marker, on this line or the one above.
        if line[..at].trim().is_empty() && lines.pop().is_some() {
            origin.pop();
        }
        let rest = &line[at + REPLAY_MARKER.len()..];
        if !rest.trim().is_empty() {
            lines.push(rest.trim_start());
            origin.push(i);
        }
    }
    (lines, origin)
}

/// The same title as [`title`] gives, made from a title: syzkaller's
/// replacement of what varies between runs (executor ids, addresses, line
/// numbers, numbers) and its white-space clean-up. A title that came out of
/// [`title`] or a syzbot log is left as it is.
pub fn canonical(title: &str) -> String {
    sanitize(&replace_dynamic(title))
}

/// `kcache title`'s answer for one console log file (`--json`: one
/// `kcache/title/v1` object per file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileTitle {
    pub file: String,
    /// `None`: the output holds no crash.
    pub title: Option<String>,
    pub class: Option<BugClass>,
    pub corrupted: bool,
    pub start_line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TitleError {
    #[error("cannot read console log {path}: {source}")]
    Read { path: String, source: std::io::Error },
}

/// Titles one console log file.
pub fn title_file(path: &std::path::Path) -> Result<FileTitle, TitleError> {
    let bytes = std::fs::read(path).map_err(|source| TitleError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let report = title(&bytes);
    Ok(FileTitle {
        file: path.display().to_string(),
        title: report.as_ref().map(|r| r.title.clone()),
        class: report.as_ref().map(|r| r.class),
        corrupted: report.as_ref().is_some_and(|r| r.corrupted),
        start_line: report.as_ref().map(|r| r.start_line),
        frame: report.and_then(|r| r.frame),
    })
}

/// The crash report of a console as people read it: from the line where
/// it starts, at most `max_lines` lines (and 16 KiB), as printed; `None`
/// when the console holds no crash.
pub fn excerpt(console: &[u8], max_lines: usize) -> Option<String> {
    const MAX_BYTES: usize = 16 << 10;
    let report = title(console)?;
    let text = String::from_utf8_lossy(console);
    let mut out = String::new();
    for line in text.split('\n').skip(report.start_line - 1).take(max_lines) {
        if out.len() + line.len() >= MAX_BYTES {
            break;
        }
        out.push_str(line.strip_suffix('\r').unwrap_or(line));
        out.push('\n');
    }
    Some(out)
}

static FRAME_IN_TITLE: LazyLock<Regex> = LazyLock::new(|| re(r".* in ([a-zA-Z0-9_]+)"));

/// Compiles one of the rule tables' patterns, expanding syzkaller's
/// shorthands: `{{PC}}` a bracketed address, `{{FUNC}}` a function name
/// (captured) before its `+0x..` offset or `.isra` suffix, `{{SRC}}` a
/// `file.c:LINE` (captured), `{{ADDR}}` a hex address. The tables are
/// constants: a bad pattern is a bug caught by the unit tests.
pub(crate) fn re(pattern: &str) -> Regex {
    let p = pattern
        .replace("{{ADDR}}", "0x[0-9a-f]+")
        .replace("{{PC}}", r"\[<?(?:0x)?[0-9a-f]+>?\]")
        .replace("{{FUNC}}", r"([a-zA-Z0-9_]+)(?:\.|\+)")
        .replace("{{SRC}}", r"([a-zA-Z0-9\-_/.]+\.[a-z]+:[0-9]+)");
    Regex::new(&p).unwrap_or_else(|e| panic!("title rule {pattern:?} does not compile: {e}"))
}

/// A console line's printk prefix: `[  12.345678]` and, with
/// CONFIG_PRINTK_CALLER, the task (`[T1234]`) or CPU (`[C0]`) that printed.
static CONSOLE_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:\*\* [0-9]+ printk messages dropped \*\* )?(?:.*?)(?:<[0-9]+>)?\[ *[0-9]+\.[0-9]+\](\[ *(?:C|T)[0-9]+\])? ",
    )
});
static TASK_CONTEXT: LazyLock<Regex> = LazyLock::new(|| re(r"\[ *T[0-9]+\]"));
static CPU_CONTEXT: LazyLock<Regex> = LazyLock::new(|| re(r"\[ *C[0-9]+\]"));
/// A frame the unwinder is unsure of (`? f+0x1/0x2`).
static QUESTIONABLE: LazyLock<Regex> = LazyLock::new(|| re(r"(\[<[0-9a-f]+>\])? \? "));

/// The lines without a CONFIG_PRINTK_CALLER context but with a timestamp.
const CONTEXT_CONSOLE: &str = "console";

/// Who printed a line: "" (no timestamp), [`CONTEXT_CONSOLE`] (a timestamp
/// only), or the `[T..]`/`[C..]` caller.
fn context_of(line: &str) -> String {
    match CONSOLE_PREFIX.captures(line) {
        None => String::new(),
        Some(c) => match c.get(1) {
            None => CONTEXT_CONSOLE.to_string(),
            Some(m) => m.as_str().to_string(),
        },
    }
}

/// The line without its printk prefix, and whether it is a questionable
/// frame (left out of the report).
fn strip_prefix<'a>(line: &'a str, context: &str) -> (&'a str, bool) {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if context.is_empty() {
        return (line, false);
    }
    // Past the prefix (and whatever junk a console glued before it).
    let line = &line[CONSOLE_PREFIX.find(line).map_or(0, |m| m.end())..];
    if !line.contains("<EOI>") {
        if QUESTIONABLE.is_match(line) {
            if let Some(i) = line.find(" ? ") {
                return (&line[i + 2..], true);
            }
        }
        if let Some(s) = line.strip_suffix(" (unreliable)") {
            return (s, true);
        }
    }
    (line, false)
}

fn matches_oops(line: &str, oops: &Oops) -> bool {
    line.contains(oops.header) && !oops.suppressions.iter().any(|s| s.is_match(line))
}

/// The report kinds whose header the line holds (most lines: none).
fn oopses_in(line: &str) -> impl Iterator<Item = &'static Oops> + '_ {
    let any = rules::ANY_HEADER.is_match(line);
    rules::OOPSES.iter().filter(move |o| any && matches_oops(line, o))
}

/// The first line that starts a report: its oops kind, index and context.
fn first_oops(lines: &[&str]) -> Option<(&'static Oops, usize, String)> {
    for (i, line) in lines.iter().enumerate() {
        if let Some(oops) = oopses_in(line).next() {
            return Some((oops, i, context_of(line)));
        }
    }
    None
}

/// These start no new report: they come in the middle of another one.
static REPORT_START_IGNORES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        "invalid opcode: 0000",
        "Kernel panic - not syncing",
        "unregister_netdevice: waiting for",
        "PANIC: double fault",
        "Internal error:",
    ]
    .iter()
    .map(|p| re(p))
    .collect()
});

/// Informational messages with a stack trace: when one interleaves with a
/// report, the report may be mangled.
const INFO_WITH_STACK: [&str; 3] = [
    "vmalloc: allocation failure:",
    "FAULT_INJECTION: forcing a failure",
    "FAULT_FLAG_ALLOW_RETRY missing",
];

struct Found {
    /// The report's lines from the printing context, prefixes stripped.
    report: String,
    /// Where the report stops being only this report (a second report
    /// starts, in output without a caller context).
    report_end: usize,
    /// The last line that starts any report.
    end_line: usize,
}

/// The report text: the lines printed by the report's context (and, during
/// an all-CPU backtrace, by the CPUs), up to where a panic or a second
/// report takes over.
fn find_report(lines: &[&str], oops: &Oops, start: usize, context: &str) -> Found {
    let mut report = String::new();
    let mut report_end = 0;
    let mut end_line = start;
    let mut second_report = false;
    let mut text_lines = 0;
    let (mut skip_text, mut cpu_traceback) = (false, false);
    let min_lines = if lines[start].contains("BUG: KMSAN:") { 16 } else { 22 };
    for (i, &line) in lines.iter().enumerate().skip(start) {
        let context1 = context_of(line);
        let (stripped, questionable) = strip_prefix(line, &context1);
        let is_oops_line = i == start;
        let _ = oops;
        if !is_oops_line && !second_report && INFO_WITH_STACK.iter().any(|p| line.contains(p)) {
            second_report = true;
        }
        if oopses_in(line).next().is_some() {
            end_line = i;
            if !is_oops_line && !second_report && !REPORT_START_IGNORES.iter().any(|r| r.is_match(line)) {
                second_report = true;
            }
        }
        let other_context = context1 != context && (!cpu_traceback || !CPU_CONTEXT.is_match(&context1));
        if !is_oops_line && (questionable || other_context) {
            continue;
        }
        text_lines += 1;
        let mut skip_line = skip_text;
        if line.contains("Disabling lock debugging due to kernel taint") {
            skip_line = true;
        } else if line.contains("Sending NMI from CPU") {
            cpu_traceback = true;
        } else if (line.contains("Kernel panic - not syncing")
            || line.contains("WARNING: possible circular locking dependency detected"))
            && text_lines > min_lines
        {
            // panic_on_warn's panic repeats the stack of the report before
            // it; an oops often provokes a lockdep report of its own.
            skip_text = true;
            skip_line = true;
        }
        if !is_oops_line && skip_line {
            continue;
        }
        report.push_str(stripped);
        report.push('\n');
        if !second_report || (!context.is_empty() && context != CONTEXT_CONSOLE) {
            report_end = report.len();
        }
    }
    let _ = TASK_CONTEXT.is_match(context);
    Found {
        report,
        report_end,
        end_line,
    }
}

struct Described {
    title: String,
    corrupted: bool,
    format: Option<&'static Format>,
}

/// The title from the report text: of the oops kind's formats, the one
/// whose title matches earliest (the first listed on a tie) names it; a
/// format whose full report pattern or stack does not match makes the
/// report corrupted.
fn describe(output: &str, oops: &'static Oops) -> Option<Described> {
    let mut start = output.len();
    let mut desc = String::new();
    let mut corrupted = false;
    let mut matched_title = false;
    let mut format: Option<&'static Format> = None;
    for f in oops.formats.iter() {
        let Some(m) = f.title.find(output) else { continue };
        if m.start() > start || (m.start() == start && !desc.is_empty()) {
            continue;
        }
        if m.start() < start {
            desc.clear();
            format = None;
            start = m.start();
        }
        matched_title = true;
        let caps = match &f.report {
            Some(r) => match r.captures(output) {
                Some(c) => c,
                None => continue,
            },
            None => match f.title.captures(output) {
                Some(c) => c,
                None => continue,
            },
        };
        let from = caps.get(0).map_or(0, |m| m.start());
        let mut args: Vec<String> = caps
            .iter()
            .skip(1)
            .map(|g| g.map_or(String::new(), |m| m.as_str().to_string()))
            .collect();
        corrupted = false;
        if let Some(stack) = &f.stack {
            let (frames, ok) = stack_frames(stack, &output[from..]);
            if !ok {
                corrupted = true;
            }
            args.extend(frames);
        }
        desc = fill(f.fmt, &args);
        format = Some(f);
    }
    if desc.is_empty() {
        if matched_title {
            corrupted = true;
        }
        let pos = output.find(oops.header)?;
        let end = output[pos..].find('\n').map_or(output.len(), |e| pos + e);
        desc = output[pos..end].to_string();
    }
    if !corrupted && format.is_some_and(|f| f.corrupted) {
        corrupted = true;
    }
    Some(Described {
        title: desc,
        corrupted,
        format,
    })
}

/// `fmt` with `{N}` replaced by the N-th (1-based) argument.
fn fill(fmt: &str, args: &[String]) -> String {
    let mut out = String::with_capacity(fmt.len() + 32);
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| after[..close].parse::<usize>().ok().map(|n| (close, n)))
        {
            Some((close, n)) => {
                if let Some(a) = n.checked_sub(1).and_then(|i| args.get(i)) {
                    out.push_str(a);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The guilty frames of a report, one per stack the format reads, and
/// whether every stack gave one.
fn stack_frames(stack: &StackFmt, output: &str) -> (Vec<String>, bool) {
    let (frames, ok) = stack_frames_with(stack, &stack.parts, output, &stack.skip);
    if ok || stack.parts2.is_empty() {
        return (frames, ok);
    }
    stack_frames_with(stack, &stack.parts2, output, &stack.skip)
}

fn stack_frames_with(stack: &StackFmt, parts: &[Part], output: &str, skip: &frames::Skip) -> (Vec<String>, bool) {
    let mut lines = output.lines();
    let mut frames: Vec<String> = Vec::new();
    let mut results = Vec::new();
    let mut ok = true;
    let mut stacks = 0;
    let mut idx = 0;
    loop {
        if idx == parts.len() || (matches!(parts[idx], Part::Stack) && stacks > 0) {
            let key = if frames.is_empty() {
                None
            } else {
                (stack.extractor)(&frames)
            };
            match key {
                Some(k) => results.push(k),
                None => {
                    results.push("corrupted".to_string());
                    ok = false;
                }
            }
            frames.clear();
        }
        if idx == parts.len() {
            break;
        }
        match &parts[idx] {
            Part::Stack => {
                stacks += 1;
                for ln in lines.by_ref() {
                    if frames::is_corrupting_line(ln) {
                        ok = false;
                        break;
                    }
                    if frames::starts_stack(ln) {
                        break;
                    }
                    if let Some(Part::Re(next)) = parts.get(idx + 1) {
                        if let Some(c) = next.captures(ln) {
                            push_frame(&mut frames, &c, skip);
                            idx += 1;
                            break;
                        }
                    }
                    if let Some(c) = frames::FRAME_RES.iter().find_map(|r| r.captures(ln)) {
                        push_frame(&mut frames, &c, skip);
                    }
                }
            }
            Part::Re(part) => {
                for ln in lines.by_ref() {
                    if frames::is_corrupting_line(ln) {
                        ok = false;
                        break;
                    }
                    if let Some(c) = part.captures(ln) {
                        push_frame(&mut frames, &c, skip);
                        break;
                    }
                }
            }
        }
        idx += 1;
    }
    (results, ok)
}

/// The first captured function name that is not report machinery, with
/// the syscall-wrapper prefixes stripped.
fn push_frame(frames: &mut Vec<String>, caps: &regex::Captures, skip: &frames::Skip) {
    for g in caps.iter().skip(1).flatten() {
        if skip.is_match(g.as_str()) {
            continue;
        }
        frames.push(frames::demangle(frames::strip_syscall_prefixes(g.as_str())));
        return;
    }
}

/// A timestamp inside a title means two lines ran into each other.
static CORRUPTED_TITLE: LazyLock<Regex> = LazyLock::new(|| re(r"\[ *[0-9]+\.[0-9]+\]"));

/// Whether a report that was parsed cleanly still looks mangled: a title
/// with a timestamp inside, no stack trace where one is expected, a stack
/// header with no frame after it.
fn looks_corrupted(title: &str, report: &str, format: Option<&Format>) -> bool {
    if CORRUPTED_TITLE.is_match(title) {
        return true;
    }
    let Some(format) = format else { return false };
    if format.no_stack_trace {
        return false;
    }
    let mut has_stack = false;
    for key in frames::STACK_STARTS.iter() {
        let Some(m) = key.find(report) else { continue };
        let after: Vec<&str> = report[m.start()..].split('\n').collect();
        if after.len() < 4 {
            return true;
        }
        let mut bad = true;
        for ln in after.iter().skip(1).take(15) {
            if frames::starts_stack(ln) {
                break;
            }
            if ln.contains("(stack is not available)") || frames::FRAME_RES.iter().any(|r| r.is_match(ln)) {
                has_stack = true;
                bad = false;
                break;
            }
        }
        if bad && key.as_str() != frames::RISCV_STACK_START {
            return true;
        }
    }
    !has_stack
}

/// What varies between runs of the same bug, replaced as syzkaller does.
static DYNAMIC: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    vec![
        (re(r"syz-executor\.?[0-9]+((/|:)[0-9]+)?"), "syz-executor"),
        (re(r"syzkaller[0-9]+((/|:)[0-9]+)?"), "syzkaller"),
        (re(r"([^a-zA-Z0-9])(?:0x)?[0-9a-f]{6,}"), "${1}ADDR"),
        (re(r"([0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3})"), "IP"),
        (re(r"(\.\w+)(:[0-9]+)+"), "${1}:LINE"),
        (re(r"([a-zA-Z][a-zA-Z0-9_.]+)\+0x[0-9a-z]+/0x[0-9a-z]+"), "${1}"),
        (re(r"CPU#[0-9]+"), "CPU"),
        (re(r"(\W)(\d+)(\W|$)"), "${1}NUM${3}"),
        // Digits in a name stay (`cfg80211`), but not seven or more.
        (re(r"[0-9]{7,}"), "NUM"),
    ]
});

fn replace_dynamic(title: &str) -> String {
    let mut s = title.to_string();
    for (pattern, with) in DYNAMIC.iter() {
        // Matches may overlap ("0,1,2"): repeat until nothing changes (each
        // pass replaces at least one match, so this ends).
        for _ in 0..64 {
            let next = pattern.replace_all(&s, *with).into_owned();
            if next == s {
                break;
            }
            s = next;
        }
    }
    s
}

/// Printable ASCII only, single spaces, at most 120 bytes (mangled lines
/// can be very long).
fn sanitize(title: &str) -> String {
    const MAX: usize = 120;
    let mut out = String::with_capacity(title.len().min(MAX));
    let mut prev = b' ';
    for &b in title.as_bytes().iter().take(MAX) {
        let c = if b == b'\t' { b' ' } else { b };
        if !(0x20..0x7f).contains(&c) || (c == b' ' && prev == b' ') {
            continue;
        }
        out.push(c as char);
        prev = c;
    }
    out.trim().to_string()
}

#[cfg(test)]
mod tests;
