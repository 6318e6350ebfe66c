//! The cache: a content-addressed blob store plus a RocksDB index.
//!
//! Layout under the cache directory (see `cache-schema/README.md`):
//! `index/` (RocksDB), `blobs/` (zstd blobs by BLAKE3), `tmp/` (blobs being
//! written), `quarantine/` (corrupt blobs, kept for inspection).
//!
//! Invariant: a record is written only after every blob it names is
//! durable, so no record ever points at a blob that was never stored.
//! Blobs can later be evicted (`gc`); eviction writes a marker first, so a
//! missing blob is always either evicted (said so) or corruption (reported
//! by `verify`).

pub mod blob;
pub mod counters;
pub mod index;
pub mod records;
pub mod remote;
mod upload;

use crate::signature::KernelSignature;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::key::{BuildInputs, BuildKey, Key, TestKey};
use crate::signature;
pub use blob::BlobStore;
pub use counters::Counter;
use counters::Pending;
use index::{
    Index, Read, Reader, CF_BUILDS, CF_EVICTED, CF_INPUT_SETS, CF_KNOWN, CF_KNOWN_BY_SIGNATURE, CF_PENDING, CF_RUNS,
    CF_SIGNATURES,
};
pub use records::*;

/// The lock file inside a test's artifacts directory, held while it runs.
pub const ARTIFACTS_LOCK: &str = ".kcache-in-use";
pub use remote::{Mode as RemoteMode, Remote};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cache index {}: {problem}", path.display())]
    Index { path: PathBuf, problem: String },
    #[error("cache index {} is damaged: {problem}\n  \
             `kcache verify --repair` salvages what RocksDB can still read and names the artifacts whose records were lost;\n  \
             or move the cache aside (`mv {} {}.damaged`: the next kcache starts an empty cache there),\n  \
             or bisect without the cache (`kcache bisect --no-cache ...`)",
        path.display(), cache_of(path).display(), cache_of(path).display())]
    IndexDamaged { path: PathBuf, problem: String },
    #[error("{0:?} is not a kernel signature (40 or 64 lowercase hex digits)")]
    BadSignature(String),
    #[error("no kcache cache at {}: nothing was ever stored there (check --cache-dir / KCACHE_DIR)", .0.display())]
    NoCache(PathBuf),
    #[error("cache index {}: still locked by another kcache process after {:.0}s", path.display(), waited.as_secs_f64())]
    Busy { path: PathBuf, waited: Duration },
    #[error("blob {0} is missing")]
    MissingBlob(Key),
    #[error("blob {key} ({}) is corrupt: {problem}{}", path.display(),
        quarantined.as_ref().map(|q| format!("; moved to {}", q.display())).unwrap_or_default())]
    CorruptBlob {
        key: Key,
        path: PathBuf,
        problem: String,
        quarantined: Option<PathBuf>,
    },
    #[error("record {cf}/{key} is unreadable: {problem}")]
    BadRecord { cf: String, key: String, problem: String },
    #[error(transparent)]
    Sign(#[from] signature::SignError),
    #[error("artifact {0} was evicted from the cache")]
    Evicted(String),
    #[error("remote {url}: {problem}")]
    Remote { url: String, problem: String },
}

/// The cache directory of an index path (`<cache>/index`).
fn cache_of(index: &Path) -> &Path {
    index.parent().unwrap_or(index)
}

/// Prefix of the directories tests run in under the cache.
pub const ARTIFACTS_PREFIX: &str = "artifacts-";

impl StoreError {
    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where the cache lives: `--cache-dir`, else `KCACHE_DIR`, else
/// `$XDG_CACHE_HOME/kcache`, else `~/.cache/kcache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KCACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("kcache");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("kcache")
}

