//! Who wrote a team record, and whether to believe it: ed25519 signing
//! keys, the signed-record envelope (`kcache/signed/v1`,
//! `cache-schema/signed.v1.json`) and the trust policy.
//!
//! A record uploaded by a member with a key is wrapped as
//! `{"schema": "kcache/signed/v1", "key": "ed25519:<hex>", "sig": "<hex>",
//! "record": <the record>}`; the signature covers the record's canonical
//! bytes (its `serde_json` encoding, the bytes the object name's hash is
//! taken over) after the domain tag `kcache/signed/v1\0`. Hash-naming
//! already catches damage in transit; signatures say who wrote a record,
//! so that a writer with bucket credentials cannot make the others believe
//! it (`trust = "require"`).
//!
//! Invariant: knows nothing of the store or the remote; it seals bytes,
//! opens bytes and judges writers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ed25519_dalek::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};

pub const SIGNED_SCHEMA: &str = "kcache/signed/v1";
const DOMAIN: &[u8] = b"kcache/signed/v1\0";
const KEY_FILE_HEADER: &str = "kcache-signing-key-v1";

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("signing key {}: {problem}", path.display())]
    KeyFile { path: PathBuf, problem: String },
    #[error("{0:?} is not a kcache public key (ed25519: and 64 hex digits, as `kcache key-gen` prints)")]
    NotAKey(String),
}

/// A writer's public key; text form `ed25519:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// `ed25519:` and the first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        format!("ed25519:{}", &hex::encode(self.0)[..12])
    }

    fn verifying(&self) -> Option<ed25519_dalek::VerifyingKey> {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ed25519:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for PublicKey {
    type Err = TrustError;
    fn from_str(s: &str) -> Result<PublicKey, TrustError> {
        let hex_part = s
            .trim()
            .strip_prefix("ed25519:")
            .ok_or_else(|| TrustError::NotAKey(s.into()))?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| TrustError::NotAKey(s.into()))?;
        let key = PublicKey(out);
        key.verifying().ok_or_else(|| TrustError::NotAKey(s.into()))?;
        Ok(key)
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<PublicKey, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A member's signing key.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl SigningKey {
    /// Where `kcache key-gen` writes the key: beside the config file.
    pub fn default_path() -> PathBuf {
        crate::dirs::config_file().with_file_name("signing.key")
    }

    /// A new key at `path` (mode 0600; an existing key is never replaced).
    pub fn generate(path: &Path) -> Result<SigningKey, TrustError> {
        let problem = |e: std::io::Error| TrustError::KeyFile {
            path: path.to_path_buf(),
            problem: e.to_string(),
        };
        let mut seed = [0u8; 32];
        crate::random_bytes(&mut seed).map_err(problem)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(problem)?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => TrustError::KeyFile {
                    path: path.to_path_buf(),
                    problem: "exists already: kcache never replaces a key (remove it first to start over)".into(),
                },
                _ => problem(e),
            })?;
        writeln!(file, "{KEY_FILE_HEADER} {}", hex::encode(seed))
            .and_then(|()| file.sync_all())
            .map_err(problem)?;
        Ok(SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The key at `path`, or `None` when there is none.
    pub fn load(path: &Path) -> Result<Option<SigningKey>, TrustError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(TrustError::KeyFile {
                    path: path.to_path_buf(),
                    problem: e.to_string(),
                })
            }
        };
        let bad = || TrustError::KeyFile {
            path: path.to_path_buf(),
            problem: format!("not a kcache signing key (expected `{KEY_FILE_HEADER} <64 hex>`)"),
        };
        let hex_seed = text.trim().strip_prefix(KEY_FILE_HEADER).ok_or_else(bad)?.trim();
        let mut seed = [0u8; 32];
        hex::decode_to_slice(hex_seed, &mut seed).map_err(|_| bad())?;
        Ok(Some(SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.key.verifying_key().to_bytes())
    }

    /// The envelope around `record` (its canonical bytes), signed.
    pub fn seal(&self, record: &[u8]) -> Vec<u8> {
        let sig = self.key.sign(&signed_message(record));
        let record: &serde_json::value::RawValue =
            serde_json::from_slice(record).expect("a record is JSON: kcache serialized it");
        serde_json::to_vec(&Envelope {
            schema: SIGNED_SCHEMA.into(),
            key: self.public(),
            sig: hex::encode(sig.to_bytes()),
            record,
        })
        .expect("an envelope serializes")
    }
}

