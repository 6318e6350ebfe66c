//! `kcache diff`: why two builds got different signatures.
//!
//! Sections are paired by name (the n-th section of a name with the n-th of
//! the same name). Inside a changed section the symbols of both `.symtab`s
//! are paired the same way and their bytes compared, which names the
//! functions and objects a "comment-only" commit really changed (line
//! numbers baked into `__bug_table` or `WARN` strings, for instance).

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::{ElfFile, HashedSection, SignError, Signature, Storage, Symbol};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Changed,
    Added,
    Removed,
}

#[derive(Debug, Clone, Serialize)]
pub struct SymbolChange {
    pub name: String,
    pub change: Change,
    pub size_a: Option<u64>,
    pub size_b: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionChange {
    pub name: String,
    pub change: Change,
    pub size_a: Option<u64>,
    pub size_b: Option<u64>,
    pub sha256_a: Option<String>,
    pub sha256_b: Option<String>,
    /// Symbols whose bytes differ, appear or vanish within this section.
    pub symbols: Vec<SymbolChange>,
    /// How many more changed symbols `--all` would list.
    pub symbols_omitted: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub a: Signature,
    pub b: Signature,
    pub equal: bool,
    pub sections: Vec<SectionChange>,
    /// Whether both files had a symbol table to compare.
    pub symbols_compared: bool,
}

/// Compares the hashed sections of `a` and `b`; at most `max_symbols` changed
/// symbols are listed per section (`None`: all).
pub fn diff_files(a: &Path, b: &Path, max_symbols: Option<usize>) -> Result<DiffReport, SignError> {
    let fa = ElfFile::open(a)?;
    let fb = ElfFile::open(b)?;
    let (ra, rb) = (fa.report()?, fb.report()?);
    let syms_a = fa.symbols()?;
    let syms_b = fb.symbols()?;
    let symbols_compared = !syms_a.is_empty() && !syms_b.is_empty();
    let by_name_b = occurrence_keys(&rb.sections, |s| s.section.name.as_str());
    let mut matched_b = vec![false; rb.sections.len()];
    let mut sections = Vec::new();
    for (key, sa) in occurrence_keys(&ra.sections, |s| s.section.name.as_str()) {
        let Some(&(_, sb)) = by_name_b.iter().find(|(k, _)| *k == key) else {
            sections.push(one_sided(sa, Change::Removed));
            continue;
        };
        matched_b[index_of(&rb.sections, sb)] = true;
        if sa.sha256 == sb.sha256 {
            continue;
        }
        let mut change = SectionChange {
            name: sa.section.name.clone(),
            change: Change::Changed,
            size_a: Some(sa.section.size),
            size_b: Some(sb.section.size),
            sha256_a: Some(hex::encode(sa.sha256)),
            sha256_b: Some(hex::encode(sb.sha256)),
            symbols: Vec::new(),
            symbols_omitted: 0,
        };
        if symbols_compared {
            let mut all = changed_symbols(&fa, sa, &syms_a, &fb, sb, &syms_b);
            // What a reviewer looks for first: symbols that appeared,
            // vanished or changed size. Same-size changes follow (often
            // only moved addresses: one grown function shifts everything
            // after it), in section order as before.
            all.sort_by_key(|y| y.change == Change::Changed && y.size_a == y.size_b);
            let keep = max_symbols.unwrap_or(usize::MAX).min(all.len());
            change.symbols_omitted = all.len() - keep;
            all.truncate(keep);
            change.symbols = all;
        }
        sections.push(change);
    }
    for (i, sb) in rb.sections.iter().enumerate() {
        if !matched_b[i] {
            sections.push(one_sided(sb, Change::Added));
        }
    }
    Ok(DiffReport {
        a: ra.signature,
        b: rb.signature,
        equal: ra.signature == rb.signature,
        sections,
        symbols_compared,
    })
}

fn index_of(all: &[HashedSection], s: &HashedSection) -> usize {
    all.iter().position(|x| std::ptr::eq(x, s)).unwrap_or(0)
}

/// Keys items by (name, n-th occurrence of that name).
fn occurrence_keys<T>(items: &[T], name: impl Fn(&T) -> &str) -> Vec<((String, usize), &T)> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    items
        .iter()
        .map(|item| {
            let n = name(item).to_string();
            let count = seen.entry(n.clone()).or_default();
            *count += 1;
            ((n, *count), item)
        })
        .collect()
}

fn one_sided(s: &HashedSection, change: Change) -> SectionChange {
    let (size, sha) = (Some(s.section.size), Some(hex::encode(s.sha256)));
    let removed = change == Change::Removed;
    SectionChange {
        name: s.section.name.clone(),
        change,
        size_a: if removed { size } else { None },
        size_b: if removed { None } else { size },
        sha256_a: if removed { sha.clone() } else { None },
        sha256_b: if removed { None } else { sha },
        symbols: Vec::new(),
        symbols_omitted: 0,
    }
}

fn changed_symbols(
    fa: &ElfFile,
    sa: &HashedSection,
    syms_a: &[Symbol],
    fb: &ElfFile,
    sb: &HashedSection,
    syms_b: &[Symbol],
) -> Vec<SymbolChange> {
    let in_a: Vec<&Symbol> = syms_a.iter().filter(|s| s.section == sa.section.index).collect();
    let in_b: Vec<&Symbol> = syms_b.iter().filter(|s| s.section == sb.section.index).collect();
    let keyed_b: HashMap<(String, usize), &Symbol> = occurrence_keys(&in_b, |s| s.name.as_str())
        .into_iter()
        .map(|(k, s)| (k, *s))
        .collect();
    let mut out = Vec::new();
    let mut seen_b = std::collections::HashSet::new();
    for (key, a) in occurrence_keys(&in_a, |s| s.name.as_str()) {
        match keyed_b.get(&key) {
            None => out.push(symbol_change(a.name.clone(), Change::Removed, Some(a.size), None)),
            Some(b) => {
                seen_b.insert(key);
                if symbol_bytes(fa, sa, a) != symbol_bytes(fb, sb, b) {
                    out.push(symbol_change(
                        a.name.clone(),
                        Change::Changed,
                        Some(a.size),
                        Some(b.size),
                    ));
                }
            }
        }
    }
    for (key, b) in occurrence_keys(&in_b, |s| s.name.as_str()) {
        if !seen_b.contains(&key) {
            out.push(symbol_change(b.name.clone(), Change::Added, None, Some(b.size)));
        }
    }
    out
}

fn symbol_change(name: String, change: Change, size_a: Option<u64>, size_b: Option<u64>) -> SymbolChange {
    SymbolChange {
        name,
        change,
        size_a,
        size_b,
    }
}

/// The symbol's bytes inside its section, or `None` when they cannot be
/// located (compressed section, symbol outside the section's range).
fn symbol_bytes<'f>(file: &'f ElfFile, section: &HashedSection, sym: &Symbol) -> Option<&'f [u8]> {
    if section.section.storage != Storage::Plain {
        return None;
    }
    let start = sym.value.checked_sub(section.section.addr)?;
    let end = start.checked_add(sym.size)?;
    file.raw(&section.section)
        .get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)
}
