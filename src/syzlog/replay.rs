//! `kcache log replay`: a corpus of logs, in file-name order, as if one
//! shared signature cache had seen them all.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use super::analyze::{analyze, repeated_tests, Analysis, ResultVerdict, WEAK_EVIDENCE};
use super::{parse_file, Log};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Eras {
    /// Logs whose steps carry no kernel signature.
    pub no_signature: usize,
    /// Logs with 40-hex (SHA-1 era) signatures.
    pub hex40: usize,
    /// Logs with 64-hex (SHA-256) signatures.
    pub hex64: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplayReport {
    pub logs: usize,
    pub unreadable: Vec<String>,
    /// One line per log read lossily (binary bytes in console output).
    pub warnings: Vec<String>,
    /// Logs that stop before any result (truncated or aborted).
    pub truncated: Vec<String>,
    pub steps: usize,
    pub tested_steps: usize,
    pub reusable_builds: usize,
    pub reusable_tests: usize,
    pub reusable_build_hours: f64,
    pub reusable_test_hours: f64,
    pub total_build_hours: f64,
    pub total_test_hours: f64,
    pub rejected: Vec<String>,
    pub inconsistent: Vec<String>,
    pub eras: Eras,
    /// Named culprits judged by their logs' own evidence (when a judge ran).
    pub evidence: EvidenceSummary,
    /// The judge's probabilities and flags against labels (`--labels`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
}

/// What a labels file says of one log's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Correct,
    Incorrect,
    /// The bisection gave no result to judge (`no output`).
    NoOutput,
}

/// Labels by log name (the file name without `.txt`), as in the study's
/// `dev-labels.tsv`: a header line, then `name<TAB>result[<TAB>...]` with
/// result `correct`, `incorrect` or `no output`.
#[derive(Debug, Clone, Default)]
pub struct Labels(HashMap<String, Label>);

#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
    #[error("labels file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("labels file {path}, line {line}: {problem}")]
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
}

impl Labels {
    /// Reads a labels file (see [`Labels`]).
    pub fn read(path: &Path) -> Result<Labels, LabelsError> {
        let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Labels::parse(&text).map_err(|(line, problem)| LabelsError::Line {
            path: path.to_path_buf(),
            line,
            problem,
        })
    }

    /// Parses a labels file's text; errors name the 1-based line.
    fn parse(text: &str) -> Result<Labels, (usize, String)> {
        let mut out = HashMap::new();
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let mut fields = line.split('\t');
            let (name, result) = (fields.next().unwrap_or_default(), fields.next());
            let label = match result.map(str::trim) {
                Some("correct") => Label::Correct,
                Some("incorrect") => Label::Incorrect,
                Some("no output") => Label::NoOutput,
                Some(other) => {
                    return Err((
                        i + 1,
                        format!("result \"{other}\" is not correct, incorrect or no output"),
                    ))
                }
                None => return Err((i + 1, "expected a log name, a tab and a result".to_string())),
            };
            if out.insert(name.trim().to_string(), label).is_some() {
                return Err((i + 1, format!("{name} is labelled twice")));
            }
        }
        if out.is_empty() {
            return Err((1, "no labels after the header line".to_string()));
        }
        Ok(Labels(out))
    }

    /// The label of the log at `path` (by file name, `.txt` dropped).
    pub fn of(&self, path: &Path) -> Option<Label> {
        let name = path.file_name()?.to_string_lossy();
        let stem = name.strip_suffix(".txt").unwrap_or(&name);
        self.0.get(stem).copied()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Probability bins of the reliability table: tenths.
const BINS: usize = 10;

/// How well probabilities of "right" matched labelled results.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Calibration {
    /// Labelled `correct` or `incorrect` and given a probability.
    pub results: usize,
    pub right: usize,
    /// Labelled results without a probability: no culprit named, or the
    /// runs cannot decide.
    pub without_probability: usize,
    /// Mean squared error of the probabilities.
    pub brier: f64,
    /// The Brier score of always saying the share of right results here.
    pub base_rate_brier: f64,
    /// Per tenth of probability ([0, 0.1), ..., [0.9, 1]), non-empty ones.
    pub reliability: Vec<ReliabilityBin>,
    /// The flags (REJECT or `weak-evidence`) as a test of "this result is
    /// wrong", over every labelled result (those without a probability too).
    pub flags: FlagScore,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReliabilityBin {
    pub low: f64,
    pub high: f64,
    pub count: usize,
    pub mean_probability: f64,
    pub fraction_right: f64,
}

/// Flags against labels: flagged results, the wrong ones among them, and
/// all wrong results.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct FlagScore {
    pub flagged: usize,
    pub flagged_wrong: usize,
    pub wrong: usize,
}

impl FlagScore {
    pub fn add(&mut self, flagged: bool, wrong: bool) {
        self.flagged += usize::from(flagged);
        self.flagged_wrong += usize::from(flagged && wrong);
        self.wrong += usize::from(wrong);
    }

    /// 1 when nothing was flagged.
    pub fn precision(&self) -> f64 {
        match self.flagged {
            0 => 1.0,
            n => self.flagged_wrong as f64 / n as f64,
        }
    }