#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
    blobs: BlobStore,
    index: Index,
    remote: Option<Arc<Remote>>,
    uploads: Arc<upload::Uploads>,
    counts: Arc<Counts>,
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
        if !dir.join("index").is_dir() {
            return Err(StoreError::NoCache(dir.to_path_buf()));
        }
        Cache::open_with_remote(dir, remote)
    }

    /// A cache with a remote tier behind the local one.
    pub fn open_with_remote(dir: &Path, remote: Option<Remote>) -> Result<Cache, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
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
        })
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

    /// Stores a successful build whose first artifact (the vmlinux) has
    /// `signature` (the caller signed it): every artifact as a blob, then
    /// the records.
    pub fn put_build(
        &self,
        commit: &str,
        inputs: &BuildInputs,
        signature: &KernelSignature,
        artifacts: &[(String, PathBuf)],
        build_seconds: f64,
    ) -> Result<BuildRecord, StoreError> {
        if artifacts.is_empty() {
            return Err(StoreError::Index {
                path: self.dir.clone(),
                problem: "a build needs at least one artifact (the vmlinux)".into(),
            });
        }
        let mut stored = Vec::with_capacity(artifacts.len());
        for (name, path) in artifacts {
            let s = self.blobs.put_file(path)?;
            stored.push(Artifact {
                name: name.clone(),
                blake3: s.key,
                size: s.size,
                executable: is_executable(path),
            });
        }
        let record = BuildRecord {
            status: BuildStatus::Ok,
            signature: Some(signature.clone()),
            artifacts: stored,
            ..build_record(commit, inputs, build_seconds)
        };
        self.write_build(&record)?;
        Ok(record)
    }

    /// Records that these inputs fail to build, with the end of the log.
    pub fn put_build_failure(
        &self,
        commit: &str,
        inputs: &BuildInputs,
        log_tail: &str,
        build_seconds: f64,
    ) -> Result<BuildRecord, StoreError> {
        let record = BuildRecord {
            log_tail: Some(log_tail.to_string()),
            ..build_record(commit, inputs, build_seconds)
        };
        self.write_build(&record)?;
        Ok(record)
    }

    fn write_build(&self, record: &BuildRecord) -> Result<(), StoreError> {
        let key = record.build_key.to_hex();
        // Someone else's build of the same inputs, to check determinism against.
        if self.remote.is_some() && self.build_local(&record.build_key)?.is_none() {
            self.build_from_remote(&record.build_key)?;
        }
        let mut conflict = None;
        let pending = self.write(|w| {
            let existing: Option<BuildRecord> = w.get(CF_BUILDS, &key)?;
            let mut stored_under = key.clone();
            match (&existing, &record.signature) {
                (Some(old), Some(sig)) if old.signature.as_ref().is_some_and(|s| s != sig) => {
                    // Same inputs, different code: keep both, say so loudly.
                    stored_under = format!("{key}/{sig}");
                    w.put(CF_BUILDS, &stored_under, record);
                    w.add(Counter::DeterminismConflicts, 1);
                    conflict = Some(old.clone());
                }
                (Some(old), _) if old.status == BuildStatus::Ok && record.status == BuildStatus::Failed => {
                    // A flaky build failure must not hide a known good build.
                }
                _ => w.put(CF_BUILDS, &key, record),
            }
            if let Some(sr) = record.signature_record() {
                w.put(CF_SIGNATURES, &format!("{}/{key}", sr.signature), &sr);
            }
            for a in &record.artifacts {
                w.delete(CF_EVICTED, &a.blake3.to_hex());
            }
            Ok(self.writable_remote().map(|_| {
                let p = upload::pending_build(&stored_under);
                w.put(CF_PENDING, &p, &0u8);
                p
            }))
        })?;
        if let Some(old) = conflict {
            crate::warn(&self.describe_nondeterminism(&old, record));
        }
        self.upload_later(pending.into_iter().collect());
        Ok(())
    }

    /// The loud warning for a build key that produced two signatures,
    /// naming the sections that differ when both vmlinux files can be had.
    fn describe_nondeterminism(&self, old: &BuildRecord, new: &BuildRecord) -> String {
        let mut msg = format!(
            "NON-REPRODUCIBLE BUILD: build key {} produced signature {} (commit {}, {}) and now {}",
            old.build_key,
            old.signature.as_deref().unwrap_or("?"),
            old.commit,
            old.host,
            new.signature.as_deref().unwrap_or("?")
        );
        let sections = (|| -> Option<Vec<String>> {
            let dir = tempfile::tempdir_in(&self.dir).ok()?;
            let a = self
                .restore(old.artifacts.get(..1)?, &dir.path().join("a"))
                .ok()?
                .pop()?;
            let b = self
                .restore(new.artifacts.get(..1)?, &dir.path().join("b"))
                .ok()?
                .pop()?;
            let diff = signature::diff_files(&a, &b, Some(0)).ok()?;
            Some(diff.sections.into_iter().map(|s| s.name).collect())
        })();
        if let Some(sections) = sections {
            msg.push_str(&format!("; sections that differ: {}", sections.join(", ")));
        }
        msg
    }

    fn build_local(&self, key: &BuildKey) -> Result<Option<BuildRecord>, StoreError> {
        self.view(|v| v.build(key))
    }

    /// Build records for `key` from the remote, backfilled into the local
    /// index (their blobs stay remote until needed). Returns the first.
    fn build_from_remote(&self, key: &BuildKey) -> Result<Option<BuildRecord>, StoreError> {
        let Some(remote) = &self.remote else { return Ok(None) };
        let found = remote.records::<BuildRecord>(&format!("builds/{}", key.to_hex()));
        self.backfill_builds(key, found)
    }

    /// Build records for many keys: the local tier in one read, the misses
    /// from the remote in parallel (backfilled), in the order of `keys`.
    /// `ask_remote: false` reads the local tier only.
    pub fn builds(&self, keys: &[BuildKey], ask_remote: bool) -> Result<Vec<Option<BuildRecord>>, StoreError> {
        let mut out = self.view(|v| keys.iter().map(|k| v.build(k)).collect::<Result<Vec<_>, _>>())?;
        let Some(remote) = self.remote.as_ref().filter(|_| ask_remote) else {
            return Ok(out);
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        let dirs: Vec<String> = missing
            .iter()
            .map(|&i| format!("builds/{}", keys[i].to_hex()))
            .collect();
        for (i, found) in missing.into_iter().zip(remote.records_many::<BuildRecord>(&dirs)) {
            if !found.is_empty() {
                out[i] = self.backfill_builds(&keys[i], found)?;
            }
        }
        Ok(out)
    }

    /// Keeps the remote's build records for `key` in the local index (their
    /// blobs stay remote until needed); returns the one to use.
    fn backfill_builds(
        &self,
        key: &BuildKey,
        found: Vec<(String, BuildRecord)>,
    ) -> Result<Option<BuildRecord>, StoreError> {
        let hex = key.to_hex();
        let mut found: Vec<BuildRecord> = found
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| r.build_key == *key && r.schema == BUILD_SCHEMA)
            .collect();
        // A successful build first: a flaky failure must not hide it.
        found.sort_by_key(|r| (r.status != BuildStatus::Ok, r.time));
        let Some(first) = found.first().cloned() else {
            return Ok(None);
        };
        let first_sig = first.signature.clone();
        let conflicts = self.write(|w| {
            let mut conflicts = 0;
            for (i, r) in found.iter().enumerate() {
                let under = if i == 0 {
                    hex.clone()
                } else {
                    format!("{hex}/{}", r.signature.as_deref().unwrap_or("failed"))
                };
                if i > 0 && r.signature.is_some() && r.signature != first_sig {
                    conflicts += 1;
                    w.add(Counter::DeterminismConflicts, 1);
                }
                w.put(CF_BUILDS, &under, r);
                if let Some(sr) = r.signature_record() {
                    w.put(CF_SIGNATURES, &format!("{}/{hex}", sr.signature), &sr);
                }
                for a in &r.artifacts {
                    if !self.blobs.contains(&a.blake3) {
                        // Not in the local tier: restore fetches it.
                        w.put(CF_EVICTED, &a.blake3.to_hex(), &0u64);
                    }
                }
            }
            Ok(conflicts)
        })?;
        if conflicts > 0 {
            for r in found
                .iter()
                .skip(1)
                .filter(|r| r.signature.is_some() && r.signature != first_sig)
            {
                crate::warn(&self.describe_nondeterminism(&first, r));
            }
        }
        Ok(Some(first))
    }

    /// Appends one run. Run ids are unique, so this never overwrites.
    pub fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        self.record_runs(std::slice::from_ref(run))
    }

    pub fn record_runs(&self, runs: &[RunRecord]) -> Result<(), StoreError> {
        if runs.is_empty() {
            return Ok(());
        }
        if let Some(bad) = runs.iter().find(|r| !signature::is_signature(&r.signature)) {
            return Err(StoreError::BadSignature(bad.signature.to_string()));
        }
        let upload = self.writable_remote().is_some();
        let pending = self.write(|w| {
            let mut pending = Vec::new();
            for run in runs {
                let key = run_key(&run.signature, &run.test_key, &run.run_id);
                w.put(CF_RUNS, &key, run);
                if upload {
                    let p = upload::pending_run(&key);
                    w.put(CF_PENDING, &p, &0u8);
                    pending.push(p);
                }
            }
            Ok(pending)
        })?;
        self.upload_later(pending);
        Ok(())
    }

    /// Runs on a signature under a test key from both tiers: the remote is
    /// asked only when the local runs are fewer than `wanted` and show no
    /// crash. Remote runs are backfilled into the local index.
    pub fn runs_shared(&self, signature: &str, test_key: &TestKey, wanted: u32) -> Result<Vec<RunRecord>, StoreError> {
        let runs = self.runs(signature, test_key)?;
        let settled = runs.iter().any(|r| r.outcome == Outcome::Crash) || runs.len() >= wanted as usize;
        if settled || self.pull_runs(signature, Some(test_key))? == 0 {
            return Ok(runs);
        }
        self.runs(signature, test_key)
    }

    /// Copies the remote's runs on `signature` (under one test key, or
    /// all) into the local index; returns how many were new.
    pub fn pull_runs(&self, signature: &str, test_key: Option<&TestKey>) -> Result<usize, StoreError> {
        let Some(remote) = &self.remote else { return Ok(0) };
        let dir = match test_key {
            Some(k) => format!("runs/{signature}/{}", k.to_hex()),
            None => format!("runs/{signature}"),
        };
        let local: std::collections::HashSet<String> = self
            .index
            .read(|r| r.scan::<RunRecord>(CF_RUNS, &format!("{dir}/").replacen("runs/", "", 1)))?
            .into_iter()
            .map(|(_, r)| r.run_id)
            .collect();
        let fresh: Vec<RunRecord> = remote
            .records::<RunRecord>(&dir)
            .into_iter()
            .map(|(_, r)| r)
            .filter(|r| {
                r.signature.as_str() == signature && test_key.is_none_or(|k| r.test_key == *k) && r.schema == RUN_SCHEMA
            })
            .filter(|r| !local.contains(&r.run_id))
            .collect();
        if !fresh.is_empty() {
            self.write(|w| {
                for r in &fresh {
                    w.put(CF_RUNS, &run_key(&r.signature, &r.test_key, &r.run_id), r);
                }
                Ok(())
            })?;
        }
        Ok(fresh.len())
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
            counts: self.counts.clone(),
        }
    }

    /// Uploads everything still queued (from this or earlier processes).
    pub fn sync(&self) -> Result<upload::SyncReport, StoreError> {
        let Some(remote) = self.writable_remote() else {
            return Ok(upload::SyncReport::default());
        };
        // An explicit sync tries the remote even if it was down a minute ago.
        remote.reset_down();
        let pending: Vec<(String, u8)> = self.index.read(|r| r.scan(CF_PENDING, ""))?;
        self.upload_later(pending.into_iter().map(|(k, _)| k).collect());
        let _ = remote;
        self.finish()
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

    pub fn put_known_signatures(&self, known: &[KnownSignature]) -> Result<(), StoreError> {
        self.write(|w| {
            for k in known {
                let compiler = crate::key::digest(k.compiler.as_bytes()).to_hex();
                w.put(CF_KNOWN, &format!("{}/{compiler}", k.commit), k);
                w.put(
                    CF_KNOWN_BY_SIGNATURE,
                    &format!("{}/{}/{compiler}", k.signature, k.commit),
                    k,
                );
            }
            Ok(())
        })
    }

    /// Runs several reads on one read-only open of the index.
    pub fn view<T>(&self, f: impl FnOnce(&View) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.index.read(|r| f(&View { r, blobs: &self.blobs }))
    }

    /// The build record for `key`: local tier, else the remote (backfilled).
    pub fn build(&self, key: &BuildKey) -> Result<Option<BuildRecord>, StoreError> {
        match self.build_local(key)? {
            Some(r) => Ok(Some(r)),
            None => self.build_from_remote(key),
        }
    }

    /// Every run on a signature under one test key, oldest first.
    pub fn runs(&self, signature: &str, test_key: &TestKey) -> Result<Vec<RunRecord>, StoreError> {
        self.view(|v| v.runs(signature, test_key))
    }

    /// Every record of one column family, undecoded (schema checks, tools).
    pub fn raw_records<T: serde::de::DeserializeOwned>(&self, cf: &str) -> Result<Vec<(String, T)>, StoreError> {
        self.index.read(|r| r.scan(cf, ""))
    }

    /// Writes many build records in one unsynced session, then flushes
    /// (benchmark fills: no per-record fsync, no upload).
    pub fn bulk_load_builds(&self, records: impl IntoIterator<Item = BuildRecord>) -> Result<(), StoreError> {
        self.index.session(|w| {
            for record in records {
                w.put_now(CF_BUILDS, &record.build_key.to_hex(), &record)?;
            }
            w.flush()
        })
    }

    /// Stores one file as a blob (a run's log, say); returns its key.
    pub fn put_blob(&self, path: &Path) -> Result<Key, StoreError> {
        Ok(self.blobs.put_file(path)?.key)
    }

    /// Records what a build read (local only: prediction needs the build's
    /// worktree history, which a remote member does not share).
    pub fn put_input_set(&self, set: &InputSet) -> Result<(), StoreError> {
        self.write(|w| {
            w.put(CF_INPUT_SETS, &set.build_key.to_hex(), set);
            Ok(())
        })
    }

    pub fn input_set(&self, build_key: &BuildKey) -> Result<Option<InputSet>, StoreError> {
        self.index.read(|r| r.get(CF_INPUT_SETS, &build_key.to_hex()))
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

    /// Restores artifacts under `dest`, each at its name; every byte is
    /// verified against its hash first.
    pub fn restore(&self, artifacts: &[Artifact], dest: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let mut out = Vec::with_capacity(artifacts.len());
        for a in artifacts {
            let target = dest.join(safe_relative(&a.name));
            if !self.blobs.contains(&a.blake3) {
                if let Some(remote) = &self.remote {
                    if remote.fetch_blob(&a.blake3, &self.blobs)? {
                        self.write(|w| {
                            w.delete(CF_EVICTED, &a.blake3.to_hex());
                            Ok(())
                        })?;
                    }
                }
            }
            match self.blobs.get_to_file(&a.blake3, &target) {
                Err(StoreError::MissingBlob(_)) => return Err(StoreError::Evicted(a.name.clone())),
                other => other?,
            };
            if a.executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| StoreError::io(&target, e))?;
            }
            out.push(target);
        }
        Ok(out)
    }

    /// After a repair: records that still do not parse are deleted (and
    /// named in the report).
    fn drop_unreadable_records(&self, report: &mut VerifyReport) -> Result<(), StoreError> {
        let bad = self.index.read(|r| {
            let mut bad = Vec::new();
            for cf in index::ALL_CFS.iter().filter(|cf| **cf != index::CF_COUNTERS) {
                for (k, v) in r.raw(cf)? {
                    if serde_json::from_slice::<serde_json::Value>(&v).is_err() {
                        bad.push((cf.to_string(), k));
                    }
                }
            }
            Ok(bad)
        })?;
        if bad.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            for (cf, k) in &bad {
                w.delete(cf, k);
            }
            Ok(())
        })?;
        for (cf, k) in bad {
            report
                .problems
                .push(format!("record {cf}/{k} was unreadable and is deleted"));
        }
        Ok(())
    }

    /// What a repair kept, and what the blobs still tell of what it lost: an
    /// artifact no record names any more was a build whose record was lost;
    /// its kernel signature is recomputed from the blob.
    fn salvage_report(&self, after: RecordCounts) -> Result<Salvage, StoreError> {
        let named: std::collections::HashSet<Key> = self.view(|v| {
            let builds: Vec<(String, BuildRecord)> = v.r.scan(CF_BUILDS, "")?;
            Ok(builds
                .into_iter()
                .flat_map(|(_, b)| b.artifacts.into_iter().map(|a| a.blake3))
                .collect())
        })?;
        let blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        let mut orphans = Vec::new();
        for b in blobs.iter().filter(|b| !named.contains(&b.key)) {
            let dir = tempfile::tempdir_in(&self.dir).map_err(|e| StoreError::io(&self.dir, e))?;
            let file = dir.path().join("blob");
            let signature = self
                .blobs
                .get_to_file(&b.key, &file)
                .ok()
                .and_then(|_| signature::sign_file(&file).ok())
                .map(KernelSignature::from);
            orphans.push(OrphanBlob { blob: b.key, signature });
        }
        Ok(Salvage {
            kept: after,
            orphan_blobs: orphans,
        })
    }

    pub fn stats(&self) -> Result<Stats, StoreError> {
        let (records, counters) = self.index.read(|r| {
            let mut records = BTreeMap::new();
            for cf in [
                CF_BUILDS,
                CF_SIGNATURES,
                CF_RUNS,
                CF_KNOWN,
                CF_EVICTED,
                CF_PENDING,
                CF_INPUT_SETS,
            ] {
                records.insert(cf.to_string(), r.count(cf)?);
            }
            Ok((records, r.counters()?.into_iter().collect()))
        })?;
        let blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        Ok(Stats {
            cache_dir: self.dir.clone(),
            records,
            blobs: blobs.len() as u64,
            blob_bytes: blobs.iter().map(|b| b.stored_bytes).sum(),
            counters,
        })
    }

    /// Evicts least-recently-used blobs until the blobs take at most
    /// `max_bytes`. Records stay; an evicted marker says why a blob is gone.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, StoreError> {
        let mut blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        blobs.sort_by_key(|b| b.last_used);
        let mut total: u64 = blobs.iter().map(|b| b.stored_bytes).sum();
        let before = total;
        let mut victims = Vec::new();
        for b in &blobs {
            if total <= max_bytes {
                break;
            }
            total -= b.stored_bytes;
            victims.push(b.key);
        }
        if !victims.is_empty() {
            let time = now();
            self.write(|w| {
                for k in &victims {
                    w.put(CF_EVICTED, &k.to_hex(), &time);
                }
                Ok(())
            })?;
            for k in &victims {
                let _ = self.blobs.remove(k);
            }
        }
        let tmp_removed = self.blobs.clean_tmp().map_err(|e| StoreError::io(self.dir(), e))? + self.clean_stale();
        Ok(GcReport {
            evicted: victims.len(),
            bytes_before: before,
            bytes_after: total,
            tmp_removed,
        })
    }

    /// Removes the artifact copies of tests that a killed kcache left
    /// behind (each a whole vmlinux). A directory in use is locked by its
    /// test and kept; so is one created in the last minute, whose test may
    /// not have locked it yet.
    pub fn clean_stale(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for e in entries.flatten() {
            let path = e.path();
            if !e.file_name().to_string_lossy().starts_with(ARTIFACTS_PREFIX) || !path.is_dir() {
                continue;
            }
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_none_or(|age| age < Duration::from_secs(60));
            let in_use = match std::fs::File::open(path.join(ARTIFACTS_LOCK)) {
                Ok(f) => f.try_lock_shared().is_err(),
                Err(_) => young,
            };
            if !in_use && std::fs::remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Deletes the build records (success or failure) of a build key, so
    /// the next bisection builds it again. Runs stay: they belong to the
    /// kernel signature, not the build.
    pub fn forget_build(&self, key: &BuildKey) -> Result<usize, StoreError> {
        let hex = key.to_hex();
        self.write(|w| {
            let records: Vec<(String, BuildRecord)> = w.scan(CF_BUILDS, &hex)?;
            for (k, r) in &records {
                w.delete(CF_BUILDS, k);
                if let Some(sig) = &r.signature {
                    w.delete(CF_SIGNATURES, &format!("{sig}/{hex}"));
                }
            }
            w.delete(CF_INPUT_SETS, &hex);
            Ok(records.len())
        })
    }

    /// Checks that every record resolves and every blob hashes right.
    pub fn verify(&self, repair: bool) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        if repair {
            report.tmp_removed += self.clean_stale();
        }
        match self.index.read(read_every_record) {
            Ok(_) => {}
            Err(e @ (StoreError::IndexDamaged { .. } | StoreError::BadRecord { .. })) if repair => {
                report
                    .problems
                    .push(e.to_string().lines().next().unwrap_or("").to_string());
                self.index.repair()?;
                report.repaired = true;
                self.drop_unreadable_records(&mut report)?;
                let after = self.index.read(read_every_record)?;
                report.salvage = Some(self.salvage_report(after)?);
            }
            Err(e @ StoreError::BadRecord { .. }) => report.problems.push(e.to_string()),
            Err(e) => return Err(e),
        }
        let (builds, sigs, runs, evicted) = self.index.read(|r| {
            Ok((
                r.scan::<BuildRecord>(CF_BUILDS, "")?,
                r.scan::<SignatureRecord>(CF_SIGNATURES, "")?,
                r.scan::<RunRecord>(CF_RUNS, "")?,
                r.scan::<u64>(CF_EVICTED, "")?,
            ))
        })?;
        let evicted: std::collections::HashSet<String> = evicted.into_iter().map(|(k, _)| k).collect();
        report.records = (builds.len() + sigs.len() + runs.len()) as u64;
        let mut referenced: Vec<(String, Key)> = Vec::new();
        for (k, b) in &builds {
            referenced.extend(b.artifacts.iter().map(|a| (format!("builds/{k}"), a.blake3)));
        }
        for (k, s) in &sigs {
            referenced.extend(s.artifacts.iter().map(|a| (format!("signatures/{k}"), a.blake3)));
        }
        for (k, r) in &runs {
            referenced.extend(r.log_blob.iter().map(|b| (format!("runs/{k}"), *b)));
            if !signature::is_signature(&r.signature) {
                report.problems.push(format!(
                    "runs/{k} is on {:?}, which is not a kernel signature",
                    r.signature
                ));
            }
        }
        let mut newly_evicted = Vec::new();
        for (record, key) in &referenced {
            if !self.blobs.contains(key) && !evicted.contains(&key.to_hex()) {
                report
                    .problems
                    .push(format!("{record} names blob {key}, which is missing"));
                newly_evicted.push(*key);
            }
        }
        let blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        report.blobs = blobs.len() as u64;
        for b in &blobs {
            if let Err(problem) = self.blobs.check(&b.key) {
                report.problems.push(format!("blob {} is corrupt: {problem}", b.key));
                if repair {
                    self.blobs.quarantine(&b.key);
                    newly_evicted.push(b.key);
                }
            }
        }
        if repair && !newly_evicted.is_empty() {
            // The records stay true: their artifacts are gone, say so.
            let time = now();
            self.write(|w| {
                for k in &newly_evicted {
                    w.put(CF_EVICTED, &k.to_hex(), &time);
                }
                Ok(())
            })?;
            report.repaired = true;
        }
        if repair {
            report.tmp_removed = self.blobs.clean_tmp().map_err(|e| StoreError::io(self.dir(), e))?;
        }
        Ok(report)
    }
}