fn signed_message(record: &[u8]) -> Vec<u8> {
    [DOMAIN, record].concat()
}

#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    schema: String,
    key: PublicKey,
    sig: String,
    #[serde(borrow)]
    record: &'a serde_json::value::RawValue,
}

/// Who wrote a record, as far as its bytes say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Writer {
    /// A plain record (before signing, or a member without a key).
    Unsigned,
    /// Signed, and the signature verifies under this key.
    Signed(PublicKey),
    /// An envelope whose signature does not verify (tampered, or signed
    /// over other bytes): never believed.
    Forged(Option<PublicKey>),
}

/// The writer of a remote object's bytes and the record inside.
pub fn open(body: &[u8]) -> (Writer, Vec<u8>) {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(body) else {
        // An envelope that does not parse as one: a plain record, or a
        // broken envelope (which then fails as a record).
        let claims_envelope = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .is_some_and(|v| v.get("schema").and_then(|s| s.as_str()) == Some(SIGNED_SCHEMA));
        return match claims_envelope {
            true => (Writer::Forged(None), Vec::new()),
            false => (Writer::Unsigned, body.to_vec()),
        };
    };
    let record = envelope.record.get().as_bytes().to_vec();
    if envelope.schema != SIGNED_SCHEMA {
        return (Writer::Forged(Some(envelope.key)), record);
    }
    let verified = (|| {
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&envelope.sig, &mut sig).ok()?;
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        envelope.key.verifying()?.verify(&signed_message(&record), &sig).ok()
    })();
    match verified {
        Some(()) => (Writer::Signed(envelope.key), record),
        None => (Writer::Forged(Some(envelope.key)), record),
    }
}

/// What a member does with records nobody it trusts signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustMode {
    /// Only trusted writers' records are evidence: others' runs and
    /// builds are ignored (a build record whose vmlinux really has the
    /// claimed signature may still be of another commit: only a build
    /// here shows that).
    Require,
    /// Everything is used; untrusted writers are counted and said.
    Warn,
    /// Everything is used, unsigned or not (the default while no key is
    /// configured).
    Off,
}

impl std::str::FromStr for TrustMode {
    type Err = String;
    fn from_str(s: &str) -> Result<TrustMode, String> {
        crate::from_word(s).ok_or_else(|| {
            format!(
                "trust {s:?}: use {}",
                crate::words_of(&[TrustMode::Require, TrustMode::Warn, TrustMode::Off])
            )
        })
    }
}

/// What kind of record is judged (both are evidence only from trusted
/// writers under `require`; kept apart for the messages and for future
/// rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Build,
    Run,
}

/// What to do with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Believe it.
    Evidence,
    /// Drop it (counted per writer and said once).
    Ignore,
}

/// The trust settings in effect.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub mode: TrustMode,
    /// The keys whose records are evidence (a member's own key included).
    pub trusted: BTreeSet<PublicKey>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            mode: TrustMode::Off,
            trusted: BTreeSet::new(),
        }
    }
}