    pub fn recall(&self) -> f64 {
        self.flagged_wrong as f64 / self.wrong.max(1) as f64
    }
}

impl Calibration {
    /// Scores `(probability of right, right)` pairs; `flags` and
    /// `without_probability` come from the caller.
    pub fn of(scored: &[(f64, bool)], without_probability: usize, flags: FlagScore) -> Calibration {
        let n = scored.len().max(1) as f64;
        let right = scored.iter().filter(|(_, r)| *r).count();
        let base = right as f64 / n;
        let squared = |p: f64, r: bool| (p - f64::from(u8::from(r))).powi(2);
        let reliability = (0..BINS)
            .filter_map(|b| {
                let in_bin: Vec<&(f64, bool)> = scored.iter().filter(|(p, _)| bin_of(*p) == b).collect();
                let count = in_bin.len();
                (count > 0).then(|| ReliabilityBin {
                    low: b as f64 / BINS as f64,
                    high: (b + 1) as f64 / BINS as f64,
                    count,
                    mean_probability: in_bin.iter().map(|(p, _)| p).sum::<f64>() / count as f64,
                    fraction_right: in_bin.iter().filter(|(_, r)| *r).count() as f64 / count as f64,
                })
            })
            .collect();
        Calibration {
            results: scored.len(),
            right,
            without_probability,
            brier: scored.iter().map(|&(p, r)| squared(p, r)).sum::<f64>() / n,
            base_rate_brier: scored.iter().map(|&(_, r)| squared(base, r)).sum::<f64>() / n,
            reliability,
            flags,
        }
    }
}

/// The tenth a probability falls in (1 falls in the last).
fn bin_of(p: f64) -> usize {
    ((p * BINS as f64).floor() as usize).min(BINS - 1)
}

/// Over the logs that name a culprit: how many their own runs support.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EvidenceSummary {
    /// Culprits whose probability is at or above the judge's threshold.
    pub supported: usize,
    /// Culprits the evidence does not support (a `weak-evidence` finding).
    pub weak: Vec<String>,
    /// Culprits the evidence cannot decide (no crash title, too few runs).
    pub undecided: usize,
}

/// Every regular file under `dirs` (one level), sorted by file name.
pub fn corpus_files(dirs: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for dir in dirs {
        if dir.is_file() {
            files.push(dir.clone());
            continue;
        }
        let named = |e: std::io::Error| std::io::Error::new(e.kind(), format!("log directory {}: {e}", dir.display()));
        for entry in std::fs::read_dir(dir).map_err(named)? {
            let path = entry.map_err(named)?.path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()).then(a.cmp(b)));
    Ok(files)
}

/// Replays `files` in the given order with this module's own analysis.
pub fn replay(files: &[PathBuf]) -> ReplayReport {
    replay_with(files, analyze)
}

/// Replays `files` with `analyze`, then scores its probabilities and flags
/// against `labels` (logs without a `correct` or `incorrect` label are
/// replayed but not scored).
pub fn replay_labelled<F>(files: &[PathBuf], labels: &Labels, analyze: F) -> ReplayReport
where
    F: Fn(&Log) -> Analysis + Sync,
{
    let mut scored = Vec::new();
    let mut undecided = 0;
    let mut flags = FlagScore::default();
    let mut report = replay_each(files, analyze, |path, analysis| {
        let right = match labels.of(path) {
            Some(Label::Correct) => true,
            Some(Label::Incorrect) => false,
            Some(Label::NoOutput) | None => return,
        };
        flags.add(flagged(analysis), !right);
        match analysis.confidence.as_ref().and_then(|c| c.probability) {
            Some(p) => scored.push((p, right)),
            None => undecided += 1,
        }
    });
    report.calibration = Some(Calibration::of(&scored, undecided, flags));
    report
}

/// REJECT or `weak-evidence`: the result should not be trusted.
pub fn flagged(analysis: &Analysis) -> bool {
    analysis.verdict == ResultVerdict::Reject || analysis.findings.iter().any(|f| f.rule == WEAK_EVIDENCE)
}

/// Replays `files` in the given order, analyzing each log with `analyze`
/// (a caller's richer analysis). Logs are read and analyzed in parallel,
/// then counted in order; unparseable files are listed and skipped, never
/// stopping the replay.
pub fn replay_with<F>(files: &[PathBuf], analyze: F) -> ReplayReport
where
    F: Fn(&Log) -> Analysis + Sync,
{
    replay_each(files, analyze, |_, _| {})
}

/// [`replay_with`], handing every analyzed log to `each` in order.
fn replay_each<F, E>(files: &[PathBuf], analyze: F, mut each: E) -> ReplayReport
where
    F: Fn(&Log) -> Analysis + Sync,
    E: FnMut(&Path, &Analysis),
{
    type Analyzed = Result<(Log, Analysis), String>;
    let parsed: Vec<(&Path, Analyzed)> = files
        .par_iter()
        .map(|p| {
            let result = parse_file(p).map_err(|e| e.to_string()).map(|log| {
                let analysis = analyze(&log);
                (log, analysis)
            });
            (p.as_path(), result)
        })
        .collect();
    let mut report = ReplayReport::default();
    let mut built: HashSet<(String, String)> = HashSet::new();
    for (path, result) in parsed {
        match result {
            Ok((log, analysis)) => {
                report.warnings.extend(super::garbled_warning(path, &log));
                each(path, &analysis);
                replay_log(&mut report, &mut built, path, &log, &analysis)
            }
            Err(e) => report.unreadable.push(e),
        }
    }
    report
}

