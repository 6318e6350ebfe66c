//! Recognizers for single log lines. Each returns `None` for any line that
//! is not of its form, so the parser can try them in turn.

use super::model::{Direction, Durations, RunOutcome, Verdict};

// The words both the reader and the writer (`write.rs`) use.
pub const TESTING_COMMIT: &str = "testing commit ";
pub const KERNEL_SIGNATURE: &str = "kernel signature: ";
pub const RUN: &str = "run #";
pub const GIT_BISECT: &str = "# git bisect ";
pub const PARENT_COMMIT: &str = "parent commit ";
pub const NOT_TESTED: &str = " wasn't tested";
pub const TESTING_RELEASE: &str = "testing release ";
pub const FIRST_BAD: &str = " is the first bad commit";
pub const CULPRIT_SIGNATURE: &str = "culprit signature: ";
pub const PARENT_SIGNATURE: &str = "parent  signature: ";
pub const REVISIONS_TESTED: &str = "revisions tested: ";
pub const FIRST_BAD_COMMIT: &str = "first bad commit: ";
/// A fix bisection's trailer and inconclusive ending: syzkaller drives git
/// with the crashing (old) side as "good", so the answer is the first
/// commit past the last good one, "the first good commit".
pub const FIRST_GOOD_COMMIT: &str = "first good commit: ";
pub const INCONCLUSIVE: &str = "bisection is inconclusive, the first bad commit could be any of:";
pub const INCONCLUSIVE_FIX: &str = "bisection is inconclusive, the first good commit could be any of:";
pub const ERROR: &str = "error: ";
const OK: &str = "OK";
const CRASHED: &str = "crashed: ";
const BOOT_FAILED: &str = "boot failed: ";
const TEST_FAILED: &str = "basic kernel testing failed: ";
const FAILED: &str = "failed: ";