impl Policy {
    pub fn judge(&self, writer: &Writer, _kind: Kind) -> Use {
        match (self.mode, self.trusts(writer), writer) {
            (_, true, _) => Use::Evidence,
            (TrustMode::Off, ..) => Use::Evidence,
            // A signature that does not verify is never believed.
            (_, _, Writer::Forged(_)) => Use::Ignore,
            (TrustMode::Warn, ..) => Use::Evidence,
            // An untrusted build record is never what decides a commit's
            // kernel: a vmlinux that re-signs to the claimed signature may
            // still be another commit's (issue 27).
            (TrustMode::Require, ..) => Use::Ignore,
        }
    }

    /// Whether `writer` signed with a key this member trusts (its own
    /// included).
    pub fn trusts(&self, writer: &Writer) -> bool {
        matches!(writer, Writer::Signed(k) if self.trusted.contains(k))
    }

    /// How far records that disagree are believed, best first: a trusted
    /// writer's (0), then anyone else's (1). Records for one build key are
    /// chosen by this, never by a field their writer controls (`time`).
    pub fn rank(&self, writer: &Writer) -> u8 {
        match self.trusts(writer) {
            true => 0,
            false => 1,
        }
    }
}

/// Records judged per writer in one process: what `stats` shows and what
/// is said (once per writer) when untrusted records were met.
#[derive(Debug, Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<String, WriterCounts>>,
    /// The objects already counted: one read many times (each listing of
    /// its directory) is one record.
    seen: Mutex<BTreeSet<String>>,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct WriterCounts {
    pub used: u64,
    pub ignored: u64,
}

impl Tally {
    /// Counts the record in `object` (its name, the same at every read)
    /// once.
    pub fn count(&self, object: &str, writer: &Writer, judged: Use) {
        let first_time = self
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(object.to_string());
        if !first_time {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let c = counts.entry(writer_label(writer)).or_default();
        match judged {
            Use::Evidence => c.used += 1,
            Use::Ignore => c.ignored += 1,
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, WriterCounts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// One line per writer whose records were not all believed (and,
    /// under `warn`, per untrusted writer whose records were used).
    pub fn lines(&self, policy: &Policy) -> Vec<String> {
        let mode = crate::serde_word(&policy.mode);
        let mut out = Vec::new();
        for (w, c) in self.snapshot() {
            let dropped = c.ignored;
            if dropped > 0 {
                let why = match w.starts_with("forged") {
                    true => "the signature does not verify",
                    false => "not trusted",
                };
                out.push(format!(
                    "trust {mode}: ignored {dropped} record(s) from writer {w} ({why})"
                ));
            } else if policy.mode == TrustMode::Warn && c.used > 0 && !is_trusted_label(&w, policy) {
                out.push(format!(
                    "trust warn: used {} record(s) from untrusted writer {w}",
                    c.used
                ));
            }
        }
        out
    }
}

fn writer_label(w: &Writer) -> String {
    match w {
        Writer::Unsigned => "unsigned".into(),
        Writer::Signed(k) => k.to_string(),
        Writer::Forged(Some(k)) => format!("forged signature claiming {k}"),
        Writer::Forged(None) => "forged (a broken envelope)".into(),
    }
}

fn is_trusted_label(label: &str, policy: &Policy) -> bool {
    policy.trusted.iter().any(|k| k.to_string() == label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dir: &Path, name: &str) -> SigningKey {
        SigningKey::generate(&dir.join(name)).unwrap()
    }

    #[test]
    fn seal_and_open_round_trip_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let a = key(dir.path(), "a");
        let record = br#"{"schema":"kcache/run/v1","outcome":"ok"}"#;
        let sealed = a.seal(record);
        assert_eq!(open(&sealed), (Writer::Signed(a.public()), record.to_vec()));
        // Other bytes under the same signature.
        let text = String::from_utf8(sealed.clone())
            .unwrap()
            .replace("\"ok\"", "\"crash\"");
        assert_eq!(open(text.as_bytes()).0, Writer::Forged(Some(a.public())));
        // Another key's name on A's signature.
        let m = key(dir.path(), "m");
        let swapped = String::from_utf8(sealed)
            .unwrap()
            .replace(&a.public().to_string(), &m.public().to_string());
        assert_eq!(open(swapped.as_bytes()).0, Writer::Forged(Some(m.public())));
        // A plain record is unsigned.
        assert_eq!(open(record).0, Writer::Unsigned);
    }

    #[test]
    fn keys_are_private_files_never_replaced_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kcache/signing.key");
        let k = SigningKey::generate(&path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(SigningKey::generate(&path).is_err());
        assert_eq!(SigningKey::load(&path).unwrap().unwrap().public(), k.public());
        let text = k.public().to_string();
        assert_eq!(text.parse::<PublicKey>().unwrap(), k.public());
        assert!("ed25519:abcd".parse::<PublicKey>().is_err());
    }

    #[test]
    fn the_tally_says_each_writer_once_with_why() {
        let dir = tempfile::tempdir().unwrap();
        let (a, m) = (key(dir.path(), "a"), key(dir.path(), "m"));
        let mut p = Policy {
            mode: TrustMode::Require,
            trusted: [a.public()].into(),
        };
        let t = Tally::default();
        let (wa, wm, forged) = (
            Writer::Signed(a.public()),
            Writer::Signed(m.public()),
            Writer::Forged(Some(a.public())),
        );
        for (object, w, kind) in [
            ("a1", &wa, Kind::Run),
            ("m1", &wm, Kind::Run),
            ("m2", &wm, Kind::Run),
            ("f1", &forged, Kind::Run),
            // The same object read again (another listing): not counted twice.
            ("f1", &forged, Kind::Run),
            ("m1", &wm, Kind::Run),
        ] {
            t.count(object, w, p.judge(w, kind));
        }
        let lines = t.lines(&p);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.contains("ignored 2 record(s)") && l.contains(&m.public().to_string())));
        assert!(lines.iter().any(
            |l| l.contains("ignored 1 record(s) from writer forged") && l.contains("the signature does not verify")
        ));
        p.mode = TrustMode::Warn;
        let warned = Tally::default();
        warned.count("m1", &wm, p.judge(&wm, Kind::Run));
        warned.count("a1", &wa, p.judge(&wa, Kind::Run));
        assert_eq!(
            warned.lines(&p),
            [format!(
                "trust warn: used 1 record(s) from untrusted writer {}",
                m.public()
            )]
        );
    }

