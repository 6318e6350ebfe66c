//! Crash identity: which bug a test run hit, against the bisection's target.
//!
//! A run keeps its raw title forever; what it *means* is decided when a
//! verdict is needed, against the target titles of that bisection, so
//! evidence pooled by a bisection with another target is re-classified,
//! never thrown away.
//!
//! Invariant: pure functions of titles and outcomes; knows nothing of the
//! cache, git or the search.

use serde::{Deserialize, Serialize};

use crate::store::{Outcome, RunRecord};
use crate::title::is_suppressed;

/// The titles among these that are suppressed (not kernel bugs): a
/// target given by a user must not name one.
pub fn suppressed_among<S: AsRef<str>>(titles: &[S]) -> Vec<&str> {
    titles.iter().map(|t| t.as_ref()).filter(|t| is_suppressed(t)).collect()
}

/// What a run says about the target bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunClass {
    /// A crash whose title matches a target title.
    Match,
    /// A crash with another title: another bug; does not make a kernel bad.
    Other,
    /// No crash.
    Ok,
    /// Infrastructure trouble, a boot failure, cannot test: says nothing.
    NoInfo,
}

/// Normalizes a crash title the way syzkaller's report titles are made
/// comparable: numbers that vary between runs and builds become
/// placeholders, inlining and compiler-clone decorations go, and the
/// duplicate counter syzbot appends (`WARNING in f (2)`) is dropped. What
/// distinguishes bugs stays: the bug type, the access (`Read`/`Write`) and
/// the function.
///
/// First the title is put in syzkaller's canonical form
/// ([`crate::title::canonical`]: executor ids, addresses, line numbers),
/// so a title kcache reads from a console ([`crate::title::title`]), one a
/// test printed raw (`crash: ...syz-executor.3...`) and one from a syzbot
/// log name the same bug alike. Then:
///
/// - `0x...` hex numbers become `ADDR`; numbers standing alone (not part of
///   an identifier like `put_timespec64`) become `NUM`; a number after a
///   source file's `:` becomes `LINE` (`kernel BUG at fs/inode.c:LINE!`);
/// - ` [inline]`, ` (inlined)` / `inlined` words go; `.isra.N`,
///   `.constprop.N`, `.part.N`, `.cold` suffixes of function names go;
/// - a trailing ` (N)` goes; runs of white space become one space.
pub fn normalize_title(title: &str) -> String {
    let title = crate::title::canonical(title);
    let mut words: Vec<String> = Vec::new();
    for word in title.split_whitespace() {
        if word == "[inline]" || word == "(inlined)" || word == "inlined" {
            continue;
        }
        words.push(normalize_word(word));
    }
    if let Some(last) = words.last() {
        let counter = last.strip_prefix('(').and_then(|w| w.strip_suffix(')'));
        if counter.is_some_and(|c| c == "NUM") && words.len() > 1 {
            words.pop();
        }
    }
    words.join(" ")
}

fn normalize_word(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_ident = i > 0 && (chars[i - 1].is_ascii_alphanumeric() || chars[i - 1] == '_');
        if c.is_ascii_digit() && !prev_ident {
            let start = i;
            let hex = c == '0' && chars.get(i + 1).is_some_and(|&x| x == 'x' || x == 'X');
            if hex {
                i += 2;
                while i < chars.len() && chars[i].is_ascii_hexdigit() {
                    i += 1;
                }
            } else {
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            // A number glued to letters after it is part of an identifier.
            if i < chars.len() && (chars[i].is_ascii_alphabetic() || chars[i] == '_') && !hex {
                out.extend(&chars[start..i]);
                continue;
            }
            let after_file = start > 0 && chars[start - 1] == ':' && out.contains('.');
            out.push_str(if hex {
                "ADDR"
            } else if after_file {
                "LINE"
            } else {
                "NUM"
            });
            continue;
        }
        out.push(c);
        i += 1;
    }
    strip_clone_suffix(&out)
}

