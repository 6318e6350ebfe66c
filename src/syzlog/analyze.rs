//! `kcache log analyze`: what a signature cache would have saved in one
//! bisection, and whether its result can be trusted.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::{Ending, Log, Purpose, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Reject,
    Warning,
}

/// A rule that fired, by its stable name.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResultVerdict {
    /// A culprit with no red flag.
    Ok,
    /// A culprit with warnings a developer should weigh.
    Warn,
    /// A culprit that cannot be right.
    Reject,
    /// The bisection named no single culprit.
    NoCulprit,
    /// The log stops before any result: truncated, or the bisection was aborted.
    Truncated,
}

/// A test a signature cache would have skipped.
#[derive(Debug, Clone, Serialize)]
pub struct RepeatedTest {
    pub line: usize,
    pub commit: String,
    pub signature: String,
    /// The earlier commit whose kernel had the same signature.
    pub same_as: String,
}

/// One signature that got contradictory verdicts.
#[derive(Debug, Clone, Serialize)]
pub struct Inconsistency {
    pub signature: String,
    pub good: Vec<String>,
    pub bad: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub steps: usize,
    pub tested_steps: usize,
    pub runs: usize,
    pub revisions_tested: Option<u32>,
    /// The steps `revisions tested` counts under the current rule.
    pub counted_steps: usize,
    pub build_seconds: Option<f64>,
    pub test_seconds: Option<f64>,
    pub culprit: Option<String>,
    pub repeated_tests: Vec<RepeatedTest>,
    /// Estimated from the log's own average test time per tested step.
    pub repeated_test_seconds: f64,
    pub inconsistencies: Vec<Inconsistency>,
    pub verdict: ResultVerdict,
    pub findings: Vec<Finding>,
    /// How strongly the log's own runs support its culprit: filled by a
    /// judge outside this module (`kcache::judge`), absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confidence: Option<Confidence>,
}

/// The rule name of a judge's finding that the culprit's own evidence is weak.
pub const WEAK_EVIDENCE: &str = "weak-evidence";

/// How strongly a log's own runs support its named culprit.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Confidence {
    /// The chance the named culprit is right (the first bad commit of the
    /// bug the bisection started from), calibrated: the runs' posterior
    /// combined with what else the log shows (the judge's model of errors
    /// the runs cannot show, fitted on labelled logs). Of results given
    /// about 0.8, about 8 in 10 are right. `None` when the evidence cannot
    /// decide (`undecided` says why).
    pub probability: Option<f64>,
    /// The same chance given only the log's runs (the search's model): the
    /// input of `probability`, overconfident on its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runs_probability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undecided: Option<String>,
    /// The bug's title the runs were classified against, normalized.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The chance that no commit of the tested line brought this bug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_culprit: Option<f64>,
    /// Every good or bad verdict on the way, with the chance it was wrong.
    pub verdicts: Vec<VerdictDoubt>,
    /// The verdict most likely wrong (a copy of one of `verdicts`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weakest: Option<VerdictDoubt>,
}

/// One step's verdict and the chance it was wrong.
#[derive(Debug, Clone, Serialize)]
pub struct VerdictDoubt {
    pub line: usize,
    pub commit: String,
    pub verdict: Verdict,
    /// The step's own runs, classified against the bug's title.
    pub runs: RunCounts,
    pub wrong: f64,
}

/// Runs by what they say about the target bug.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RunCounts {
    /// Crashed with the bug's title.
    pub matched: u32,
    /// Crashed with another title.
    pub other: u32,
    pub ok: u32,
    /// Boot failures, infrastructure trouble: say nothing.
    pub no_info: u32,
}

impl std::fmt::Display for RunCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} matching, {} other crash(es), {} ok, {} without information",
            self.matched, self.other, self.ok, self.no_info
        )
    }
}

impl Analysis {
    /// Adds a finding from outside the rules here (a judge's), keeping the
    /// verdict what the findings say.
    pub fn add_finding(&mut self, finding: Finding) {
        self.findings.push(finding);
        if self.verdict == ResultVerdict::Ok {
            self.verdict = ResultVerdict::Warn;
        }
    }
}

/// Analyzes one parsed log.
/// One line of `log analyze --json`: a file and its analysis.
#[derive(Debug, Serialize)]
pub struct FileAnalysis<'a> {
    pub path: &'a std::path::Path,
    pub analysis: &'a Analysis,
}

pub fn analyze(log: &Log) -> Analysis {
    let tested_steps = log.steps.iter().filter(|s| s.tested()).count();
    let repeated_tests = repeated_tests(log);
    let avg_test = log
        .durations
        .as_ref()
        .filter(|_| tested_steps > 0)
        .map(|d| d.test_seconds / tested_steps as f64)
        .unwrap_or(0.0);
    let inconsistencies = inconsistencies(log);
    let findings = findings(log, &inconsistencies);
    let verdict = if matches!(log.ending, Ending::Unfinished) {
        ResultVerdict::Truncated
    } else if log.culprit().is_none() {
        ResultVerdict::NoCulprit
    } else if findings.iter().any(|f| f.severity == Severity::Reject) {
        ResultVerdict::Reject
    } else if findings.is_empty() {
        ResultVerdict::Ok
    } else {
        ResultVerdict::Warn
    };
    Analysis {
        steps: log.steps.len(),
        tested_steps,
        runs: log.steps.iter().map(|s| s.run_count()).sum(),
        revisions_tested: log.revisions_tested,
        counted_steps: log.counted_steps(),
        build_seconds: log.durations.as_ref().map(|d| d.build_seconds),
        test_seconds: log.durations.as_ref().map(|d| d.test_seconds),
        culprit: log.culprit().map(str::to_string),
        repeated_test_seconds: avg_test * repeated_tests.len() as f64,
        repeated_tests,
        inconsistencies,
        verdict,
        findings,
        confidence: None,
    }
}

