//! Build keys and kernel signatures given by a unique prefix, as git
//! takes commits: a prefix that names nothing or more than one is an
//! error that says so, never a silent "not in the cache".
//!
//! Invariant: resolves names against the local index only; knows nothing
//! of what the caller does with them.

use super::index::{Read, CF_BUILDS, CF_KNOWN_BY_SIGNATURE, CF_RUNS, CF_SIGNATURES};
use super::{Cache, StoreError};
use crate::key::{BuildKey, Key};
use crate::signature::KernelSignature;

/// Fewest hex digits a prefix must have (as `git` asks for 4).
pub const MIN_PREFIX: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PrefixError {
    #[error("{what} {given:?} is not one: give all of it, or a prefix of at least {MIN_PREFIX} hex digits")]
    Malformed { what: &'static str, given: String },
    #[error("no {what} in the cache starts with {given}")]
    Unknown { what: &'static str, given: String },
    #[error("{what} prefix {given} is ambiguous: it starts {} and more; give more digits", .candidates.join(", "))]
    Ambiguous {
        what: &'static str,
        given: String,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Cache {
    /// The build key `given` names: all 64 hex digits, or a unique prefix of
    /// a build key the cache has a record of.
    pub fn resolve_build_key(&self, given: &str) -> Result<BuildKey, PrefixError> {
        let what = "build key";
        if let Some(key) = Key::from_hex(given) {
            return Ok(BuildKey(key));
        }
        let given = checked(given, what, 64)?;
        let hits = self.index.read(|r| r.heads(CF_BUILDS, &given, 2))?;
        let one = unique(what, &given, hits)?;
        Key::from_hex(&one)
            .map(BuildKey)
            .ok_or(PrefixError::Unknown { what, given })
    }

    /// The kernel signature `given` names: all of it (40 or 64 hex), or a
    /// unique prefix of one the cache has builds, runs or a syzbot log of.
    pub fn resolve_signature(&self, given: &str) -> Result<KernelSignature, PrefixError> {
        let what = "kernel signature";
        if let Ok(sig) = given.parse::<KernelSignature>() {
            return Ok(sig);
        }
        let given = checked(given, what, 64)?;
        let mut hits: Vec<String> = Vec::new();
        for cf in [CF_SIGNATURES, CF_RUNS, CF_KNOWN_BY_SIGNATURE] {
            for h in self.index.read(|r| r.heads(cf, &given, 2))? {
                if !hits.contains(&h) {
                    hits.push(h);
                }
            }
        }
        let one = unique(what, &given, hits)?;
        one.parse().map_err(|_| PrefixError::Unknown { what, given })
    }
}

/// Lowercase hex of a sensible length, or the error that says why not.
fn checked(given: &str, what: &'static str, max: usize) -> Result<String, PrefixError> {
    let lower = given.to_ascii_lowercase();
    let hex = lower.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || lower.len() < MIN_PREFIX || lower.len() > max {
        return Err(PrefixError::Malformed {
            what,
            given: given.to_string(),
        });
    }
    Ok(lower)
}

fn unique(what: &'static str, given: &str, mut hits: Vec<String>) -> Result<String, PrefixError> {
    match hits.len() {
        0 => Err(PrefixError::Unknown {
            what,
            given: given.to_string(),
        }),
        1 => Ok(hits.remove(0)),
        _ => Err(PrefixError::Ambiguous {
            what,
            given: given.to_string(),
            candidates: hits.iter().map(|h| h[..h.len().min(16)].to_string()).collect(),
        }),
    }
}