/// A failed build record for these inputs; callers fill in a success.
fn build_record(commit: &str, inputs: &BuildInputs, build_seconds: f64) -> BuildRecord {
    BuildRecord {
        schema: BUILD_SCHEMA.into(),
        build_key: inputs.key(),
        status: BuildStatus::Failed,
        signature: None,
        artifacts: Vec::new(),
        log_tail: None,
        commit: commit.into(),
        tree: inputs.tree.clone(),
        config_digest: inputs.config_digest,
        toolchain: inputs.toolchain.clone(),
        arch: inputs.arch.clone(),
        recipe_digest: inputs.recipe_digest,
        build_seconds,
        host: host(),
        time: now(),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Reads against one open of the index (see [`Cache::view`]).
pub struct View<'a> {
    r: &'a Reader<'a>,
    blobs: &'a BlobStore,
}

impl View<'_> {
    pub fn build(&self, key: &BuildKey) -> Result<Option<BuildRecord>, StoreError> {
        self.r.get(CF_BUILDS, &key.to_hex())
    }

    /// Every recorded input set, by build key.
    pub fn input_sets(&self) -> Result<Vec<InputSet>, StoreError> {
        Ok(values(self.r.scan(CF_INPUT_SETS, "")?))
    }

    pub fn builds_with_signature(&self, signature: &str) -> Result<Vec<SignatureRecord>, StoreError> {
        Ok(values(self.r.scan(CF_SIGNATURES, &format!("{signature}/"))?))
    }

    /// Every run on a signature under one test key, oldest first.
    pub fn runs(&self, signature: &str, test_key: &TestKey) -> Result<Vec<RunRecord>, StoreError> {
        Ok(values(
            self.r.scan(CF_RUNS, &format!("{signature}/{}/", test_key.to_hex()))?,
        ))
    }

    /// Every run on a signature, grouped by test key.
    pub fn runs_by_test_key(&self, signature: &str) -> Result<BTreeMap<TestKey, Vec<RunRecord>>, StoreError> {
        let mut out: BTreeMap<TestKey, Vec<RunRecord>> = BTreeMap::new();
        for run in values::<RunRecord>(self.r.scan(CF_RUNS, &format!("{signature}/"))?) {
            out.entry(run.test_key).or_default().push(run);
        }
        Ok(out)
    }

    /// Commits known (from logs) to have produced `signature`.
    pub fn known_with_signature(&self, signature: &str) -> Result<Vec<KnownSignature>, StoreError> {
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

/// Keeps artifact names inside the destination directory.
fn safe_relative(name: &str) -> PathBuf {
    Path::new(name)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}

pub fn run_key(signature: &str, test_key: &TestKey, run_id: &str) -> String {
    format!("{signature}/{}/{run_id}", test_key.to_hex())
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub cache_dir: PathBuf,
    pub records: BTreeMap<String, u64>,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub counters: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    pub evicted: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub tmp_removed: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub blobs: u64,
    pub problems: Vec<String>,
    pub repaired: bool,
    pub tmp_removed: usize,
    /// What `--repair` of a damaged index kept, and the artifacts whose
    /// records it lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salvage: Option<Salvage>,
}

/// Records per column family.
pub type RecordCounts = BTreeMap<String, u64>;

#[derive(Debug, Clone, Serialize)]
pub struct Salvage {
    pub kept: RecordCounts,
    /// Artifacts no record names any more (their build records were lost),
    /// with the kernel signature recomputed from the blob where it is an ELF.
    pub orphan_blobs: Vec<OrphanBlob>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrphanBlob {
    pub blob: Key,
    pub signature: Option<KernelSignature>,
}

/// Reads every record of every column family (every block is read and
/// its checksum checked) and counts them; values must parse.
fn read_every_record(r: &Reader) -> Result<RecordCounts, StoreError> {
    let mut counts = RecordCounts::new();
    for cf in index::ALL_CFS {
        let n = if *cf == index::CF_COUNTERS {
            r.counters()?.len() as u64
        } else {
            r.scan::<serde_json::Value>(cf, "")?.len() as u64
        };
        counts.insert(cf.to_string(), n);
    }
    Ok(counts)
}

impl VerifyReport {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}