/// A full 40-hex git commit hash.
pub fn full_hash(s: &str) -> Option<&str> {
    (s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
}

/// The header line of a log: `bisecting cause commit starting from H`, or
/// for a fix bisection, as syzkaller writes it, `bisecting fixing commit since H`.
pub fn bisecting_header(direction: Direction, commit: &str) -> String {
    match direction {
        Direction::Fix => format!("bisecting fixing commit since {commit}"),
        Direction::Cause | Direction::Unknown => format!("bisecting cause commit starting from {commit}"),
    }
}

/// `bisecting cause commit starting from H` / `bisecting fixing commit since H`
/// (either wording with either kind).
pub fn bisecting_line(line: &str) -> Option<(Direction, &str)> {
    let rest = line.strip_prefix("bisecting ")?;
    let (kind, rest) = rest
        .split_once(" commit starting from ")
        .or_else(|| rest.split_once(" commit since "))?;
    let dir = match kind {
        "cause" => Direction::Cause,
        "fixing" | "fix" => Direction::Fix,
        _ => Direction::Unknown,
    };
    Some((dir, rest.trim()))
}

/// `testing commit H`, `testing commit H gcc`, `testing commit H with COMPILER`.
/// Returns the compiler only when the line spells it out.
pub fn testing_commit_line(line: &str) -> Option<(&str, Option<&str>)> {
    let rest = line.strip_prefix(TESTING_COMMIT)?;
    let (hash, tail) = rest.split_once(' ').unwrap_or((rest, ""));
    let hash = full_hash(hash)?;
    let compiler = tail.trim().strip_prefix("with ").map(str::trim);
    Some((hash, compiler))
}

/// `run #N: OUTCOME`.
pub fn run_line(line: &str) -> Option<(u32, RunOutcome)> {
    let rest = line.strip_prefix(RUN)?;
    let (n, outcome) = rest.split_once(": ")?;
    Some((n.parse().ok()?, parse_outcome(outcome)))
}

/// The outcome after `run #N: ` or `all runs: `.
pub fn parse_outcome(s: &str) -> RunOutcome {
    let s = s.trim_end();
    if s == OK {
        return RunOutcome::Ok;
    }
    let prefixed = |p: &str| s.strip_prefix(p).map(str::to_string);
    if let Some(t) = prefixed(CRASHED) {
        RunOutcome::Crashed(t)
    } else if let Some(t) = prefixed(BOOT_FAILED) {
        RunOutcome::BootFailed(t)
    } else if let Some(t) = prefixed(TEST_FAILED) {
        RunOutcome::TestFailed(t)
    } else if let Some(t) = prefixed(FAILED) {
        RunOutcome::Infra(t)
    } else {
        RunOutcome::Infra(s.to_string())
    }
}

/// A run's outcome as `run #N: ` shows it: what [`parse_outcome`] reads.
pub fn format_outcome(o: &RunOutcome) -> String {
    match o {
        RunOutcome::Ok => OK.to_string(),
        RunOutcome::Crashed(t) => format!("{CRASHED}{t}"),
        RunOutcome::BootFailed(t) => format!("{BOOT_FAILED}{t}"),
        RunOutcome::TestFailed(t) => format!("{TEST_FAILED}{t}"),
        RunOutcome::Infra(t) => format!("{FAILED}{t}"),
    }
}

/// `# git bisect good|bad|skip H`.
pub fn verdict_line(line: &str) -> Option<(Verdict, &str)> {
    let rest = line.strip_prefix(GIT_BISECT)?;
    let (word, hash) = rest.split_once(' ')?;
    let v = [Verdict::Good, Verdict::Bad, Verdict::Skip]
        .into_iter()
        .find(|v| v.as_str() == word)?;
    Some((v, full_hash(hash.trim())?))
}

/// git bisect's `Bisecting: N revisions left to test after this (roughly S steps)`:
/// N, the commits that will still be candidates after the next test.
pub fn revisions_left_line(line: &str) -> Option<u32> {
    let rest = line.strip_prefix("Bisecting: ")?;
    let (n, rest) = rest.split_once(' ')?;
    rest.starts_with("revision").then_some(())?;
    n.parse().ok()
}

/// git bisect's `[H] subject` line announcing the next commit.
pub fn bisect_pick_line(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('[')?;
    let (hash, title) = rest.split_once("] ")?;
    Some((full_hash(hash)?, title))
}

/// `revisions tested: N, total time: D (build: D, test: D)`.
pub fn revisions_line(line: &str) -> Option<(u32, Option<Durations>)> {
    let rest = line.strip_prefix(REVISIONS_TESTED)?;
    let (count, rest) = rest.split_once(',').unwrap_or((rest, ""));
    let count = count.trim().parse().ok()?;
    let durations = (|| {
        let rest = rest.trim().strip_prefix("total time: ")?;
        let (total, rest) = rest.split_once(" (build: ")?;
        let (build, rest) = rest.split_once(", test: ")?;
        let test = rest.strip_suffix(')')?;
        Some(Durations {
            total_seconds: go_duration(total)?,
            build_seconds: go_duration(build)?,
            test_seconds: go_duration(test)?,
        })
    })();
    Some((count, durations))
}

/// A Go `time.Duration` string, as syzkaller prints durations: what
/// [`go_duration`] reads.
pub fn go_duration_text(seconds: f64) -> String {
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

/// Seconds in a Go `time.Duration` string such as `3h18m19.106s` or `0s`.
pub fn go_duration(s: &str) -> Option<f64> {
    let s = s.trim();
    if s == "0" || s == "0s" {
        return Some(0.0);
    }
    let mut total = 0.0;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Go's `%q` list: `["a" "b"]`.
pub fn quoted_list(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split_whitespace()
        .map(|item| item.trim_matches('"').to_string())
        .filter(|item| !item.is_empty())
        .collect()
}

/// ` path/to/file.c | 8 +++--` → the path.
pub fn diffstat_file(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix(' ')?;
    let (path, change) = rest.split_once(" | ")?;
    let change = change.trim();
    let looks_like_count = change.starts_with(|c: char| c.is_ascii_digit()) || change.starts_with("Bin");
    looks_like_count.then(|| (path.trim(), change))
}

/// ` 2 files changed, 7 insertions(+), 3 deletions(-)`.
pub fn is_diffstat_summary(line: &str) -> bool {
    let t = line.trim();
    t.contains(" changed") && (t.contains(" file changed") || t.contains(" files changed"))
}

/// Lines the main state machine acts on: they end a run's continuation.
pub fn is_step_level(line: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "run #",
        "all runs: ",
        "# git bisect ",
        "testing commit ",
        "testing release ",
        "kernel signature: ",
        "compiler: ",
        "Bisecting: ",
        "revisions tested: ",
        "culprit signature: ",
        "parent  signature: ",
        "parent commit ",
        "bisection is inconclusive",
        "the crash already happened",
        "reproducer seems to be flaky",
        "Reproducer flagged being flaky",
        "first bad commit: ",
        "first good commit: ",
        "error: ",
    ];
    PREFIXES.iter().any(|p| line.starts_with(p)) || bisect_pick_line(line).is_some()
}

/// Output of a failed kernel build: compiler diagnostics or the make failure.
pub fn is_build_error(line: &str) -> bool {
    line.contains(": error: ")
        || line.starts_with("failed to run [\"make\"")
        || line.starts_with("make: *** ")
        || line.contains("undefined reference to")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("0s"), Some(0.0));
        assert_eq!(go_duration("30.5s"), Some(30.5));
        let d = go_duration("3h18m19.106356885s").unwrap();
        assert!((d - (3.0 * 3600.0 + 18.0 * 60.0 + 19.106356885)).abs() < 1e-6);
        assert_eq!(go_duration("1h0m0s"), Some(3600.0));
        assert_eq!(go_duration("garbage"), None);
    }

    #[test]
    fn testing_commit_forms() {
        let h = "434ed21389948a45c238f63258bd5aae4237e20b";
        assert_eq!(testing_commit_line(&format!("testing commit {h}")), Some((h, None)));
        assert_eq!(testing_commit_line(&format!("testing commit {h} gcc")), Some((h, None)));
        assert_eq!(
            testing_commit_line(&format!("testing commit {h} with gcc (GCC) 8.1.0")),
            Some((h, Some("gcc (GCC) 8.1.0")))
        );
        assert_eq!(testing_commit_line("testing commit v5.15"), None);
    }

    #[test]
    fn outcomes() {
        assert_eq!(parse_outcome("OK"), RunOutcome::Ok);
        assert_eq!(
            parse_outcome("crashed: WARNING in x"),
            RunOutcome::Crashed("WARNING in x".into())
        );
        assert_eq!(
            parse_outcome("boot failed: can't ssh"),
            RunOutcome::BootFailed("can't ssh".into())
        );
        assert!(matches!(
            parse_outcome("basic kernel testing failed: x"),
            RunOutcome::TestFailed(_)
        ));
        assert!(matches!(
            parse_outcome("failed: failed to run binary"),
            RunOutcome::Infra(_)
        ));
    }

    #[test]
    fn diffstat_lines() {
        assert_eq!(
            diffstat_file(" net/ethtool/netlink.c | 8 +++++---"),
            Some(("net/ethtool/netlink.c", "8 +++++---"))
        );
        assert!(is_diffstat_summary(" 2 files changed, 7 insertions(+), 3 deletions(-)"));
        assert!(is_diffstat_summary(" 1 file changed, 1 insertion(+)"));
        assert_eq!(diffstat_file("    a | b"), None);
    }

    #[test]
    fn recipients() {
        assert_eq!(quoted_list(r#"["a@b" "c@d"]"#), vec!["a@b", "c@d"]);
        assert!(quoted_list("[]").is_empty());
    }
}