fn replay_log(
    report: &mut ReplayReport,
    built: &mut HashSet<(String, String)>,
    path: &Path,
    log: &Log,
    analysis: &Analysis,
) {
    report.logs += 1;
    let name = path.file_name().unwrap_or_default().to_string_lossy().into_owned();
    count_evidence(&mut report.evidence, &name, log, analysis);
    report.steps += log.steps.len();
    report.tested_steps += analysis.tested_steps;
    let signed = log.steps.iter().filter(|s| s.signature.is_some()).count();
    let avg_build = per_step(log.durations.as_ref().map(|d| d.build_seconds), signed);
    let avg_test = per_step(analysis.test_seconds, analysis.tested_steps);
    report.total_build_hours += analysis.build_seconds.unwrap_or(0.0) / 3600.0;
    report.total_test_hours += analysis.test_seconds.unwrap_or(0.0) / 3600.0;
    for step in &log.steps {
        let Some(sig) = &step.signature else { continue };
        if !built.insert((step.commit.clone(), sig.clone())) {
            report.reusable_builds += 1;
            report.reusable_build_hours += avg_build / 3600.0;
        }
    }
    let repeats = repeated_tests(log).len();
    report.reusable_tests += repeats;
    report.reusable_test_hours += repeats as f64 * avg_test / 3600.0;
    if analysis.verdict == ResultVerdict::Truncated {
        report.truncated.push(name.clone());
    }
    if analysis.verdict == ResultVerdict::Reject {
        report.rejected.push(name.clone());
    }
    if !analysis.inconsistencies.is_empty() {
        report.inconsistent.push(name);
    }
    match log.steps.iter().find_map(|s| s.signature.as_ref()).map(String::len) {
        None => report.eras.no_signature += 1,
        Some(40) => report.eras.hex40 += 1,
        Some(_) => report.eras.hex64 += 1,
    }
}

/// Counts a named culprit as supported, weak or undecided by its evidence.
fn count_evidence(summary: &mut EvidenceSummary, name: &str, log: &Log, analysis: &Analysis) {
    let Some(confidence) = analysis.confidence.as_ref().filter(|_| log.culprit().is_some()) else {
        return;
    };
    if analysis.findings.iter().any(|f| f.rule == WEAK_EVIDENCE) {
        summary.weak.push(name.to_string());
    } else if confidence.probability.is_some() {
        summary.supported += 1;
    } else {
        summary.undecided += 1;
    }
}

fn per_step(total: Option<f64>, steps: usize) -> f64 {
    match total {
        Some(t) if steps > 0 => t / steps as f64,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_parse_and_name_the_bad_line() {
        let l = Labels::parse("log\tresult\treason\nLog_1\tcorrect\t/\nLog_2\tno output\tC2\n").unwrap();
        assert_eq!(l.of(Path::new("/x/Log_1.txt")), Some(Label::Correct));
        assert_eq!(l.of(Path::new("Log_2")), Some(Label::NoOutput));
        assert_eq!(l.of(Path::new("Log_3.txt")), None);
        let e = Labels::parse("h\nLog_1\tcorrect\nLog_2\tmaybe\n").unwrap_err();
        assert_eq!(e.0, 3);
        assert!(e.1.contains("maybe"), "{}", e.1);
        assert_eq!(Labels::parse("h\nLog_1\n").unwrap_err().0, 2);
        assert!(Labels::parse("h\n").is_err());
        assert!(Labels::parse("h\nA\tcorrect\nA\tincorrect\n")
            .unwrap_err()
            .1
            .contains("twice"));
    }

    /// Brier, base rate and bins on a hand-made set.
    #[test]
    fn calibration_bins_and_brier() {
        let scored = [(0.05, false), (0.05, true), (0.95, true), (1.0, true)];
        let c = Calibration::of(&scored, 1, FlagScore::default());
        assert_eq!((c.results, c.right, c.without_probability), (4, 3, 1));
        let brier = (0.05f64.powi(2) + 0.95f64.powi(2) + 0.05f64.powi(2)) / 4.0;
        assert!((c.brier - brier).abs() < 1e-12);
        assert!((c.base_rate_brier - 0.1875).abs() < 1e-12);
        assert_eq!(c.reliability.len(), 2);
        let (low, high) = (&c.reliability[0], &c.reliability[1]);
        assert_eq!((low.count, low.fraction_right), (2, 0.5));
        assert_eq!((high.low, high.count, high.fraction_right), (0.9, 2, 1.0));
        assert!((high.mean_probability - 0.975).abs() < 1e-12);
    }
}
