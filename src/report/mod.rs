//! Human-readable renderings of the library's results. JSON output is the
//! results' own `Serialize` form; this module only does text.

pub mod html;
mod store;
pub mod timeline;
pub use store::*;

use std::fmt::Write;
use std::path::Path;

use crate::key::CommitId;

use crate::bisect::{Outcome, Summary};
use crate::exec::lookup::Lookup;
use crate::exec::predict::Blocker;
use crate::exec::{describe, BuildSource};
use crate::key::short;
use crate::signature::{diff::Change, DiffReport};
use crate::store::Stats;
use crate::syzlog::{Analysis, Calibration, ReplayReport, ResultVerdict, Severity};

/// `kcache diff` text output.
pub fn diff_text(report: &DiffReport, a: &Path, b: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "a: {}  {}", report.a, a.display());
    let _ = writeln!(s, "b: {}  {}", report.b, b.display());
    if report.equal {
        s.push_str("signatures are equal: the two builds have the same machine code and data\n");
        return s;
    }
    let _ = writeln!(s, "{} hashed section(s) differ:", report.sections.len());
    for sec in &report.sections {
        match sec.change {
            Change::Changed => {
                let _ = writeln!(
                    s,
                    "  changed  {}  ({} -> {} bytes)",
                    sec.name,
                    sec.size_a.unwrap_or(0),
                    sec.size_b.unwrap_or(0)
                );
            }
            Change::Added => {
                let _ = writeln!(s, "  added    {}  ({} bytes)", sec.name, sec.size_b.unwrap_or(0));
            }
            Change::Removed => {
                let _ = writeln!(s, "  removed  {}  ({} bytes)", sec.name, sec.size_a.unwrap_or(0));
            }
        }
        for sym in &sec.symbols {
            let sizes = match (sym.size_a, sym.size_b) {
                (Some(x), Some(y)) if x != y => format!(" ({x} -> {y} bytes)"),
                _ => String::new(),
            };
            let word = match sym.change {
                Change::Changed => "changed",
                Change::Added => "added",
                Change::Removed => "removed",
            };
            let _ = writeln!(s, "      {word:<8} {}{sizes}", sym.name);
        }
        if sec.symbols_omitted > 0 {
            let _ = writeln!(s, "      ... {} more symbol(s) (--all lists them)", sec.symbols_omitted);
        }
    }
    if !report.symbols_compared {
        s.push_str("(no .symtab in both files: symbols not compared)\n");
    }
    s
}

fn hours(seconds: f64) -> String {
    format!("{:.1}h", seconds / 3600.0)
}

/// `kcache log analyze` text output for one log.
pub fn analysis_text(path: &Path, a: &Analysis) -> String {
    let mut s = String::new();
    let verdict = match a.verdict {
        ResultVerdict::Ok => "OK",
        ResultVerdict::Warn => "WARN",
        ResultVerdict::Reject => "REJECT",
        ResultVerdict::NoCulprit => "NO CULPRIT",
        ResultVerdict::Truncated => "TRUNCATED (the log stops before any result)",
    };
    let _ = writeln!(s, "{}: {verdict}", path.display());
    if let Some(c) = &a.culprit {
        let _ = writeln!(s, "  culprit: {c}");
    }
    let _ = writeln!(
        s,
        "  steps: {} ({} tested, {} runs); revisions tested: {}; build {}, test {}",
        a.steps,
        a.tested_steps,
        a.runs,
        a.revisions_tested.map_or("?".to_string(), |n| n.to_string()),
        a.build_seconds.map_or("?".to_string(), hours),
        a.test_seconds.map_or("?".to_string(), hours),
    );
    let _ = writeln!(
        s,
        "  tests a signature cache would skip: {} (~{})",
        a.repeated_tests.len(),
        hours(a.repeated_test_seconds)
    );
    for r in &a.repeated_tests {
        let _ = writeln!(
            s,
            "    line {}: {} has the kernel of {}",
            r.line,
            short(&r.commit),
            short(&r.same_as)
        );
    }
    for i in &a.inconsistencies {
        let _ = writeln!(
            s,
            "  signature {} judged good at {} and bad at {}",
            short(&i.signature),
            i.good.iter().map(|c| short(c)).collect::<Vec<_>>().join(","),
            i.bad.iter().map(|c| short(c)).collect::<Vec<_>>().join(",")
        );
    }
    if let Some(c) = &a.confidence {
        match (c.probability, &c.undecided) {
            (Some(p), _) => {
                let _ = writeln!(
                    s,
                    "  confidence: {p:.3} that the culprit is right{}",
                    c.runs_probability
                        .map_or(String::new(), |r| format!(" (by the log's own runs alone: {r:.3})"))
                );
            }
            (None, Some(why)) => {
                let _ = writeln!(s, "  confidence: undecided ({why})");
            }
            (None, None) => {}
        }
    }
    for f in a.findings.iter().filter(|f| f.severity == Severity::Reject) {
        let _ = writeln!(s, "  REJECT [{}]: {}", f.rule, f.message);
    }
    for f in a.findings.iter().filter(|f| f.severity == Severity::Warning) {
        let _ = writeln!(s, "  warning [{}]: {}", f.rule, f.message);
    }
    s
}

