//! A bisection's report as one self-contained HTML page: inline CSS and
//! SVG, no script, nothing fetched, so it works as a mail attachment or
//! from a CI artifact store.
//!
//! Invariant: renders a [`BisectionRecord`]; reads nothing else.

use std::fmt::Write;

use crate::bisect::record::{BisectionRecord, CulpritRow, KernelRow, StepBuild, StepRow};
use crate::bisect::{ConfirmChange, Confirmation};
use crate::key::short;
use crate::serde_word;

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 70em; color: #1d1d1f; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em; }
.outcome { font-size: 1.2em; padding: .5em .8em; border-radius: 6px; }
.outcome.culprit { background: #fdecea; border-left: 5px solid #c62828; }
.outcome.inconclusive, .outcome.no_culprit, .outcome.stopped { background: #fff8e1; border-left: 5px solid #f9a825; }
dl.setup { display: grid; grid-template-columns: max-content auto; gap: .15em 1em; }
dl.setup dt { color: #666; } dl.setup dd { margin: 0; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.good { color: #2e7d32; font-weight: 600; } .bad { color: #c62828; font-weight: 600; } .skip { color: #757575; }
.tag { display: inline-block; padding: 0 .4em; border-radius: 3px; font-size: .85em; background: #eceff1; }
.tag.built { background: #e3f2fd; } .tag.predicted { background: #f3e5f5; } .tag.remote { background: #e0f2f1; }
ul.files { columns: 2; margin: .3em 0; } .note { background: #fffde7; padding: .3em .6em; margin: .2em 0; list-style: none; }
pre.oops { font: 12px/1.35 ui-monospace, "DejaVu Sans Mono", monospace; background: #fafafa; border-left: 3px solid #c62828; padding: .5em .8em; overflow-x: auto; max-height: 40em; }
.check { padding: .4em .8em; border-radius: 6px; } .check.confirmed { background: #e8f5e9; border-left: 5px solid #2e7d32; }
.check.not-confirmed { background: #fdecea; border-left: 5px solid #c62828; }
.check.cannot-revert, .check.no-op, .check.untested { background: #fff8e1; border-left: 5px solid #f9a825; }
svg text { font: 11px system-ui, sans-serif; } footer { margin-top: 3em; color: #888; font-size: .85em; }
"#;

/// The whole page.
pub fn bisection_html(r: &BisectionRecord) -> String {
    let mut h = String::new();
    let title = format!("kcache bisection {}: {}", r.id, r.outcome.text);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        esc(&title)
    );
    header(&mut h, r);
    if let Some(c) = &r.culprit {
        culprit(&mut h, c);
    }
    if let Some(c) = &r.confirmation {
        confirmation(&mut h, c);
    }
    strip(&mut h, r);
    steps(&mut h, r);
    super::timeline::section(&mut h, r);
    kernels(&mut h, r);
    cost(&mut h, r);
    let _ = write!(
        h,
        "<footer>kcache {} &middot; bisection record <code>{}</code> (<code>kcache report {}</code> renders it again)</footer>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        esc(&r.id),
        esc(&r.id)
    );
    h
}

fn header(h: &mut String, r: &BisectionRecord) {
    let s = &r.setup;
    let goods: Vec<String> = s.good.iter().map(|g| short(g).to_string()).collect();
    let _ = write!(
        h,
        "<header><h1>kcache bisection</h1><p class=\"outcome {}\" id=\"outcome\">{}</p><dl class=\"setup\">",
        esc(&serde_word(&r.outcome.kind)),
        esc(&r.outcome.text)
    );
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<dt>{k}</dt><dd>{v}</dd>");
    };
    row("repository", format!("<code>{}</code>", esc(&s.repo)));
    row(
        "range",
        format!(
            "good <code>{}</code>, bad <code>{}</code> ({} commits{})",
            goods.join("</code>, <code>"),
            short(&s.bad),
            r.range_commits,
            if s.first_parent { ", first parent" } else { "" }
        ),
    );
    row("build", format!("<code>{}</code>", esc(&s.build)));
    if let Some(c) = &s.config {
        row("config", format!("<code>{}</code>", esc(c)));
    }
    row(
        "test",
        format!("<code>{}</code>, {} runs per kernel", esc(&s.test), s.runs),
    );
    row("search", esc(&serde_word(&s.policy)));
    row("when", format!("{} on {}", utc(r.time), esc(&r.host)));
    if let Some(earlier) = &r.resumes {
        row("resumes", format!("bisection <code>{}</code>", esc(earlier)));
    }
    let candidates = candidates_text(r);
    if !candidates.is_empty() {
        row("candidates", candidates);
    }
    h.push_str("</dl></header>\n");
}

/// The inconclusive outcome's candidates, as code.
fn candidates_text(r: &BisectionRecord) -> String {
    r.outcome
        .candidates
        .iter()
        .map(|c| format!("<code>{}</code>", short(c)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn culprit(h: &mut String, c: &CulpritRow) {
    let sig = |s: &Option<crate::signature::KernelSignature>| {
        s.as_ref()
            .map_or("not signed".to_string(), |s| format!("<code>{}</code>", s.short()))
    };
    let _ = write!(
        h,
        "<section id=\"culprit\"><h2>Culprit</h2><p><code>{}</code> <strong class=\"subject\">{}</strong><br>{} &middot; {}</p>",
        esc(&c.commit),
        esc(&c.subject),
        esc(&c.author),
        esc(&c.date)
    );
    let _ = write!(
        h,
        "<table><tr><th></th><th>commit</th><th>kernel signature</th></tr>\
         <tr><td>parent</td><td><code>{}</code></td><td>{}</td></tr>\
         <tr><td>culprit</td><td><code>{}</code></td><td>{}</td></tr></table>",
        c.parent.as_ref().map_or("-", |p| short(p)),
        sig(&c.parent_signature),
        short(&c.commit),
        sig(&c.signature)
    );
    merge_path(h, c);
    let _ = write!(h, "<p>{} file(s) changed:</p><ul class=\"files\">", c.files.len());
    for f in &c.files {
        let _ = write!(h, "<li><code>{}</code></li>", esc(f));
    }
    h.push_str("</ul>");
    if let Some(oops) = &c.oops {
        let _ = write!(
            h,
            "<h3>The crash on the culprit's kernel</h3><pre class=\"oops\">{}</pre>",
            esc(oops)
        );
    }
    h.push_str("<h3>What changed in the kernel</h3>");
    kernel_diff(h, c);
    h.push_str("</section>\n");
}

/// The culprit's revert (fix) check: its verdict, the patched kernel and
/// the runs on it, and what it cost (not in the bisection's totals).
fn confirmation(h: &mut String, c: &Confirmation) {
    let (title, change) = match c.change {
        ConfirmChange::Revert => ("Revert check", "the culprit reverted"),
        ConfirmChange::ApplyFix => ("Fix check", "the fix applied"),
    };
    let verdict = serde_word(&c.verdict);
    let _ = write!(
        h,
        "<section id=\"confirmation\"><h2>{title}</h2><p class=\"check {}\" id=\"check-verdict\"><strong>{}</strong>: {}</p>",
        esc(&verdict),
        esc(&verdict),
        esc(&super::confirmation_line(c))
    );
    h.push_str("<table id=\"check-table\">");
    let mut row = |k: &str, v: String| {
        let _ = write!(h, "<tr><td>{k}</td><td>{v}</td></tr>");
    };
    row(
        "kernel tested",
        format!(
            "<code>{}</code> with {change} (patch BLAKE3 <code>{}</code>)",
            short(&c.on),
            c.patch_blake3.short()
        ),
    );
    row(
        "revert build",
        match (&c.build_key, c.build) {
            (Some(key), build) => format!(
                "build key <code>{}</code>, {}{}",
                key.to_hex(),
                build.map_or("-".to_string(), |b| esc(b.as_str())),
                c.signature
                    .as_ref()
                    .map_or(String::new(), |s| format!(", signature <code>{}</code>", s.short()))
            ),
            (None, _) => "not built".to_string(),
        },
    );
    row(
        "runs wanted",
        format!(
            "{} ({})",
            c.runs_wanted,
            c.crash_rate
                .map_or("the crash's rate unknown: --runs".to_string(), |p| format!(
                    "the crash's measured rate {p:.2}: a crash at the low end of its 95% interval shows with &ge; 99% probability"
                ))
        ),
    );
    row(
        "runs",
        format!(
            "{} with the bisected crash, {} other crash(es), {} ok, {} without information",
            c.runs.matched, c.runs.other, c.runs.ok, c.runs.no_info
        ),
    );
    row(
        "cost",
        format!(
            "{} build(s), {} run(s) now, {} reused",
            c.builds_done, c.runs_done, c.runs_reused
        ),
    );
    if !c.conflicts.is_empty() {
        row("conflicts", format!("<code>{}</code>", esc(&c.conflicts.join(", "))));
    }
    if let Some(reason) = &c.reason {
        row("why", esc(reason));
    }
    h.push_str("</table></section>\n");
}

/// The sections and symbols that differ between the parent's vmlinux and
/// the culprit's, or why the record has no diff.
fn kernel_diff(h: &mut String, c: &CulpritRow) {
    match (&c.kernel_diff, &c.kernel_diff_missing) {
        (Some(sections), _) if sections.is_empty() => {
            h.push_str("<p>No allocated section differs (the kernels are the same).</p>")
        }
        (Some(sections), _) => {
            h.push_str(
                "<p>Sections of the vmlinux the signature covers that differ between the parent's build and the culprit's, \
                 with the symbols whose bytes changed: added, removed and resized ones first; same-size changes are often \
                 only moved addresses (code after a grown function shifts).</p><table id=\"kernel-diff\"><tr><th>section</th><th>change</th>\
                 <th>parent bytes</th><th>culprit bytes</th><th>symbols</th></tr>",
            );
            for s in sections {
                let more = if s.symbols_omitted > 0 {
                    format!("<br>... and {} more", s.symbols_omitted)
                } else {
                    String::new()
                };
                let symbols: Vec<String> = s.symbols.iter().map(|y| format!("<code>{}</code>", esc(y))).collect();
                let _ = write!(
                    h,
                    "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}{more}</td></tr>",
                    esc(&s.name),
                    esc(&s.change),
                    s.size_parent.map_or("-".into(), |n| n.to_string()),
                    s.size_culprit.map_or("-".into(), |n| n.to_string()),
                    symbols.join("<br>")
                );
            }
            h.push_str("</table>");
        }
        (None, why) => {
            let _ = write!(
                h,
                "<p>No binary diff: {}.</p>",
                esc(why.as_deref().unwrap_or("not available"))
            );
        }
    }
}

/// Tested commits in range order, one slot per commit (untested commits
/// between two slots are counted, not drawn, so a 100,000-commit range
/// stays readable), one block per run of neighbours with the same kernel,
/// coloured by the verdict.
fn strip(h: &mut String, r: &BisectionRecord) {
    let slots = slots(r);
    const SLOT: f64 = 64.0;
    let width = (slots.len() as f64 * SLOT + 20.0).max(200.0);
    let x = |i: usize| 10.0 + SLOT * i as f64 + SLOT / 2.0;
    let _ = write!(
        h,
        "<section id=\"range\"><h2>The range</h2><p>{} commits; the tested ones in range order, oldest left, numbered \
         in bisection order; the figure between two marks counts the untested commits between them. Neighbours with \
         the same kernel signature are one block: one kernel, its runs pooled.</p>\
         <svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"100\" viewBox=\"0 0 {width} 100\" \
         role=\"img\" aria-label=\"bisection steps in range order\">\
         <line x1=\"10\" y1=\"52\" x2=\"{}\" y2=\"52\" stroke=\"#bbb\" stroke-width=\"2\"/>",
        r.range_commits,
        width - 10.0
    );
    let signature = |i: usize| slots[i].1.last().and_then(|(_, s)| s.signature.as_ref());
    let mut i = 0;
    while i < slots.len() {
        let mut j = i + 1;
        while j < slots.len() && signature(j).is_some() && signature(j) == signature(i) {
            j += 1;
        }
        block(h, &slots[i..j], |k| x(i + k));
        i = j;
    }
    for (k, pair) in slots.windows(2).enumerate() {
        gap_count(h, x(k) + SLOT / 2.0, pair[1].0.saturating_sub(pair[0].0 + 1));
    }
    h.push_str(
        "</svg><p class=\"legend\"><span class=\"good\">&#9632; good</span> &nbsp; <span class=\"bad\">&#9632; bad</span> \
         &nbsp; <span class=\"skip\">&#9632; skipped</span> &nbsp; letters in a mark: B built, R reused from the cache, \
         T from a team member (remote), P predicted (no build: same inputs as a built commit), F failed to build</p></section>\n",
    );
}

/// One block: neighbouring slots with one kernel, coloured by its verdict,
/// each slot's step numbers above and build marks inside; `x` places the
/// k-th slot of the block.
fn block(h: &mut String, group_slots: &[Slot<'_>], x: impl Fn(usize) -> f64) {
    let count = group_slots.len();
    let group: Vec<&(usize, &StepRow)> = group_slots.iter().flat_map(|(_, steps)| steps).collect();
    let (x0, x1) = (x(0) - 22.0, x(count - 1) + 22.0);
    let class = if count > 1 { "span" } else { "step" };
    // One kernel, one verdict; a signature check's own "skip" (it was
    // built to compare, not tested) does not count.
    let verdict = group
        .iter()
        .map(|(_, s)| s.verdict.as_str())
        .find(|v| *v != "skip")
        .unwrap_or("skip");
    let tip: Vec<String> = group.iter().map(|(n, s)| step_tooltip(*n, s)).collect();
    let _ = write!(
        h,
        "<g class=\"{class}\"><title>{}</title><rect x=\"{x0:.1}\" y=\"40\" width=\"{:.1}\" height=\"24\" rx=\"5\" \
         fill=\"{}\" fill-opacity=\"0.85\" stroke=\"#333\" stroke-width=\"{}\"/>",
        esc(&tip.join("\n")),
        x1 - x0,
        verdict_colour(verdict),
        if count > 1 { 1.5 } else { 0.5 }
    );
    for (k, (_, steps)) in group_slots.iter().enumerate() {
        let numbers: Vec<String> = steps.iter().map(|(n, _)| n.to_string()).collect();
        let letters: String = steps.iter().map(|(_, s)| source_letter(&s.build)).collect();
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"32\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"57\" text-anchor=\"middle\" fill=\"#fff\">{}</text>",
            x(k),
            numbers.join(","),
            x(k),
            letters
        );
    }
    h.push_str("</g>");
}

/// One slot per tested commit of the range, in range order: its
/// position and its steps (numbered in bisection order).
type Slot<'a> = (usize, Vec<(usize, &'a StepRow)>);

fn slots(r: &BisectionRecord) -> Vec<Slot<'_>> {
    let mut slots: Vec<Slot<'_>> = Vec::new();
    for (i, s) in r.steps.iter().enumerate() {
        let Some(pos) = s.position else { continue };
        match slots.iter_mut().find(|(p, _)| *p == pos) {
            Some((_, steps)) => steps.push((i + 1, s)),
            None => slots.push((pos, vec![(i + 1, s)])),
        }
    }
    slots.sort_by_key(|(p, _)| *p);
    slots
}

/// How many untested commits lie between two marks, under the line.
fn gap_count(h: &mut String, x: f64, between: usize) {
    if between > 0 {
        let _ = write!(
            h,
            "<text x=\"{x:.1}\" y=\"84\" text-anchor=\"middle\" fill=\"#777\">{between}</text>"
        );
    }
}

fn verdict_colour(verdict: &str) -> &'static str {
    match verdict {
        "good" => "#2e7d32",
        "bad" => "#c62828",
        _ => "#9e9e9e",
    }
}

fn source_letter(build: &StepBuild) -> &'static str {
    match build {
        StepBuild::Built => "B",
        StepBuild::Reused => "R",
        StepBuild::Remote => "T",
        StepBuild::Predicted => "P",
        StepBuild::Failed | StepBuild::KnownBroken | StepBuild::TransientFailure => "F",
    }
}

fn step_tooltip(n: usize, s: &StepRow) -> String {
    format!(
        "step {n}: {} {} — {} ({}), kernel {}",
        short(&s.commit),
        s.subject,
        s.verdict.as_str(),
        serde_word(&s.build),
        s.signature.as_ref().map_or("none", |k| k.short())
    )
}

fn steps(h: &mut String, r: &BisectionRecord) {
    h.push_str(
        "<section id=\"steps\"><h2>Steps</h2><table><tr><th>#</th><th>commit</th><th>subject</th><th>kernel</th>\
         <th>build</th><th>ok</th><th>crash</th><th>no info</th><th>runs now / reused</th><th>verdict</th></tr>",
    );
    for (i, s) in r.steps.iter().enumerate() {
        let build = match &s.predicted_from {
            Some(from) => format!("predicted from <code>{}</code>", short(from)),
            None => serde_word(&s.build),
        };
        let check = if s.purpose == crate::bisect::Purpose::SignatureCheck {
            " (signature check)"
        } else {
            ""
        };
        let titles = if s.titles.is_empty() {
            String::new()
        } else {
            format!("<br><small>{}</small>", esc(&s.titles.join("; ")))
        };
        let _ = write!(
            h,
            "<tr><td class=\"num\">{}</td><td><code>{}</code></td><td>{}{check}{titles}</td><td><code>{}</code></td>\
             <td><span class=\"tag {}\">{}</span></td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{} / {}</td><td class=\"{}\">{}</td></tr>",
            i + 1,
            short(&s.commit),
            esc(&s.subject),
            s.signature.as_ref().map_or("-", |k| k.short()),
            esc(&serde_word(&s.build)),
            build,
            s.ok,
            s.crash,
            s.no_info,
            s.runs_done,
            s.runs_reused,
            esc(s.verdict.as_str()),
            esc(s.verdict.as_str())
        );
    }
    h.push_str("</table></section>\n");
}

fn kernels(h: &mut String, r: &BisectionRecord) {
    h.push_str(
        "<section id=\"kernels\"><h2>Kernels</h2><p>Every distinct kernel the bisection met, with all the runs the \
         cache pools on it under this test (from this bisection, earlier ones, team members, imported syzbot logs).</p>",
    );
    if let Some(s) = &r.search {
        let _ = write!(
            h,
            "<p>Noisy search: target crash <code>{}</code>; {}; 95% credible set: {}.</p>",
            esc(&s.target.join(" | ")),
            s.probability
                .map_or("no probability".into(), |p| format!("probability of the result {p:.3}")),
            s.credible_set
                .iter()
                .map(|c| format!("<code>{}</code>", short(c)))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    h.push_str(
        "<table><tr><th>kernel signature</th><th>commits</th><th>ok</th><th>crash</th><th>no info</th>\
         <th>crash titles</th><th>runs from</th><th>culprit probability</th></tr>",
    );
    for k in &r.kernels {
        kernel_row(h, k);
    }
    h.push_str("</table></section>\n");
}

fn kernel_row(h: &mut String, k: &KernelRow) {
    let commits: Vec<String> = k.commits.iter().map(|c| format!("<code>{}</code>", short(c))).collect();
    let _ = write!(
        h,
        "<tr><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
         <td>{}</td><td>{}</td><td class=\"num\">{}</td></tr>",
        k.signature.short(),
        commits.join(" "),
        k.ok,
        k.crash,
        k.no_info,
        esc(&k.titles.join("; ")),
        esc(&k.sources.join(", ")),
        k.mass.map_or("-".to_string(), |m| format!("{m:.3}"))
    );
}

fn cost(h: &mut String, r: &BisectionRecord) {
    let t = &r.totals;
    let e = &t.effort;
    let _ = write!(
        h,
        "<section id=\"cost\"><h2>Time and cost</h2><table>\
         <tr><td>steps</td><td class=\"num\">{}</td></tr>\
         <tr><td>kernels built / reused / predicted / failed</td><td class=\"num\">{} / {} / {} / {}</td></tr>\
         <tr><td>test runs done / reused</td><td class=\"num\">{} / {}</td></tr>\
         <tr><td>seconds building / testing</td><td class=\"num\">{:.1} / {:.1}</td></tr>\
         <tr><td>seconds saved (builds / tests the cache made unnecessary)</td><td class=\"num\">{:.1} / {:.1}</td></tr>\
         <tr><td>wall time</td><td class=\"num\">{:.1} s</td></tr></table>",
        t.steps,
        t.builds_done,
        t.builds_reused,
        t.builds_predicted,
        t.builds_failed,
        e.runs_done,
        e.runs_reused,
        e.build_seconds,
        e.test_seconds,
        e.saved_build_seconds,
        e.saved_test_seconds,
        r.wall_seconds
    );
    if t.prediction_contradictions > 0 {
        let _ = write!(
            h,
            "<p class=\"note\">A real build contradicted a prediction {} time(s); prediction was turned off.</p>",
            t.prediction_contradictions
        );
    }
    if !r.notes.is_empty() {
        h.push_str("<h3>Notes</h3><ul>");
        for n in &r.notes {
            let _ = write!(h, "<li class=\"note\">{}</li>", esc(n));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>\n");
}

pub use crate::utc;

/// Where the culprit sits in a DAG: a merge that is the culprit itself,
/// and the merges it came in by.
fn merge_path(h: &mut String, c: &CulpritRow) {
    if c.combined {
        let _ = write!(
            h,
            "<p class=\"merge\">This merge is the culprit: every parent ({}) is on the other side, so the change \
             comes from combining the branches.</p>",
            std::iter::once(c.parent.as_ref())
                .flatten()
                .chain(&c.other_parents)
                .map(|p| format!("<code>{}</code>", short(p)))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !c.merged_by.is_empty() {
        h.push_str("<p>Came in by:</p><ol class=\"merges\">");
        for m in &c.merged_by {
            let _ = write!(
                h,
                "<li>merge <code>{}</code> {}</li>",
                short(&m.commit),
                esc(&m.subject)
            );
        }
        h.push_str("</ol>");
    }
}

/// Text made safe for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_795_494_183), "2026-11-24 04:23 UTC");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'</a>\u{1b}"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;\u{fffd}"
        );
    }
}
