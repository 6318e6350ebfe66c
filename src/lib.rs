//! kcache: a content-addressed build cache and bisect accelerator for Linux
//! kernel bisection. The bisection is four rooms: [`search`] (the search
//! model and its simulator: pure, no I/O), [`exec`] (the evaluation of
//! commits: builds, tests, run and build slots, speculation, prediction),
//! [`bisect`] (the drivers with their opening, closing, log and record) and
//! [`store`] (the cache); the CLI (`src/main.rs`, `src/cli/`) only parses,
//! calls the library and prints what [`report`] renders.
//!
//! See `docs/architecture.md` for the bird's-eye view, the code map with
//! one invariant per module, and the layering rules (enforced by
//! `tests/layering.rs`).

/// The one way kcache shortens a commit id, signature or key for people:
/// its first 12 hex digits, as `git log --abbrev=12` (the whole string
/// when shorter; never a panic on odd input).
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `YYYY-MM-DD HH:MM UTC` of unix seconds (civil-from-days, no time crate).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let (hh, mm) = ((secs % 86_400) / 3600, (secs % 3600) / 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// Declares an identifier held as the hex string git or syzkaller prints:
/// serialized as that string (records stay as they are), read as a `str`,
/// shown as itself, shortened by [`short_id`]. Construction is each
/// type's own business (from git's output, or parsed and checked).
macro_rules! hex_string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }

            pub fn short(&self) -> &str {
                $crate::short_id(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{:?}", self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

pub mod bisect;
pub mod buildenv;
pub mod child;
pub mod config;
pub mod crash;
pub mod dirs;
pub mod engine;
pub mod exec;
pub mod git;
pub mod import;
pub mod judge;
pub mod kernel;
pub mod key;
pub mod prebuild;
pub mod report;
pub mod search;
pub mod signature;
pub mod store;
pub mod syzlog;
pub mod title;
pub mod trust;
pub mod vm;

use std::sync::atomic::{AtomicBool, Ordering};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences [`notice`] (under `--json`: stderr then carries only errors
/// and [`warn`]ings, never progress).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Information the user should see while it happens, not a problem: a
/// lock wait, a slow remote. Goes to stderr unless quiet.
pub fn notice(message: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("kcache: {message}");
    }
}

/// A problem that did not stop the command: a non-reproducible build, a
/// remote that is down or served a bad object, runs that could not be
/// recorded. Always goes to stderr, `--json` or not.
pub fn warn(message: &str) {
    eprintln!("kcache: {message}");
    let mut said = WARNINGS.lock().unwrap_or_else(|e| e.into_inner());
    if said.len() < MAX_KEPT_WARNINGS && !said.iter().any(|w| w == message) {
        said.push(message.to_string());
    }
}

/// Warnings are kept (once each) for the bisection's record, so its report
/// lists the non-obvious events: a non-reproducible build, a remote that
/// went down, a record that was refuted.
static WARNINGS: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
const MAX_KEPT_WARNINGS: usize = 100;

/// Every distinct warning this process gave so far, in order.
pub fn warnings() -> Vec<String> {
    WARNINGS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// An enum's name as its JSON has it (`read-only`, `command-line`): the
/// word users see, never Rust's `Debug` spelling.
pub(crate) fn serde_word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

/// The enum value whose JSON word is `word`: serde's names are the one
/// definition of the words, for parsing as for writing.
pub(crate) fn from_word<T: serde::de::DeserializeOwned>(word: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(word.to_string())).ok()
}

/// `a, b or c`: the words of `all` as their JSON has them, for messages
/// that say what a setting takes.
pub(crate) fn words_of<T: serde::Serialize>(all: &[T]) -> String {
    let words: Vec<String> = all.iter().map(serde_word).collect();
    match words.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `--json` shows pairs as objects with named fields, never as 2-element
/// arrays; these keep the Rust side's tuples.
pub(crate) mod serde_pairs {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::key::{CommitId, Key};
    use crate::signature::KernelSignature;

    #[derive(Serialize, Deserialize)]
    struct NamedFile {
        path: String,
        blake3: Key,
    }

    /// `[(path, blake3)]` as `[{"path": .., "blake3": ..}]`.
    pub mod named_files {
        use super::*;

        pub fn serialize<S: Serializer>(v: &[(String, Key)], s: S) -> Result<S::Ok, S::Error> {
            s.collect_seq(v.iter().map(|(path, blake3)| NamedFile {
                path: path.clone(),
                blake3: *blake3,
            }))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, Key)>, D::Error> {
            Ok(Vec::<NamedFile>::deserialize(d)?
                .into_iter()
                .map(|f| (f.path, f.blake3))
                .collect())
        }
    }

    #[derive(Serialize)]
    struct Parent<'a> {
        commit: &'a CommitId,
        signature: &'a Option<KernelSignature>,
    }

    /// `[(commit, signature)]` as `[{"commit": .., "signature": ..}]`.
    pub fn parents<S: Serializer>(v: &[(CommitId, Option<KernelSignature>)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|(commit, signature)| Parent { commit, signature }))
    }

    /// `[(name, value)]` as `{"name": value, ...}`.
    pub fn map<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(v.iter().map(|(k, v)| (k, v)))
    }
}

/// A `--json` document: `schema` names the shape and its version; the
/// body's own fields follow.
#[derive(serde::Serialize)]
pub struct Versioned<'a, T: serde::Serialize> {
    pub schema: &'static str,
    #[serde(flatten)]
    pub body: &'a T,
}

/// Bytes from the kernel's random source (run ids, signing keys).
pub(crate) fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Outcome, RemoteMode};
    use crate::trust::TrustMode;

    #[test]
    fn enums_parse_the_words_they_write_and_say_them_on_a_typo() {
        for o in [
            Outcome::Ok,
            Outcome::Crash,
            Outcome::Infra,
            Outcome::BootFailed,
            Outcome::Skip,
        ] {
            assert_eq!(serde_word(&o).parse::<Outcome>(), Ok(o));
        }
        for m in [RemoteMode::ReadWrite, RemoteMode::ReadOnly] {
            assert_eq!(serde_word(&m).parse::<RemoteMode>(), Ok(m));
        }
        for t in [TrustMode::Require, TrustMode::Warn, TrustMode::Off] {
            assert_eq!(serde_word(&t).parse::<TrustMode>(), Ok(t));
        }
        assert_eq!(
            "maybe".parse::<Outcome>(),
            Err("unknown outcome \"maybe\": use ok, crash, infra, boot-failed or skip".to_string())
        );
        assert_eq!(
            "rw".parse::<RemoteMode>(),
            Err("unknown remote mode \"rw\": use read-write or read-only".to_string())
        );
        assert_eq!(
            "strict".parse::<TrustMode>(),
            Err("trust \"strict\": use require, warn or off".to_string())
        );
    }
}