/// `kcache log replay` text output.
pub fn replay_text(r: &ReplayReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "logs: {} ({} unreadable)", r.logs, r.unreadable.len());
    let _ = writeln!(s, "steps: {} ({} tested)", r.steps, r.tested_steps);
    let _ = writeln!(
        s,
        "reusable builds: {} (~{:.1}h of {:.1}h building)",
        r.reusable_builds, r.reusable_build_hours, r.total_build_hours
    );
    let _ = writeln!(
        s,
        "reusable tests: {} (~{:.1}h of {:.1}h testing)",
        r.reusable_tests, r.reusable_test_hours, r.total_test_hours
    );
    let _ = writeln!(s, "rejected results: {} {}", r.rejected.len(), r.rejected.join(" "));
    let e = &r.evidence;
    if e.supported + e.weak.len() + e.undecided > 0 {
        let _ = writeln!(
            s,
            "culprits by their own evidence: {} supported, {} not ({}), {} undecided",
            e.supported,
            e.weak.len(),
            e.weak.join(" "),
            e.undecided
        );
    }
    if let Some(c) = &r.calibration {
        calibration_text(&mut s, c);
    }
    if !r.truncated.is_empty() {
        let _ = writeln!(
            s,
            "truncated logs (no result): {} {}",
            r.truncated.len(),
            r.truncated.join(" ")
        );
    }
    let _ = writeln!(
        s,
        "logs with a signature judged good and bad: {} {}",
        r.inconsistent.len(),
        r.inconsistent.join(" ")
    );
    let _ = writeln!(
        s,
        "eras: {} without signatures, {} with 40-hex, {} with 64-hex",
        r.eras.no_signature, r.eras.hex40, r.eras.hex64
    );
    s
}

/// The judge's probabilities against labels: Brier score and the
/// reliability table, then the flags' precision and recall.
pub fn calibration_text(s: &mut String, c: &Calibration) {
    let _ = writeln!(
        s,
        "calibration against labels: {} results with a probability ({} right), {} without (no culprit, or undecided)",
        c.results, c.right, c.without_probability
    );
    let _ = writeln!(
        s,
        "  Brier score: {:.3} (always the base rate {:.2}: {:.3})",
        c.brier,
        c.right as f64 / c.results.max(1) as f64,
        c.base_rate_brier
    );
    let _ = writeln!(s, "  probability   results  mean probability  fraction right");
    for b in &c.reliability {
        let _ = writeln!(
            s,
            "  {:.1}-{:.1}      {:>7}  {:>16.2}  {:>14.2}",
            b.low, b.high, b.count, b.mean_probability, b.fraction_right
        );
    }
    let f = &c.flags;
    let _ = writeln!(
        s,
        "  flags (REJECT or weak-evidence) as \"wrong\": precision {}/{} = {:.1}%, recall {}/{} = {:.1}%",
        f.flagged_wrong,
        f.flagged,
        100.0 * f.precision(),
        f.flagged_wrong,
        f.wrong,
        100.0 * f.recall()
    );
}

/// The noisy search's view: probability, credible set, kernels' runs.
fn search_text(out: &mut String, r: &crate::bisect::SearchReport) {
    if let Some(p) = r.probability {
        let _ = writeln!(out, "probability: {p:.3}");
    }
    if let Some(why) = &r.undecided {
        let _ = writeln!(out, "undecided: {why}");
    }
    let _ = writeln!(out, "target: {}", r.target.join(" | "));
    let set: Vec<&str> = r.credible_set.iter().map(|c| short(c)).collect();
    let _ = writeln!(out, "credible set (95%): {}", set.join(" "));
    for k in &r.kernels {
        let commits: Vec<&str> = k.commits.iter().map(|c| short(c)).collect();
        let _ = writeln!(
            out,
            "  kernel {} ({}): {}",
            short(&k.signature),
            commits.join(" "),
            k.counts.describe()
        );
    }
}

