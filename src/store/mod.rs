//! The cache: a content-addressed blob store plus a RocksDB index.
//!
//! Layout under the cache directory (see `cache-schema/README.md`):
//! `index/` (RocksDB), `blobs/` (zstd blobs by BLAKE3), `tmp/` (blobs being
//! written), `quarantine/` (corrupt blobs, kept for inspection), `vm/` (the
//! reproducer harness's work files, `crate::vm::workdir`: counted, checked
//! and evicted by `stats`, `verify` and `gc`, never named by a record).
//!
//! Invariant: a record is written only after every blob it names is
//! durable, so no record ever points at a blob that was never stored.
//! Blobs can later be evicted (`gc`); eviction writes a marker first, so a
//! missing blob is always either evicted (said so) or corruption (reported
//! by `verify`).
//!
//! By concept: `mod.rs` opens the cache and holds the write path every
//! record goes through (one fsynced batch, pending counters included);
//! `builds` (build records, artifacts, restore), `runs` (test runs and
//! pooling), `maintenance` (stats, gc, verify, salvage), `errors`;
//! beneath them `index` (RocksDB), `blob` (zstd blobs), `remote`
//! (S3-compatible tier), `upload` (the background upload queue),
//! `records` (the on-disk record types), `counters`.

mod bisections;
pub mod blob;
mod builds;
pub mod counters;
mod errors;
pub mod index;
mod index_swap;
mod maintenance;
mod prefix;
pub mod records;
pub mod remote;
mod runs;
mod upload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::key::{BuildKey, Key, TestKey};
use crate::signature::KernelSignature;
pub use bisections::BisectionId;
pub use blob::BlobStore;
pub use builds::{Forgotten, Restored, Unrestorable};
pub use counters::Counter;
use counters::Pending;
pub use errors::StoreError;
use index::{
    Index, Read, Reader, CF_BUILDS, CF_EVICTED, CF_INPUT_SETS, CF_KNOWN_BY_SIGNATURE, CF_PENDING, CF_RUNS,
    CF_SIGNATURES,
};
pub use maintenance::{GcReport, OrphanBlob, RecordCounts, Salvage, Stats, VerifyReport};
pub use prefix::PrefixError;
pub use records::*;
pub use runs::run_key;
pub use upload::SyncReport;

/// The lock file inside a test's artifacts directory, held while it runs.
pub const ARTIFACTS_LOCK: &str = ".kcache-in-use";
pub use remote::{Mode as RemoteMode, Remote};

/// Prefix of the directories tests run in under the cache.
pub const ARTIFACTS_PREFIX: &str = "artifacts-";

#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
    blobs: BlobStore,
    index: Index,
    remote: Option<Arc<Remote>>,
    uploads: Arc<upload::Uploads>,
    counts: Arc<Counts>,
    /// The blob last stored per artifact name in this process: the base
    /// the next build's same-named artifact is stored as a delta against
    /// (a bisection's or prebuild's previous build is a near neighbour).
    recent: Arc<std::sync::Mutex<std::collections::HashMap<String, Key>>>,
    /// Whose runs copied from the remote are still evidence (revocation
    /// applies to local copies too, with or without a remote this time).
    policy: Option<Arc<crate::trust::Policy>>,
}

/// Counter deltas not yet written, and where they go: written with the
/// next record, or when the last handle on the cache drops.
struct Counts {
    index: Index,
    pending: Pending,
}

impl Drop for Counts {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            // Counters are statistics: a cache that cannot take them now
            // (read-only, damaged) loses them rather than failing the exit.
            let deltas = self.pending.take();
            let _ = self.index.write(|w| {
                for (c, d) in deltas {
                    w.add(c, d);
                }
                Ok(())
            });
        }
    }
}

/// A build's artifacts with whether each can still be restored.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactState {
    #[serde(flatten)]
    pub artifact: Artifact,
    pub available: bool,
    pub evicted: bool,
}

