//! Human-readable renderings of the library's results. JSON output is the
//! results' own `Serialize` form; this module only does text.

use std::fmt::Write;
use std::path::Path;

use crate::signature::{diff::Change, DiffReport};

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