/// `kcache bisect` summary.
/// `kcache test-patch`'s answer: the verdict, the base, both kernels' runs.
pub fn patch_test_text(t: &crate::exec::patch_test::PatchTest) -> String {
    use crate::exec::patch_test::{BaseFrom, PatchVerdict as V};
    let from = match t.base_from {
        BaseFrom::Given => "given",
        BaseFrom::Trailer => "its base-commit: trailer",
        BaseFrom::BlobIds => "the blob ids it was made against",
    };
    let verdict = match t.verdict {
        V::Fixed => "the crash is GONE with the patch",
        V::NotFixed => "the patched kernel STILL CRASHES",
        V::BaseDoesNotCrash => "cannot tell: the base does not crash",
        V::Untested => "cannot tell: a kernel was not built or no run gave information",
    };
    let mut out = String::new();
    let _ = writeln!(out, "{verdict}");
    let _ = writeln!(out, "base:    {} (from {from})", t.base);
    let _ = writeln!(out, "base runs:    {}", t.base_runs.describe());
    let _ = writeln!(
        out,
        "patched runs: {} (patch {})",
        t.patched_runs.describe(),
        t.patch_blake3.short()
    );
    out
}

/// One line: what the revert (fix) check of the culprit found, with its runs.
pub fn confirmation_line(c: &crate::bisect::Confirmation) -> String {
    use crate::bisect::ConfirmVerdict as V;
    let what = match c.change {
        crate::bisect::ConfirmChange::Revert => format!("{} reverted on {}", c.culprit.short(), c.on.short()),
        crate::bisect::ConfirmChange::ApplyFix => format!("{} applied on {}", c.culprit.short(), c.on.short()),
    };
    let runs = format!(
        "{} of {} run(s) crashed with the bug ({}; {} now, {} reused; {} build(s))",
        c.runs.matched,
        c.runs.total(),
        c.runs.describe(),
        c.runs_done,
        c.runs_reused,
        c.builds_done
    );
    match c.verdict {
        V::Confirmed => format!("culprit CONFIRMED: {what}: {runs}"),
        V::NotConfirmed => format!("culprit NOT CONFIRMED: {what} still crashes: {runs}"),
        V::CannotRevert => format!(
            "culprit not checked: {what} does not apply (conflicts in {})",
            c.conflicts.join(", ")
        ),
        V::NoOp => format!(
            "culprit not checked: {} does not change the kernel (no-op)",
            c.culprit.short()
        ),
        V::Untested => format!(
            "culprit not checked: {what}: {}",
            c.reason.as_deref().unwrap_or("not tested")
        ),
    }
}

pub fn bisect_text(s: &Summary) -> String {
    let mut out = String::new();
    let fix = s.direction == crate::search::graph::Direction::Fix;
    let first = if fix { "first fixed commit" } else { "first bad commit" };
    match &s.outcome {
        Outcome::Culprit {
            commit,
            subject,
            signature,
            parents,
            combined,
            merged_by,
        } => {
            let _ = writeln!(out, "{first}: {commit} {subject}");
            if *combined {
                let _ = writeln!(
                    out,
                    "this merge is the culprit: every parent is {}, so the {} comes from combining the branches",
                    if fix { "still crashing" } else { "good" },
                    if fix { "fix" } else { "bug" }
                );
            }
            for (i, m) in merged_by.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{} merge {} {}",
                    if i == 0 { "came in by" } else { "     then by" },
                    m.commit,
                    m.subject
                );
            }
            let _ = writeln!(out, "culprit signature: {}", signature.as_deref().unwrap_or("(none)"));
            for (p, sig) in parents {
                let _ = writeln!(
                    out,
                    "parent  signature: {} ({})",
                    sig.as_deref().unwrap_or("(not built)"),
                    short(p)
                );
            }
        }
        Outcome::Inconclusive { candidates } => {
            let _ = writeln!(out, "bisection is inconclusive, the {first} could be any of:");
            for c in candidates {
                let _ = writeln!(out, "  {c}");
            }
        }
        Outcome::NoBoundary { reason } => {
            let _ = writeln!(out, "no culprit: {reason}");
        }
        Outcome::Stopped { reason } => {
            let _ = writeln!(out, "stopped without an answer: {reason}");
        }
    }
    if let Some(search) = &s.search {
        search_text(&mut out, search);
    }
    if let Some(c) = &s.confirmation {
        let _ = writeln!(out, "{}", confirmation_line(c));
    }
    for n in &s.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let t = &s.totals;
    let _ = writeln!(
        out,
        "steps: {}; builds: {} done ({} failed), {} reused, {} predicted; test runs: {} done, {} reused",
        t.steps,
        t.builds_done,
        t.builds_failed,
        t.builds_reused,
        t.builds_predicted,
        t.effort.runs_done,
        t.effort.runs_reused
    );
    if t.prediction_contradictions > 0 {
        let _ = writeln!(
            out,
            "PREDICTION CONTRADICTED {} time(s): prediction was turned off (see the notes)",
            t.prediction_contradictions
        );
    }
    let _ = writeln!(
        out,
        "time: build {:.1}s, test {:.1}s, wall {:.1}s; saved: build {:.1}s, test {:.1}s",
        t.effort.build_seconds,
        t.effort.test_seconds,
        s.wall_seconds,
        t.effort.saved_build_seconds,
        t.effort.saved_test_seconds
    );
    for step in &s.steps {
        let how = match step.eval.build {
            BuildSource::Built => "built",
            BuildSource::Reused => "reused",
            BuildSource::Failed => "build failed",
            BuildSource::KnownBroken => "known broken",
            BuildSource::TransientFailure => "build failed (transient, not recorded)",
            BuildSource::Predicted => "predicted",
        };
        let _ = writeln!(
            out,
            "  {} {:<6} {:<12} {:<5} {}",
            short(&step.commit),
            step.eval.verdict.as_str(),
            how,
            step.eval.signature.as_deref().map_or("-", |s| &s[..s.len().min(12)]),
            if step.eval.evidence.total() > 0 {
                describe(&step.eval.evidence)
            } else {
                String::new()
            }
        );
    }
    out
}