impl Cache {
    pub fn open(dir: &Path) -> Result<Cache, StoreError> {
        Cache::open_with_remote(dir, None)
    }

    /// A cache that must already exist (commands that only read: a typo in
    /// `--cache-dir` is an error, not a new empty cache).
    pub fn open_existing(dir: &Path, remote: Option<Remote>) -> Result<Cache, StoreError> {
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::NotADirectory(dir.to_path_buf()));
        }
        // `kcache repro` alone leaves only the harness's work files: a
        // cache too (gc and verify must reach them).
        // A repair killed between its renames leaves the index as
        // `index.repaired` (the next open puts it back in place).
        let index = dir.join("index");
        if !index.is_dir() && !index_swap::repaired(&index).is_dir() && !dir.join(crate::vm::workdir::DIR).is_dir() {
            return Err(StoreError::NoCache(dir.to_path_buf()));
        }
        Cache::open_with_remote(dir, remote)
    }

    /// A cache with a remote tier behind the local one.
    pub fn open_with_remote(dir: &Path, remote: Option<Remote>) -> Result<Cache, StoreError> {
        if dir.exists() && !dir.is_dir() {
            return Err(StoreError::NotADirectory(dir.to_path_buf()));
        }
        // RocksDB fails on such a path with an error that reads as damage.
        if dir.to_str().is_none() {
            return Err(StoreError::NotUtf8(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOSPC) => StoreError::NoSpace {
                path: dir.join("index"),
            },
            _ => StoreError::io(dir, e),
        })?;
        // Absolute, so paths under it mean the same from any directory
        // (git resolves a worktree path relative to the repository).
        let dir = &std::fs::canonicalize(dir).map_err(|e| StoreError::io(dir, e))?;
        if let Some(r) = &remote {
            r.remember_outages_in(dir.join("remote-down"));
        }
        let index = Index::new(&dir.join("index"));
        Ok(Cache {
            dir: dir.to_path_buf(),
            blobs: BlobStore::new(dir),
            counts: Arc::new(Counts {
                index: index.clone(),
                pending: Pending::default(),
            }),
            index,
            remote: remote.map(Arc::new),
            uploads: Arc::default(),
            recent: Arc::default(),
            policy: None,
        })
    }

    /// Keeps the index open between operations until another process asks
    /// for it (a long bisection: see [`index`]'s lease).
    pub fn hold_index(&self) {
        self.index.hold();
    }

    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref()
    }

    /// The remote, when this process may write to it.
    fn writable_remote(&self) -> Option<&Arc<Remote>> {
        self.remote.as_ref().filter(|r| r.writable())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Starts uploading these pending entries in the background.
    fn upload_later(&self, pending: Vec<String>) {
        if let Some(remote) = self.writable_remote() {
            if !pending.is_empty() {
                self.uploads.start(remote.clone(), self.clone_local(), pending);
            }
        }
    }

    /// This cache without its remote (what upload tasks read from).
    fn clone_local(&self) -> Cache {
        Cache {
            dir: self.dir.clone(),
            blobs: self.blobs.clone(),
            index: self.index.clone(),
            remote: None,
            uploads: Arc::default(),
            recent: self.recent.clone(),
            counts: self.counts.clone(),
            policy: self.policy.clone(),
        }
    }

    /// Judges runs copied from the remote by `policy` (the remote's own,
    /// when one is configured, otherwise none).
    pub fn with_trust(mut self, policy: crate::trust::Policy) -> Cache {
        self.policy = Some(Arc::new(policy));
        self
    }

    /// Uploads everything still queued (from this or earlier processes).
    pub fn sync(&self) -> Result<upload::SyncReport, StoreError> {
        let Some(remote) = self.writable_remote() else {
            return Ok(upload::SyncReport::default());
        };
        // An explicit sync tries the remote even if it was down a minute
        // ago, and one that answers and takes every upload is forgotten as
        // down for the next processes too.
        remote.reset_down();
        remote.probe();
        let staged = remote.clean_staged();
        if staged > 0 {
            crate::notice(&format!(
                "removed {staged} half-written upload(s) that killed kcache processes left in the remote"
            ));
        }
        let pending: Vec<(String, u8)> = self.index.read(|r| r.scan(CF_PENDING, ""))?;
        self.upload_later(pending.into_iter().map(|(k, _)| k).collect());
        let report = self.finish()?;
        if !remote.is_down() && report.failed.is_empty() {
            remote.clear_outage();
        }
        Ok(report)
    }

    /// Waits for this process's uploads and records the remote traffic.
    /// Call before exiting; what could not be uploaded stays queued.
    pub fn finish(&self) -> Result<upload::SyncReport, StoreError> {
        let Some(remote) = &self.remote else {
            return Ok(upload::SyncReport::default());
        };
        let mut report = self.uploads.wait(remote);
        report.still_pending = self.index.read(|r| r.count(CF_PENDING))?;
        let t = &remote.traffic;
        let take = |a: &std::sync::atomic::AtomicU64| a.swap(0, std::sync::atomic::Ordering::Relaxed) as i64;
        self.count(&[
            (Counter::RemoteHits, take(&t.hits)),
            (Counter::RemoteMisses, take(&t.misses)),
            (Counter::RemoteErrors, take(&t.errors)),
            (Counter::RemoteBytesDown, take(&t.bytes_down)),
            (Counter::RemoteBytesUp, take(&t.bytes_up)),
        ]);
        Ok(report)
    }

    /// Runs several reads on one read-only open of the index.
    pub fn view<T>(&self, f: impl FnOnce(&View) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let policy = self
            .policy
            .as_deref()
            .or_else(|| self.remote.as_ref().map(|r| r.policy()));
        self.index.read(|r| {
            f(&View {
                r,
                blobs: &self.blobs,
                policy,
            })
        })
    }

    /// Every record of one column family, undecoded (schema checks, tools).
    pub fn raw_records<T: serde::de::DeserializeOwned>(&self, cf: &str) -> Result<Vec<(String, T)>, StoreError> {
        self.index.read(|r| r.scan(cf, ""))
    }

    /// Stores one file as a blob (a run's log, say); returns its key.
    pub fn put_blob(&self, path: &Path) -> Result<Key, StoreError> {
        Ok(self.blobs.put_file(path)?.key)
    }

    /// Adds to the hit/miss/time-saved counters: no I/O now, the deltas
    /// are written with the next record (see [`counters`]).
    pub fn count(&self, deltas: &[(Counter, i64)]) {
        self.counts.pending.add(deltas);
    }

    /// One fsynced index batch: what `f` writes plus the pending counters.
    fn write<R>(&self, f: impl FnOnce(&mut index::Writer) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let deltas = self.counts.pending.take();
        let written = self.index.write(|w| {
            for &(c, d) in &deltas {
                w.add(c, d);
            }
            f(w)
        });
        if written.is_err() {
            self.counts.pending.add(&deltas);
        }
        written
    }
}

