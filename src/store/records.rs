//! The records kcache keeps, as stored (JSON) and as described by the
//! schemas in `cache-schema/`. Each carries its schema id so a reader can
//! refuse a version it does not know.

use crate::signature::KernelSignature;
use serde::{Deserialize, Serialize};

use crate::key::{BuildKey, CommitId, Key, TestKey, TreeId};

pub const BUILD_SCHEMA: &str = "kcache/build/v1";
pub const SIGNATURE_SCHEMA: &str = "kcache/signature/v1";
pub const RUN_SCHEMA: &str = "kcache/run/v1";
pub const KNOWN_SIGNATURE_SCHEMA: &str = "kcache/known-signature/v1";
pub const INPUT_SET_SCHEMA: &str = "kcache/input-set/v1";
pub const PREBUILD_SCHEMA: &str = "kcache/prebuild/v1";

/// One artifact of a build.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Artifact {
    /// Path relative to the build tree (`vmlinux`, `arch/x86/boot/bzImage`).
    pub name: String,
    pub blake3: Key,
    pub size: u64,
    /// Restored with the executable bit (a bootable image, a test binary).
    #[serde(default)]
    pub executable: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Ok,
    Failed,
}

/// What one build key produced. Keyed by the build key (and, when a build
/// key ever yields two signatures, by the signature as well).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BuildRecord {
    pub schema: String,
    pub build_key: BuildKey,
    pub status: BuildStatus,
    /// Kernel signature (status `ok` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<KernelSignature>,
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
    /// The end of the build output (status `failed` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_tail: Option<String>,
    pub commit: CommitId,
    pub tree: TreeId,
    pub config_digest: Key,
    pub toolchain: String,
    pub arch: String,
    pub recipe_digest: Key,
    pub build_seconds: f64,
    pub host: String,
    /// Unix seconds.
    pub time: u64,
    /// Not built: no file the named build read differs at this commit,
    /// so its kernel (signature, artifacts) is this commit's (`prebuild`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted_from: Option<BuildKey>,
    /// Who wrote it, when it came from the team remote: the signing key
    /// (`ed25519:<hex>`) or `unsigned`. Absent: written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
    /// The BLAKE3 of each patch applied on `tree` before the build, in
    /// order (part of the build key); absent for a plain build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Key>,
    /// The tree the patches produced (what was built), when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patched_tree: Option<TreeId>,
}

/// What one `kcache prebuild` of a range with a recipe did (newest run
/// per range and recipe), for `kcache stats`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PrebuildRecord {
    pub schema: String,
    /// The range as given (`A..B`) and the commit ids it resolved to.
    pub range: String,
    pub base: Option<CommitId>,
    pub tip: CommitId,
    pub recipe_digest: Key,
    pub config_digest: Key,
    /// Commits in the range, and those the run was asked for (`--every`).
    pub commits: usize,
    pub selected: usize,
    /// Of the selected: already in the cache, built now, predicted
    /// (recorded without a build), failing to build (the commit's fault),
    /// and not built for a reason that was not (retried next time).
    pub cached: usize,
    pub built: usize,
    pub predicted: usize,
    pub failed: usize,
    pub transient: usize,
    pub seconds: f64,
    pub host: String,
    pub time: u64,
}

impl PrebuildRecord {
    /// Selected commits the cache now has a record for.
    pub fn covered(&self) -> usize {
        self.cached + self.built + self.predicted + self.failed
    }
}

impl BuildRecord {
    /// The signature record this build implies (none for a failed build).
    pub fn signature_record(&self) -> Option<SignatureRecord> {
        Some(SignatureRecord {
            schema: SIGNATURE_SCHEMA.into(),
            signature: self.signature.clone()?,
            build_key: self.build_key,
            commit: self.commit.clone(),
            artifacts: self.artifacts.clone(),
            time: self.time,
        })
    }
}

