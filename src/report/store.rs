//! The text of the cache's own commands (`put`, `get`, `forget`, `sync`,
//! `gc`, `verify`, `record-run`, `log import`) and of single-file answers
//! (`sign`, `title`), one function per answer, each ending in a newline.
//!
//! Invariant: renders only; what to print under `--json` is each result's
//! own `Serialize`, and the exit status is the CLI's.

use std::path::Path;

use crate::import::ImportReport;
use crate::key::BuildKey;
use crate::signature::Report as SignatureReport;
use crate::store::{BuildRecord, GcReport, Restored, SyncReport, VerifyReport};
use crate::title::FileTitle;

/// `kcache put`: the build key, the signature and how many artifacts.
pub fn put_text(record: &BuildRecord) -> String {
    format!(
        "{}  {}  {} artifact(s)\n",
        record.build_key,
        record.signature.as_deref().unwrap_or(""),
        record.artifacts.len()
    )
}

/// `kcache get`: each restored file, one a line.
pub fn restored_text(r: &Restored) -> String {
    r.restored.iter().map(|p| format!("{}\n", p.display())).collect()
}

/// `kcache get --blob`: where the blob went and its size.
pub fn blob_text(dest: &Path, size: u64) -> String {
    format!("{}  {size}\n", dest.display())
}

/// `kcache forget`.
pub fn forgotten_text(key: &BuildKey, forgotten: usize) -> String {
    format!("{key}: forgot {forgotten} build record(s)\n")
}

/// `kcache sync` (failed uploads are said on stderr, one each).
pub fn sync_text(r: &SyncReport) -> String {
    format!(
        "uploaded {}, failed {}, still queued {}\n",
        r.uploaded,
        r.failed.len(),
        r.still_pending
    )
}

/// What a command's uploads left undone when it ended, if anything.
pub fn uploads_left(r: &SyncReport) -> Option<String> {
    (!r.failed.is_empty() || r.still_pending > 0).then(|| {
        format!(
            "{} upload(s) done, {} failed, {} still queued: run `kcache sync` when the remote is back",
            r.uploaded,
            r.failed.len(),
            r.still_pending
        )
    })
}

/// `kcache gc --max-size`.
pub fn gc_text(r: &GcReport, max: u64) -> String {
    let mut out = format!(
        "evicted {} blob(s) and {} reproducer work file(s): {} -> {} bytes ({} of them in vm/); \
         removed {} stale temp file(s)",
        r.evicted, r.vm_evicted, r.bytes_before, r.bytes_after, r.vm_bytes, r.tmp_removed
    );
    if r.vm_in_use {
        out.push_str("; vm/ was in use by a running harness and kept");
    }
    out.push_str(&format!(" (limit {max})\n"));
    out
}

/// `kcache verify`: every problem, then the verdict.
pub fn verify_text(r: &VerifyReport) -> String {
    let mut out: String = r.problems.iter().map(|p| format!("problem: {p}\n")).collect();
    if let Some(s) = &r.salvage {
        out.push_str(&salvage_text(s));
    }
    out.push_str(&format!(
        "{} record(s), {} blob(s): {}{}\n",
        r.records,
        r.blobs,
        if r.healthy() {
            "healthy".to_string()
        } else {
            format!("{} problem(s)", r.problems.len())
        },
        if r.repaired { " (repaired)" } else { "" }
    ));
    out
}

/// What a repair of a damaged index kept, and the artifacts whose records
/// it lost (each with the kernel signature its blob still gives).
fn salvage_text(s: &crate::store::Salvage) -> String {
    let kept: Vec<String> = s
        .kept
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(cf, n)| format!("{n} {cf}"))
        .collect();
    let mut out = format!(
        "salvaged: {}\n",
        if kept.is_empty() {
            "no record".to_string()
        } else {
            kept.join(", ")
        }
    );
    for o in &s.orphan_blobs {
        out.push_str(&format!(
            "lost the record of artifact {} ({})\n",
            o.blob,
            o.signature
                .as_ref()
                .map_or("not a kernel".to_string(), |sig| format!("kernel signature {sig}"))
        ));
    }
    out
}

/// `kcache log import`, per file.
pub fn import_text(path: &Path, r: &ImportReport) -> String {
    format!(
        "{}: {} known signature(s), {} run(s){}\n",
        path.display(),
        r.known_signatures,
        r.runs,
        r.test_key.map(|k| format!(" under test key {k}")).unwrap_or_default()
    )
}

/// `kcache sign`, per file: as `sha256sum` prints.
pub fn sign_text(path: &Path, report: &SignatureReport) -> String {
    format!("{}  {}\n", report.signature, path.display())
}

/// `kcache title`, per file.
pub fn title_text(t: &FileTitle) -> String {
    match t.title.as_deref() {
        None => format!("{}: no crash\n", t.file),
        Some(title) if crate::title::is_suppressed(title) => {
            format!("{}: {title} (suppressed: not a kernel crash)\n", t.file)
        }
        Some(title) => format!("{}: {title}\n", t.file),
    }
}

/// `kcache key-gen`: the public key is the last token, in the form
/// `trusted_keys` and `--trust` take.
pub fn key_gen_text(path: &Path, public: &crate::trust::PublicKey) -> String {
    format!(
        "signing key written to {} (keep it private); public key: {public}\n",
        path.display()
    )
}

/// `kcache repro --json`: the runs of a reproducer on a kernel.
#[derive(serde::Serialize)]
pub struct ReproDocument<'a> {
    pub kernel: &'a Path,
    pub repro: &'a Path,
    pub cmdline: String,
    pub runs: &'a [crate::vm::Run],
    pub summary: &'a crate::vm::Summary,
}

/// Said before `kcache repro` starts its runs.
pub fn repro_plan(runs: u32, repro: &Path, kernel: &Path, jobs: u32, cmdline: &str) -> String {
    format!(
        "{runs} run(s) of {} on {}, {jobs} at once; kernel command line (plus the accelerator's stall timeouts): \
         {cmdline}",
        repro.display(),
        kernel.display()
    )
}

/// `kcache repro`'s closing text: the tally, then the first crash report.
pub fn repro_text(runs: &[crate::vm::Run], summary: &crate::vm::Summary) -> String {
    let mut out = crate::vm::text::summary(summary);
    out.extend(crate::vm::text::first_report(runs, 40));
    out
}

/// What `kcache step run` recorded.
pub fn step_text(r: &crate::exec::step::StepReport) -> String {
    match r.result.as_str() {
        "tested" => format!(
            "step {}: {}: {} run(s) recorded, {} upload(s)\n",
            crate::short_id(&r.step),
            r.what,
            r.runs,
            r.uploaded
        ),
        result => format!(
            "step {}: {}: {result}, {} upload(s)\n",
            crate::short_id(&r.step),
            r.what,
            r.uploaded
        ),
    }
}