/// Reads against one open of the index (see [`Cache::view`]).
pub struct View<'a> {
    r: &'a Reader<'a>,
    blobs: &'a BlobStore,
    /// The team's trust policy: runs copied from the remote stay evidence
    /// only while their writer is trusted (revocation takes effect at once).
    policy: Option<&'a crate::trust::Policy>,
}

impl View<'_> {
    /// The build record of `key`: one written here always; one copied
    /// from the remote while the policy still trusts its writer (a writer
    /// removed from `trusted_keys` loses what it wrote at once, as on the
    /// remote).
    pub fn build(&self, key: &BuildKey) -> Result<Option<BuildRecord>, StoreError> {
        let record: Option<BuildRecord> = self.r.get(CF_BUILDS, &key.to_hex())?;
        Ok(record.filter(|b| self.believed(b.writer.as_deref(), crate::trust::Kind::Build)))
    }

    /// Every recorded input set, by build key.
    pub fn input_sets(&self) -> Result<Vec<InputSet>, StoreError> {
        Ok(values(self.r.scan(CF_INPUT_SETS, "")?))
    }

    /// The builds that produced `signature` (those whose build record the
    /// policy no longer believes left out).
    pub fn builds_with_signature(&self, signature: &KernelSignature) -> Result<Vec<SignatureRecord>, StoreError> {
        let all: Vec<SignatureRecord> = values(self.r.scan(CF_SIGNATURES, &format!("{signature}/"))?);
        let mut out = Vec::with_capacity(all.len());
        for s in all {
            let build: Option<BuildRecord> = self.r.get(CF_BUILDS, &s.build_key.to_hex())?;
            if build.is_none_or(|b| self.believed(b.writer.as_deref(), crate::trust::Kind::Build)) {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Every run on a signature under one test key, oldest first (runs
    /// from writers the policy does not trust left out).
    pub fn runs(&self, signature: &KernelSignature, test_key: &TestKey) -> Result<Vec<RunRecord>, StoreError> {
        let runs: Vec<RunRecord> = values(self.r.scan(CF_RUNS, &format!("{signature}/{}/", test_key.to_hex()))?);
        Ok(runs.into_iter().filter(|r| self.run_believed(r)).collect())
    }

    fn run_believed(&self, run: &RunRecord) -> bool {
        self.believed(run.writer.as_deref(), crate::trust::Kind::Run)
    }

    /// A record written here (no writer) always; one copied from the
    /// remote while the policy still trusts its writer: the policy is
    /// applied at every read, not once when the record was copied.
    fn believed(&self, writer: Option<&str>, kind: crate::trust::Kind) -> bool {
        let (Some(policy), Some(writer)) = (self.policy, writer) else {
            return true;
        };
        if policy.mode == crate::trust::TrustMode::Off {
            return true;
        }
        let writer = match writer.parse::<crate::trust::PublicKey>() {
            Ok(k) => crate::trust::Writer::Signed(k),
            Err(_) => crate::trust::Writer::Unsigned,
        };
        policy.judge(&writer, kind) == crate::trust::Use::Evidence
    }

    /// Every run on a signature, grouped by test key.
    pub fn runs_by_test_key(
        &self,
        signature: &KernelSignature,
    ) -> Result<BTreeMap<TestKey, Vec<RunRecord>>, StoreError> {
        let mut out: BTreeMap<TestKey, Vec<RunRecord>> = BTreeMap::new();
        let runs: Vec<RunRecord> = values(self.r.scan(CF_RUNS, &format!("{signature}/"))?);
        for run in runs.into_iter().filter(|r| self.run_believed(r)) {
            out.entry(run.test_key).or_default().push(run);
        }
        Ok(out)
    }

    /// Commits known (from logs) to have produced `signature`.
    pub fn known_with_signature(&self, signature: &KernelSignature) -> Result<Vec<KnownSignature>, StoreError> {
        Ok(values(self.r.scan(CF_KNOWN_BY_SIGNATURE, &format!("{signature}/"))?))
    }

    pub fn artifact_states(&self, artifacts: &[Artifact]) -> Result<Vec<ArtifactState>, StoreError> {
        artifacts
            .iter()
            .map(|a| {
                Ok(ArtifactState {
                    artifact: a.clone(),
                    available: self.blobs.contains(&a.blake3),
                    evicted: self.r.exists(CF_EVICTED, &a.blake3.to_hex())?,
                })
            })
            .collect()
    }
}

fn values<T>(pairs: Vec<(String, T)>) -> Vec<T> {
    pairs.into_iter().map(|(_, v)| v).collect()
}