/// `f.isra.0` -> `f`, `f.constprop.3+0x1` -> `f+ADDR` is handled by the
/// caller's number pass; here only the compiler-clone suffixes go.
fn strip_clone_suffix(word: &str) -> String {
    let mut w = word.to_string();
    for suffix in [
        ".isra.NUM",
        ".constprop.NUM",
        ".part.NUM",
        ".cold",
        ".isra",
        ".constprop",
        ".part",
    ] {
        while let Some(pos) = w.find(suffix) {
            w.replace_range(pos..pos + suffix.len(), "");
        }
    }
    w
}

/// The titles a bisection is after, normalized. A suppressed title (a
/// crash that is not the kernel's, [`crate::title::is_suppressed`]) is
/// never one of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub titles: Vec<String>,
}

impl Target {
    /// The target of these titles, less the suppressed ones (a caller that
    /// takes titles from a user rejects those first: [`suppressed_among`]).
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(titles: I) -> Target {
        let mut t: Vec<String> = titles
            .into_iter()
            .filter(|s| !is_suppressed(s.as_ref()))
            .map(|s| normalize_title(s.as_ref()))
            .collect();
        t.sort();
        t.dedup();
        Target { titles: t }
    }

    pub fn is_empty(&self) -> bool {
        self.titles.is_empty()
    }

    pub fn matches(&self, title: &str) -> bool {
        if is_suppressed(title) {
            return false;
        }
        let n = normalize_title(title);
        self.titles.contains(&n)
    }

    /// What one run says about this target. A crash without a title
    /// matches only an empty target (nothing to tell bugs apart by). A
    /// suppressed crash (not the kernel's: a Go program on the machine
    /// died) says nothing about the kernel, whatever the target.
    pub fn classify(&self, outcome: Outcome, title: Option<&str>) -> RunClass {
        match outcome {
            Outcome::Ok => RunClass::Ok,
            Outcome::Infra | Outcome::BootFailed | Outcome::Skip => RunClass::NoInfo,
            Outcome::Crash => self.classify_crash(title),
        }
    }

    /// What one crash says about this target: the crash arm of
    /// [`Target::classify`], for callers that know the run crashed and
    /// hold no run record (the search model's simulator). A suppressed
    /// crash (not a kernel bug) tells nothing.
    pub fn classify_crash(&self, title: Option<&str>) -> RunClass {
        match title {
            Some(t) if is_suppressed(t) => RunClass::NoInfo,
            _ if self.is_empty() => RunClass::Match,
            Some(t) if self.matches(t) => RunClass::Match,
            _ => RunClass::Other,
        }
    }

    /// The target a set of crashes points at: every title that makes up at
    /// least `share` of the crashes and was seen at least twice (or the
    /// only crash seen, when there is one). An unrelated crash seen once
    /// among many does not become a target. `None` when no title dominates.
    /// Suppressed crashes are not counted: they are never the target and do
    /// not dilute the others' shares.
    pub fn learn(titles: &[&str], share: f64) -> Option<Target> {
        let titles: Vec<&str> = titles.iter().copied().filter(|t| !is_suppressed(t)).collect();
        if titles.is_empty() {
            return None;
        }
        let mut counts: Vec<(String, usize)> = Vec::new();
        for t in &titles {
            let n = normalize_title(t);
            match counts.iter_mut().find(|(k, _)| *k == n) {
                Some((_, c)) => *c += 1,
                None => counts.push((n, 1)),
            }
        }
        let total = titles.len() as f64;
        let dominant: Vec<String> = counts
            .iter()
            .filter(|(_, c)| (*c as f64) >= share * total && (*c >= 2 || titles.len() == 1))
            .map(|(t, _)| t.clone())
            .collect();
        (!dominant.is_empty()).then_some(Target { titles: dominant })
    }
}

/// At most this many runs to show a crash is gone, whatever the rate.
pub const MAX_RUNS: u32 = 100;
/// At least this many (KernelCI's revert check ran 3).
pub const MIN_RUNS: u32 = 3;

