//! How the CLI shows things: results as text or `--json` documents,
//! progress (timestamped lines, held back under `--json`; the prebuild
//! bar), uploads left undone. Binary-only, like `args` and `resolve`.
//!
//! Invariant: prints only; what is printed comes from the library (texts
//! from `kcache::report`, JSON from each result's `Serialize`).

use std::io::Write;

use serde::Serialize;

use kcache::bisect;
use kcache::exec::CommitEvaluator;
use kcache::git::Repo;
use kcache::store::Cache;

use crate::args::SearchArgs;

/// How a result is printed under `--json`: a document with a `schema`
/// field naming its shape and version (`kcache/<command>/v1`, see the
/// README) on one line or indented, or the bare record.
#[derive(Clone, Copy)]
enum Json {
    Line(&'static str),
    Pretty(&'static str),
    Record,
    RecordPretty,
}

impl Json {
    fn render<T: serde::Serialize>(self, body: &T) -> serde_json::Result<String> {
        match self {
            Json::Line(schema) => serde_json::to_string(&kcache::Versioned { schema, body }),
            Json::Pretty(schema) => serde_json::to_string_pretty(&kcache::Versioned { schema, body }),
            Json::Record => serde_json::to_string(body),
            Json::RecordPretty => serde_json::to_string_pretty(body),
        }
    }
}

/// Where a command's result goes: `Out(json)` prints its JSON under
/// `--json`, else its text (from `kcache::report`, made only then).
#[derive(Clone, Copy)]
pub struct Out(pub bool);

impl Out {
    /// A `--json` document on one line.
    pub fn line<T: Serialize>(self, schema: &'static str, body: &T, text: impl FnOnce() -> String) -> Printed {
        self.emit(Json::Line(schema), body, text)
    }

    /// A `--json` document, indented.
    pub fn pretty<T: Serialize>(self, schema: &'static str, body: &T, text: impl FnOnce() -> String) -> Printed {
        self.emit(Json::Pretty(schema), body, text)
    }

    /// A record as stored (its own `schema` field), on one line.
    pub fn record<T: Serialize>(self, body: &T, text: impl FnOnce() -> String) -> Printed {
        self.emit(Json::Record, body, text)
    }

    /// A record as stored, indented.
    pub fn record_pretty<T: Serialize>(self, body: &T, text: impl FnOnce() -> String) -> Printed {
        self.emit(Json::RecordPretty, body, text)
    }

    fn emit<T: Serialize>(self, shape: Json, body: &T, text: impl FnOnce() -> String) -> Printed {
        let mut out = std::io::stdout().lock();
        match self.0 {
            true => writeln!(out, "{}", shape.render(body)?)?,
            false => write!(out, "{}", text())?,
        }
        Ok(())
    }
}

pub type Printed = anyhow::Result<()>;

/// Waits for uploads to the remote and says what could not be uploaded.
pub fn finish_uploads(cache: &Cache) {
    match cache.finish() {
        Ok(r) => kcache::report::uploads_left(&r)
            .iter()
            .for_each(|left| eprintln!("kcache: {left}")),
        Err(e) => eprintln!("kcache: {e}"),
    }
}

/// Commits done and left with an ETA on stderr (hidden under --json).
pub fn prebuild_bar(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("prebuild [{bar:30}] {pos}/{len} commits  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Runs the chosen search, printing timestamped progress to stderr; when
/// `quiet` (`--json` without `-v`) the progress is held back and printed
/// only if the bisection fails, as the story of the error.
pub fn search_with_progress(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &bisect::Options,
    search: &SearchArgs,
    quiet: bool,
) -> anyhow::Result<bisect::entry::Finished> {
    let start = std::time::Instant::now();
    let mut held = Vec::new();
    let mut progress = |line: &str| {
        let line = format!("[{:>8.1}s] {line}", start.elapsed().as_secs_f64());
        if quiet {
            held.push(line);
        } else {
            eprintln!("{line}");
        }
    };
    let finished = bisect::entry::run(
        repo,
        cache,
        evaluator,
        opts,
        search.policy.into(),
        &search.noisy()?,
        &mut progress,
    );
    if finished.is_err() {
        held.iter().for_each(|line| eprintln!("{line}"));
    }
    Ok(finished?)
}

/// An error as one line: each cause once (a library error that already
/// says its cause is not followed by the same words again), then what to
/// do about an OS error a user can act on.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let said = cause.to_string();
        if out.contains(&said) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&said);
    }
    if let Some(advice) = e
        .chain()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .and_then(os_error_advice)
    {
        if !out.contains(advice) {
            out.push_str(&format!("\n  {advice}"));
        }
    }
    out
}

/// What to do about an OS error, where there is something to do.
fn os_error_advice(e: &std::io::Error) -> Option<&'static str> {
    Some(match e.raw_os_error()? {
        libc::EROFS | libc::EACCES | libc::EPERM => {
            "kcache may not write there: give a directory it may write (--cache-dir / KCACHE_DIR for the cache), \
             or fix the permissions"
        }
        libc::ENOSPC | libc::EDQUOT => {
            "the disk is full: free space on that file system (`kcache gc --max-size SIZE` frees the cache's)"
        }
        libc::ENOENT => "no such file or directory: check the path",
        libc::ENOTDIR => "a directory was expected but a file is there: check the path",
        _ => return None,
    })
}
