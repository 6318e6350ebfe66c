//! `kcache log import`: syzbot bisection logs into the cache.
//!
//! A log tells which commit got which kernel signature with which compiler,
//! but not the config, so these become *known signatures* (good for
//! equality and no-op reasoning, never for restoring artifacts), not build
//! records. Its test runs become run records under a test key derived from
//! the log's original crash. Run ids are derived from the log and step, so
//! importing the same log twice adds nothing.

use crate::signature::KernelSignature;
use std::path::Path;

use serde::Serialize;

use crate::key::{TestInputs, TestKey};
use crate::store::{self, Cache, KnownSignature, Outcome, RunRecord, StoreError};
use crate::syzlog::{Log, RunOutcome, Runs, Step};

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub known_signatures: usize,
    pub runs: usize,
    /// Steps without a signature (failed builds, pre-2020 logs).
    pub unsigned_steps: usize,
    pub test_key: Option<TestKey>,
}

/// The test key runs from a syzbot log are pooled under: the reproducer is
/// identified by the crash it was filed for.
pub fn log_test_key(original_crash: &str) -> TestKey {
    TestInputs {
        command: "syzbot reproducer".into(),
        files: Vec::new(),
        settings: vec![format!("crash={original_crash}")],
    }
    .key()
}

/// One line of `log import --json`: a file and what it added.
#[derive(Debug, Serialize)]
pub struct FileImport<'a> {
    pub path: &'a Path,
    pub import: &'a ImportReport,
}

pub fn import_log(cache: &Cache, log: &Log, path: &Path) -> Result<ImportReport, StoreError> {
    let name = path.file_name().unwrap_or(path.as_os_str()).to_string_lossy();
    let source = format!("syzbot-log:{name}");
    let mut report = ImportReport::default();
    let test_key = log.original_crash().map(log_test_key);
    report.test_key = test_key;
    let time = store::now();
    let mut known = Vec::new();
    let mut runs = Vec::new();
    for step in &log.steps {
        // The parser took only 40/64-hex signatures; anything else is unsigned.
        let Some(signature) = step.signature.as_deref().and_then(|s| KernelSignature::parse(s).ok()) else {
            report.unsigned_steps += 1;
            continue;
        };
        known.push(KnownSignature {
            schema: store::KNOWN_SIGNATURE_SCHEMA.into(),
            commit: step.commit.as_str().into(),
            compiler: step.compiler.clone().unwrap_or_else(|| "unknown".into()),
            signature: signature.clone(),
            source: source.clone(),
            time,
        });
        if let Some(test_key) = test_key {
            runs.extend(step_runs(step, &signature, test_key, &source, time));
        }
    }
    report.known_signatures = known.len();
    report.runs = runs.len();
    cache.put_known_signatures(&known)?;
    cache.record_runs(&runs)?;
    Ok(report)
}

fn step_runs(step: &Step, signature: &KernelSignature, test_key: TestKey, source: &str, time: u64) -> Vec<RunRecord> {
    let outcomes: Vec<(String, &RunOutcome)> = match &step.runs {
        Runs::None => Vec::new(),
        // The count behind `all runs:` is not in the log: one run stands for it.
        Runs::All(o) => vec![("all".to_string(), o)],
        Runs::Each(rs) => rs.iter().map(|r| (r.index.to_string(), &r.outcome)).collect(),
    };
    outcomes
        .into_iter()
        .map(|(index, outcome)| {
            let (outcome, title) = match outcome {
                RunOutcome::Ok => (Outcome::Ok, None),
                RunOutcome::Crashed(t) => (Outcome::Crash, Some(t.clone())),
                // The kernel failed before the reproducer could say anything.
                RunOutcome::BootFailed(_) | RunOutcome::TestFailed(_) => (Outcome::BootFailed, None),
                RunOutcome::Infra(_) => (Outcome::Infra, None),
            };
            let id = crate::key::digest(format!("{source}:{}:{index}", step.line).as_bytes());
            RunRecord {
                schema: store::RUN_SCHEMA.into(),
                signature: signature.clone(),
                test_key,
                run_id: store::RunId::of_log_run(&id),
                outcome,
                title,
                seconds: 0.0,
                host: "syzbot".into(),
                time,
                commit: Some(step.commit.as_str().into()),
                log_blob: None,
                source: Some(source.to_string()),
                writer: None,
            }
        })
        .collect()
}