/// That a build key produced a signature: one record per (signature,
/// build key), so concurrent writers never read-modify-write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SignatureRecord {
    pub schema: String,
    pub signature: KernelSignature,
    pub build_key: BuildKey,
    pub commit: CommitId,
    pub artifacts: Vec<Artifact>,
    pub time: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Ok,
    Crash,
    Infra,
    BootFailed,
    Skip,
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Outcome, String> {
        crate::from_word(s).ok_or_else(|| {
            format!(
                "unknown outcome {s:?}: use {}",
                crate::words_of(&[
                    Outcome::Ok,
                    Outcome::Crash,
                    Outcome::Infra,
                    Outcome::BootFailed,
                    Outcome::Skip
                ])
            )
        })
    }
}

/// One test run: append-only evidence, keyed by (signature, test key, run id).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub schema: String,
    pub signature: KernelSignature,
    pub test_key: TestKey,
    /// Unique per run (time, host, process and a random part).
    pub run_id: RunId,
    pub outcome: Outcome,
    /// Crash title (outcome `crash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub seconds: f64,
    pub host: String,
    pub time: u64,
    /// The commit whose kernel was tested (evidence applies to its signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitId>,
    /// The run's console output (a blob: the `KCACHE_CONSOLE` file the
    /// test left, or its stdout and stderr; the last 8 MiB), or the log
    /// given to `record-run --log`. Re-titled with [`crate::title`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_blob: Option<Key>,
    /// Where the run came from when not from a kcache test (`syzbot-log:FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Who wrote it, when it came from the team remote: the signing key
    /// (`ed25519:<hex>`) or `unsigned`. Absent: written here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writer: Option<String>,
}

impl RunRecord {
    /// A run done here and now (not imported from a log), with a fresh id.
    pub fn new(
        signature: &KernelSignature,
        test_key: TestKey,
        outcome: Outcome,
        title: Option<String>,
        seconds: f64,
        commit: Option<&CommitId>,
    ) -> RunRecord {
        RunRecord {
            schema: RUN_SCHEMA.into(),
            signature: signature.clone(),
            test_key,
            run_id: RunId::fresh(),
            outcome,
            title,
            seconds,
            host: host(),
            time: now(),
            commit: commit.cloned(),
            log_blob: None,
            source: None,
            writer: None,
        }
    }
}

/// A commit's signature learned without building it (from a syzbot log):
/// good for equality and no-op reasoning, never for restoring artifacts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KnownSignature {
    pub schema: String,
    pub commit: CommitId,
    /// The compiler line the log names.
    pub compiler: String,
    pub signature: KernelSignature,
    pub source: String,
    pub time: u64,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// This machine's host name, for provenance.
pub fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string())
}

hex_string_id!(
    /// A test run's id, unique per run: `<nanoseconds>-<host tag>-<random>`
    /// for a run done by kcache, `log-<digest>` for one imported from a
    /// syzbot log (the same log imported twice gives the same ids).
    RunId
);

impl RunId {
    /// An id no other process or host will pick: time, host, pid, random.
    pub fn fresh() -> RunId {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut random = [0u8; 8];
        let _ = crate::random_bytes(&mut random);
        let tag = blake3::hash(format!("{}:{}", host(), std::process::id()).as_bytes());
        RunId(format!("{nanos:032x}-{}-{}", &tag.to_hex()[..8], hex::encode(random)))
    }

    /// The id of a run a syzbot log reports, from a digest of where in
    /// the log it was read: importing the log again adds nothing.
    pub fn of_log_run(digest: &Key) -> RunId {
        RunId(format!("log-{}", &digest.to_hex()[..32]))
    }
}

/// What one build read from its tree, as paths relative to the tree root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputSet {
    pub schema: String,
    pub build_key: BuildKey,
    pub commit: CommitId,
    /// False when the build read files kbuild does not list (see
    /// `kernel::inputs::incomplete_reason`): such a set never predicts anything.
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incomplete_reason: Option<String>,
    /// Sorted, unique, relative to the tree root.
    pub files: Vec<String>,
    /// The directories kbuild descended into (each holds a `.cmd` file),
    /// sorted, relative to the tree root (`""` is the root): their
    /// Makefiles and Kbuild files are inputs of the build.
    #[serde(default)]
    pub dirs: Vec<String>,
}
