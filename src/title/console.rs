//! A test run's console on disk: the `crash: TITLE` line a test printed,
//! and the end of its console (the `KCACHE_CONSOLE` file or its output),
//! which a run keeps.
//!
//! Invariant: reads files only; never fails a run (an unreadable console
//! is an empty one).

use std::path::Path;

/// How much of a run's console is kept (its end: where the crash is).
pub const CONSOLE_KEEP_BYTES: u64 = 8 << 20;

/// The last `crash: TITLE` line of a test's output (read as it streams: a
/// long output is never held whole; invalid UTF-8 is read lossily).
pub fn printed_title(output: &Path) -> Option<String> {
    use std::io::BufRead;
    let file = std::fs::File::open(output).ok()?;
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    let mut title = None;
    while reader.read_until(b'\n', &mut line).ok()? > 0 {
        let text = String::from_utf8_lossy(&line);
        if let Some(t) = text.strip_prefix("crash: ") {
            title = Some(t.trim().to_string());
        }
        line.clear();
    }
    title
}

/// The last [`CONSOLE_KEEP_BYTES`] of a console file (nothing when it
/// cannot be read: the console is a record of the run, not its verdict).
pub fn tail(path: &Path) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > CONSOLE_KEEP_BYTES && f.seek(SeekFrom::Start(len - CONSOLE_KEEP_BYTES)).is_err() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let _ = f.take(CONSOLE_KEEP_BYTES).read_to_end(&mut out);
    out
}