/// Runs that would show a crash of rate `p` with >= 99% probability:
/// `ceil(ln(0.01) / ln(1 - p))`, within [`MIN_RUNS`]..=[`MAX_RUNS`]; an
/// unknown rate takes `fallback`.
pub fn runs_to_see(p: Option<f64>, fallback: u32) -> u32 {
    let n = match p {
        Some(p) if p >= 1.0 => 1.0,
        Some(p) if p > 0.0 => (0.01f64.ln() / (1.0 - p).ln()).ceil(),
        _ => fallback as f64,
    };
    (n as u32).clamp(MIN_RUNS, MAX_RUNS)
}

/// The low end of the 95% Wilson score interval of a rate seen `hits`
/// times in `n` tries (`None` when it was never seen): a rate measured on
/// few runs may be much lower than its point estimate, and a run count
/// chosen for the low end still shows the crash.
pub fn rate_low(hits: u32, n: u32) -> Option<f64> {
    if hits == 0 || n == 0 {
        return None;
    }
    const Z: f64 = 1.96;
    let (h, n) = (hits as f64, n as f64);
    let p = h / n;
    let z2 = Z * Z;
    let centre = p + z2 / (2.0 * n);
    let spread = Z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - spread) / (1.0 + z2 / n)).clamp(0.0, 1.0))
}

/// Counts of run classes on one kernel under one target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    pub matched: u32,
    pub other: u32,
    pub ok: u32,
    pub no_info: u32,
    /// Titles of the `other` crashes, in order of first appearance.
    #[serde(default)]
    pub other_titles: Vec<String>,
}

impl ClassCounts {
    pub fn of(target: &Target, runs: &[RunRecord]) -> ClassCounts {
        let mut c = ClassCounts::default();
        for r in runs {
            let class = target.classify(r.outcome, r.title.as_deref());
            c.add(class);
            if class == RunClass::Other {
                let t = r.title.clone().unwrap_or_else(|| "crash".into());
                if !c.other_titles.contains(&t) {
                    c.other_titles.push(t);
                }
            }
        }
        c
    }

    /// Counts one run of this class (its title, if any, is not kept).
    pub fn add(&mut self, class: RunClass) {
        match class {
            RunClass::Match => self.matched += 1,
            RunClass::Other => self.other += 1,
            RunClass::Ok => self.ok += 1,
            RunClass::NoInfo => self.no_info += 1,
        }
    }

    pub fn total(&self) -> u32 {
        self.matched + self.other + self.ok + self.no_info
    }