/// `kcache lookup` text output.
pub fn lookup_text(l: &Lookup) -> String {
    let mut s = String::new();
    if !l.found() {
        s.push_str("not in the cache\n");
        return s;
    }
    if let Some(b) = &l.build {
        let _ = writeln!(
            s,
            "build key: {} ({}), commit {}, {:.1}s on {}",
            b.build_key,
            word(&b.status),
            b.commit,
            b.build_seconds,
            b.host
        );
        if let Some(tail) = &b.log_tail {
            let _ = writeln!(s, "build log tail:\n{tail}");
        }
    }
    if let Some(sig) = &l.signature {
        let _ = writeln!(s, "signature: {sig}");
    }
    for a in &l.artifacts {
        let state = if a.available {
            "available"
        } else if a.evicted {
            "evicted"
        } else {
            "MISSING"
        };
        let _ = writeln!(
            s,
            "  artifact {} ({} bytes, {}) {state}",
            a.artifact.name, a.artifact.size, a.artifact.blake3
        );
    }
    for b in &l.builds {
        let _ = writeln!(s, "  built by key {} (commit {})", b.build_key, short(&b.commit));
    }
    for k in &l.known {
        let _ = writeln!(
            s,
            "  known from {}: commit {} with {}",
            k.source,
            short(&k.commit),
            k.compiler
        );
    }
    for t in &l.tests {
        let verdict = t.verdict.map_or("none", |v| v.as_str());
        let _ = writeln!(
            s,
            "  test key {}: {} run(s), verdict {verdict} ({})",
            t.test_key,
            t.runs,
            describe(&t.evidence)
        );
        if let Some(c) = &t.classes {
            let _ = writeln!(s, "    against the target: {}", c.describe());
        }
        for src in &t.sources {
            let _ = writeln!(s, "    from {src}");
        }
    }
    s
}

/// `kcache stats` text output.
pub fn stats_text(st: &Stats) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "cache: {}", st.cache_dir.display());
    for (cf, n) in &st.records {
        let _ = writeln!(s, "  {cf}: {n}");
    }
    let _ = writeln!(s, "  blobs: {} ({} bytes stored)", st.blobs, st.blob_bytes);
    if st.vm_files > 0 {
        let _ = writeln!(
            s,
            "  reproducer work files (vm/): {} ({} bytes)",
            st.vm_files, st.vm_bytes
        );
    }
    if st.by_writer.keys().any(|w| w != "here") {
        s.push_str("build and run records by writer:\n");
        for (writer, n) in &st.by_writer {
            let _ = writeln!(s, "  {writer}: {n}");
        }
    }
    for (name, v) in &st.counters {
        if name.ends_with("_ms") {
            let _ = writeln!(s, "  {}: {:.1}s", name.trim_end_matches("_ms"), *v as f64 / 1000.0);
        } else {
            let _ = writeln!(s, "  {name}: {v}");
        }
    }
    for p in &st.prebuilt {
        let _ = writeln!(
            s,
            "  prebuilt {} (recipe {}, config {}): {}",
            p.range,
            p.recipe_digest.short(),
            p.config_digest.short(),
            prebuilt_counts(p)
        );
    }
    s
}