    #[test]
    fn the_policy_decides_by_mode_writer_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let (a, m) = (key(dir.path(), "a"), key(dir.path(), "m"));
        let mut p = Policy {
            mode: TrustMode::Require,
            trusted: [a.public()].into(),
        };
        let (wa, wm) = (Writer::Signed(a.public()), Writer::Signed(m.public()));
        assert_eq!(p.judge(&wa, Kind::Run), Use::Evidence);
        assert_eq!(p.judge(&wm, Kind::Run), Use::Ignore);
        // An untrusted build record never decides a commit's kernel.
        assert_eq!(p.judge(&wm, Kind::Build), Use::Ignore);
        assert_eq!((p.rank(&wa), p.rank(&wm), p.rank(&Writer::Unsigned)), (0, 1, 1));
        assert_eq!(p.judge(&Writer::Unsigned, Kind::Run), Use::Ignore);
        assert_eq!(p.judge(&Writer::Forged(Some(a.public())), Kind::Build), Use::Ignore);
        p.mode = TrustMode::Warn;
        assert_eq!(p.judge(&wm, Kind::Run), Use::Evidence);
        assert_eq!(p.judge(&Writer::Forged(None), Kind::Run), Use::Ignore);
        p.mode = TrustMode::Off;
        assert_eq!(p.judge(&Writer::Forged(None), Kind::Run), Use::Evidence);
        // Revocation: out of the set, ignored at once.
        p.mode = TrustMode::Require;
        p.trusted.clear();
        assert_eq!(p.judge(&wa, Kind::Run), Use::Ignore);
    }
}