    /// `N match, N other, N ok, N no info[; other crashes: A | B]`.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} match, {} other, {} ok, {} no info",
            self.matched, self.other, self.ok, self.no_info
        );
        if !self.other_titles.is_empty() {
            s.push_str(&format!("; other crashes: {}", self.other_titles.join(" | ")));
        }
        s
    }

    /// Runs that say something about the target: a match or a clean run.
    /// A run that crashed with another bug may have hidden the target
    /// (the kernel died first), so it counts as neither.
    pub fn informative(&self) -> u32 {
        self.matched + self.ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_low_end_of_a_measured_rate() {
        assert_eq!(rate_low(0, 10), None);
        let low = rate_low(1, 2).unwrap();
        assert!((0.09..0.10).contains(&low), "{low}");
        let low = rate_low(70, 100).unwrap();
        assert!((0.60..0.61).contains(&low), "{low}");
        assert!(rate_low(3, 3).unwrap() < 1.0);
        // Few runs: many more runs to be sure than the point estimate says.
        assert!(runs_to_see(rate_low(1, 2), 10) > 4 * runs_to_see(Some(0.5), 10));
    }

    #[test]
    fn titles_normalize_like_syzkaller() {
        let cases = [
            // Real titles from ../shared/bisect-logs: identifiers keep their digits.
            (
                "INFO: rcu detected stall in sys_sendfile64",
                "INFO: rcu detected stall in sys_sendfile64",
            ),
            (
                "BUG: unable to handle kernel paging request in bpf_trace_run3",
                "BUG: unable to handle kernel paging request in bpf_trace_run3",
            ),
            ("WARNING in kvm_wait (2)", "WARNING in kvm_wait"),
            (
                "kernel BUG at fs/ext4/inode.c:1234!",
                "kernel BUG at fs/ext4/inode.c:LINE!",
            ),
            (
                "general protection fault in f2fs_commit_atomic_write",
                "general protection fault in f2fs_commit_atomic_write",
            ),
            (
                "KASAN: use-after-free Read in afs_manage_cell.isra.0",
                "KASAN: use-after-free Read in afs_manage_cell",
            ),
            ("WARNING in __queue_work [inline]", "WARNING in __queue_work"),
            (
                "BUG: Bad page state in process syz-executor.0  pfn:0x12345",
                "BUG: Bad page state in process syz-executor pfn:ADDR",
            ),
            (
                "unregister_netdevice: waiting for lo to become free. Usage count = 2",
                "unregister_netdevice: waiting for lo to become free. Usage count = NUM",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_title(raw), want, "{raw}");
        }
        // What tells bugs apart stays.
        assert_ne!(
            normalize_title("KASAN: use-after-free Read in f"),
            normalize_title("KASAN: use-after-free Write in f")
        );
        assert_ne!(normalize_title("WARNING in f"), normalize_title("WARNING in g"));
        assert_eq!(
            normalize_title("KASAN: slab-out-of-bounds Read in ath9k_hif_usb_rx_cb"),
            normalize_title("KASAN:  slab-out-of-bounds Read in ath9k_hif_usb_rx_cb (3)")
        );
    }

    #[test]
    fn classification_against_a_target() {
        let t = Target::new(["KASAN: use-after-free Read in link_path_walk"]);
        assert_eq!(
            t.classify(Outcome::Crash, Some("KASAN: use-after-free Read in link_path_walk (2)")),
            RunClass::Match
        );
        assert_eq!(t.classify(Outcome::Crash, Some("WARNING in kvm_wait")), RunClass::Other);
        assert_eq!(t.classify(Outcome::Crash, None), RunClass::Other);
        assert_eq!(t.classify(Outcome::Ok, None), RunClass::Ok);
        assert_eq!(t.classify(Outcome::Infra, None), RunClass::NoInfo);
        assert_eq!(t.classify(Outcome::BootFailed, Some("x")), RunClass::NoInfo);
        assert_eq!(Target::default().classify(Outcome::Crash, None), RunClass::Match);
    }

    #[test]
    fn a_suppressed_crash_is_never_the_target_and_says_nothing() {
        let go = crate::title::GO_RUNTIME_ERROR;
        let real = "KASAN: use-after-free Read in f";
        // Never learnt, however often it is seen, nor counted in the shares.
        assert!(Target::learn(&[go, go, go], 0.3).is_none());
        assert_eq!(Target::learn(&[go, go, go, real], 0.3), Some(Target::new([real])));
        // Never kept from given titles, never matched.
        assert_eq!(Target::new([go, real]), Target::new([real]));
        assert!(Target::new([go]).is_empty());
        assert!(!Target::new([real]).matches(go));
        assert_eq!(suppressed_among(&[real, go]), vec![go]);
        // A run that died of it says nothing about the kernel, whatever the
        // target (an empty one too, which takes any kernel crash).
        for t in [Target::new([real]), Target::default()] {
            assert_eq!(t.classify(Outcome::Crash, Some(go)), RunClass::NoInfo);
            assert_eq!(t.classify(Outcome::Crash, Some("go runtime error ")), RunClass::NoInfo);
        }
        assert_eq!(Target::default().classify(Outcome::Crash, Some(real)), RunClass::Match);
    }

    #[test]
    fn a_lone_unrelated_crash_does_not_become_the_target() {
        let real = "KASAN: use-after-free Read in f";
        let t = Target::learn(&[real, real, "WARNING in g", real, real], 0.3).unwrap();
        assert_eq!(t, Target::new([real]));
        // Two bugs, both frequent: both are the target.
        let t = Target::learn(&[real, "WARNING in g", real, "WARNING in g"], 0.3).unwrap();
        assert_eq!(t.titles.len(), 2);
        // One crash only: it is all there is.
        assert_eq!(
            Target::learn(&["WARNING in g"], 0.3).unwrap(),
            Target::new(["WARNING in g"])
        );
        // Nothing dominates: unclear, test more.
        assert!(Target::learn(&["a in f", "b in g", "c in h"], 0.3).is_none());
    }
}