/// Tested steps whose signature an earlier tested step of the log had.
pub(super) fn repeated_tests(log: &Log) -> Vec<RepeatedTest> {
    let mut first_commit: HashMap<&str, &str> = HashMap::new();
    let mut out = Vec::new();
    for step in log.steps.iter().filter(|s| s.tested()) {
        let Some(sig) = step.signature.as_deref() else { continue };
        match first_commit.get(sig) {
            Some(earlier) => out.push(RepeatedTest {
                line: step.line,
                commit: step.commit.clone(),
                signature: sig.to_string(),
                same_as: earlier.to_string(),
            }),
            None => {
                first_commit.insert(sig, &step.commit);
            }
        }
    }
    out
}

fn inconsistencies(log: &Log) -> Vec<Inconsistency> {
    let mut by_sig: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for step in &log.steps {
        let (Some(sig), Some(v)) = (step.signature.as_deref(), Log::effective_verdict(step)) else {
            continue;
        };
        let entry = by_sig.entry(sig).or_default();
        match v {
            Verdict::Good => entry.0.push(step.commit.clone()),
            Verdict::Bad => entry.1.push(step.commit.clone()),
            Verdict::Skip => {}
        }
    }
    by_sig
        .into_iter()
        .filter(|(_, (g, b))| !g.is_empty() && !b.is_empty())
        .map(|(sig, (good, bad))| Inconsistency {
            signature: sig.to_string(),
            good,
            bad,
        })
        .collect()
}

fn findings(log: &Log, inconsistencies: &[Inconsistency]) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |rule, severity, message: String| {
        out.push(Finding {
            rule,
            severity,
            message,
        })
    };
    if let (Some(c), Some(p)) = (&log.culprit_signature, &log.parent_signature) {
        if c == p && log.culprit().is_some() {
            add(
                "identical-culprit-parent-signature",
                Severity::Reject,
                format!(
                    "culprit and parent have the same kernel signature {c}: the commit cannot have changed the kernel"
                ),
            );
        }
    }
    if !inconsistencies.is_empty() {
        add(
            "signature-judged-good-and-bad",
            Severity::Warning,
            format!(
                "{} kernel signature(s) judged both good and bad: the reproducer is flaky on identical kernels",
                inconsistencies.len()
            ),
        );
    }
    if log.flaky {
        add(
            "flaky-reproducer",
            Severity::Warning,
            "syzbot flagged the reproducer as flaky".into(),
        );
    }
    let Ending::FirstBad(culprit) = &log.ending else {
        return out;
    };
    let title = log
        .trailer
        .as_ref()
        .and_then(|t| t.first_bad_title.clone())
        .or_else(|| culprit.message.first().cloned())
        .unwrap_or_default();
    if !culprit.merge_parents.is_empty() || title.starts_with("Merge ") {
        add(
            "culprit-is-merge",
            Severity::Warning,
            format!("the culprit is a merge: {title}"),
        );
    }
    if is_release_title(&title) {
        add(
            "culprit-is-release",
            Severity::Warning,
            format!("the culprit is a release commit: {title}"),
        );
    }
    if let Some(area) = non_kernel_area(&culprit.files) {
        add(
            "culprit-outside-kernel-code",
            Severity::Warning,
            format!("every file the culprit touches is {area}"),
        );
    }
    if let Some(msg) = crash_changed(log, &culprit.commit) {
        add("crash-title-changed", Severity::Warning, msg);
    }
    out
}

fn is_release_title(title: &str) -> bool {
    title
        .strip_prefix("Linux ")
        .is_some_and(|v| v.starts_with(|c: char| c.is_ascii_digit()) && !v.contains(' '))
}

/// Names the area when every diffstat path is outside the built kernel.
fn non_kernel_area(files: &[String]) -> Option<String> {
    let areas: Vec<&str> = files.iter().map(|f| area_of(f)).collect();
    let first = *areas.first()?;
    if first == "kernel code" {
        return None;
    }
    if areas.iter().all(|a| *a == first) {
        return Some(first.to_string());
    }
    areas
        .iter()
        .all(|a| *a != "kernel code")
        .then(|| "documentation, tools, selftests or another architecture".to_string())
}

fn area_of(path: &str) -> &'static str {
    if path.starts_with("Documentation/") || path == "MAINTAINERS" || path == ".mailmap" || path == "CREDITS" {
        "documentation"
    } else if path.starts_with("tools/testing/selftests/") {
        "selftests"
    } else if path.starts_with("tools/") || path.starts_with("samples/") {
        "tools"
    } else if let Some(rest) = path.strip_prefix("arch/") {
        // syzbot's cause bisections build x86 kernels.
        if rest.starts_with("x86/") || rest.starts_with("x86_64/") {
            "kernel code"
        } else {
            "another architecture"
        }
    } else {
        "kernel code"
    }
}

/// The culprit step crashed, but never with the original title.
fn crash_changed(log: &Log, culprit: &str) -> Option<String> {
    let original = log.original_crash()?;
    let step = log
        .steps
        .iter()
        .rev()
        .find(|s| s.commit == culprit && s.purpose != Purpose::CulpritParent)?;
    let titles = step.crash_titles();
    if titles.is_empty() || titles.contains(&original) {
        return None;
    }
    Some(format!(
        "the culprit crashed with \"{}\", not the original \"{original}\"",
        titles[0]
    ))
}