/// How much of a prebuilt range the cache holds, and how it got there.
fn prebuilt_counts(p: &crate::store::PrebuildRecord) -> String {
    format!(
        "{} of {} selected commits in the cache ({} built, {} predicted, {} already there, {} fail to build); \
         {} commits in the range",
        p.covered(),
        p.selected,
        p.built,
        p.predicted,
        p.cached,
        p.failed,
        p.commits
    )
}

/// `kcache prebuild` text output.
pub fn prebuild_text(p: &crate::store::PrebuildRecord) -> String {
    let mut s = format!("prebuilt {} in {:.1}s: {}\n", p.range, p.seconds, prebuilt_counts(p));
    if p.transient > 0 {
        s.push_str(&format!(
            "{} commit(s) not built for a reason that is not theirs (see the warnings): run prebuild again\n",
            p.transient
        ));
    }
    s
}

/// `kcache config` text output.
pub fn settings_text(s: &crate::config::Settings) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "config file: {}{}",
        s.config_file.display(),
        if s.config_file_exists { "" } else { " (none)" }
    );
    let _ = writeln!(
        out,
        "cache_dir: {} (from {})",
        s.cache_dir.display(),
        word(&s.cache_dir_from)
    );
    match &s.remote {
        Some(r) => {
            let _ = writeln!(
                out,
                "remote: {r} (from {}), {}",
                word(&s.remote_from),
                word(&s.remote_mode)
            );
        }
        None => out.push_str("remote: none\n"),
    }
    for (k, v) in &s.remote_environment {
        let _ = writeln!(out, "  {k}={v}");
    }
    let _ = writeln!(out, "executor: {} (from {})", word(&s.executor), word(&s.executor_from));
    if let Some(t) = &s.build_env {
        let _ = writeln!(out, "build_env: {} (from config-file)", t.display());
    }
    if s.uses_kubernetes() {
        let k = &s.kubernetes;
        let _ = writeln!(
            out,
            "  kubernetes: namespace {}, image {}",
            k.namespace.as_deref().unwrap_or("(the kubeconfig's)"),
            if k.image.is_empty() {
                "none (set kubernetes.image)"
            } else {
                &k.image
            }
        );
    }
    let policy = &s.remote_options.policy;
    let _ = writeln!(
        out,
        "public key: {}",
        s.public_key
            .map_or("none (kcache key-gen makes one)".to_string(), |k| k.to_string())
    );
    let _ = writeln!(
        out,
        "trust: {} ({} trusted key(s))",
        word(&policy.mode),
        policy.trusted.len()
    );
    for k in &policy.trusted {
        let _ = writeln!(out, "  {k}");
    }
    out
}

/// `kcache predict`: the first reference that predicts the commit, else
/// why the nearest one does not.
pub fn prediction_text(commit: &CommitId, judged: &[(&crate::exec::predict::Reference, Option<Blocker>)]) -> String {
    let same = judged.iter().find(|(_, b)| b.is_none());
    match (same, judged.first()) {
        (Some((r, _)), _) => format!(
            "{}  same kernel as {} (signature {}): nothing its build read changed\n",
            short(commit),
            short(&r.commit),
            r.signature
        ),
        (None, Some((r, Some(b)))) => format!(
            "{}  not predictable from {}: {} ({})\n",
            short(commit),
            short(&r.commit),
            b.path,
            b.why
        ),
        _ => format!(
            "{}  not predictable: the cache has no kbuild build with an input set\n",
            short(commit)
        ),
    }
}

/// `kcache bisections` text output: one line each, newest first.
pub fn bisections_text(records: &[crate::bisect::record::BisectionRecord]) -> String {
    if records.is_empty() {
        return "no bisection recorded in this cache yet\n".to_string();
    }
    let mut out = String::new();
    for r in records {
        let goods: Vec<&str> = r.setup.good.iter().map(|g| short(g)).collect();
        let _ = writeln!(
            out,
            "{}  {}  {}..{}  {} steps, {} built, {} runs, {:.1}s  {}\n    {}",
            r.id,
            html::utc(r.time),
            goods.join(","),
            short(&r.setup.bad),
            r.totals.steps,
            r.totals.builds_done,
            r.totals.effort.runs_done,
            r.wall_seconds,
            r.setup.repo,
            r.outcome.text
        );
        if let Some(c) = &r.confirmation {
            let _ = writeln!(out, "    {}", confirmation_line(c));
        }
    }
    out
}

use crate::serde_word as word;
