//! `kcache log replay`: a corpus of logs, in file-name order, as if one
//! shared signature cache had seen them all.

use std::collections::HashSet;
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

/// Replays `files` in the given order, analyzing each log with `analyze`
/// (a caller's richer analysis). Logs are read and analyzed in parallel,
/// then counted in order; unparseable files are listed and skipped, never
/// stopping the replay.
pub fn replay_with<F>(files: &[PathBuf], analyze: F) -> ReplayReport
where
    F: Fn(&Log) -> Analysis + Sync,
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
