//! Build records and their artifacts: storing a build (and warning when
//! the same inputs made different code), reading builds from both tiers
//! (the remote's backfilled into the local index), restoring artifacts.

use std::path::{Path, PathBuf};

use super::index::{
    Read, CF_BUILDS, CF_INPUT_SETS, CF_KNOWN, CF_KNOWN_BY_SIGNATURE, CF_PENDING, CF_PREBUILDS, CF_SIGNATURES,
};
use super::remote::Fetched;
use super::{host, now, BUILD_SCHEMA};
use super::{
    upload, Artifact, BuildRecord, BuildStatus, Cache, Counter, InputSet, KnownSignature, PrebuildRecord, StoreError,
};
use crate::key::{BuildInputs, BuildKey, CommitId, Key, TreeId};

/// `kcache get --json`: a build's artifacts restored.
#[derive(Debug, serde::Serialize)]
pub struct Restored {
    pub build_key: BuildKey,
    pub signature: Option<KernelSignature>,
    pub restored: Vec<PathBuf>,
}

/// Why a build cannot be restored: a miss (the negative answer), not an
/// error of the cache.
#[derive(Debug, thiserror::Error)]
pub enum Unrestorable {
    #[error("no build with key {0}")]
    NoBuild(BuildKey),
    #[error("build {0} is a recorded build failure: nothing to restore")]
    Failed(BuildKey),
    #[error("artifact {name} of build {key} is not in the cache (evicted, or dropped as false)")]
    Evicted { key: BuildKey, name: String },
    #[error("build {key}: {source}")]
    Quarantined { key: BuildKey, source: StoreError },
}

impl Unrestorable {
    /// A restore's result with its misses told apart from errors.
    pub fn of<T>(key: &BuildKey, restored: Result<T, StoreError>) -> Result<Result<T, Unrestorable>, StoreError> {
        match restored {
            Ok(t) => Ok(Ok(t)),
            Err(StoreError::Evicted(name)) => Ok(Err(Unrestorable::Evicted { key: *key, name })),
            Err(e @ StoreError::Quarantined { .. }) => Ok(Err(Unrestorable::Quarantined { key: *key, source: e })),
            Err(e) => Err(e),
        }
    }
}

/// `kcache forget --json`: how many build records a key lost.
#[derive(Debug, serde::Serialize)]
pub struct Forgotten {
    pub build_key: BuildKey,
    pub forgotten: usize,
}
use crate::signature::{self, KernelSignature};

impl Cache {
    /// Stores a successful build whose first artifact (the vmlinux) has
    /// `signature` (the caller signed it): every artifact as a blob, then
    /// the records. `patched_tree`: the tree `inputs.patches` produced.
    pub fn put_build(
        &self,
        commit: &CommitId,
        inputs: &BuildInputs,
        patched_tree: Option<TreeId>,
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
        let same_kernel = self.view(|v| v.builds_with_signature(signature)).unwrap_or_default();
        for (name, path) in artifacts {
            let base = self.base_for(name, &same_kernel);
            let s = self.blobs.put_file_against(path, base.as_ref())?;
            self.remember_blob(name, s.key);
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
            patched_tree,
            ..build_record(commit, inputs, build_seconds)
        };
        self.write_build(&record)?;
        Ok(record)
    }

    /// What to store artifact `name` as a delta against: the same-named
    /// artifact of a stored build with the same kernel signature (a
    /// rebuild, another toolchain path or debug info: about 1 KB apart),
    /// else the one this process stored last (in a prebuild, the parent's;
    /// in a bisection, the previous step's).
    fn base_for(&self, name: &str, same_kernel: &[super::SignatureRecord]) -> Option<Key> {
        let same = same_kernel
            .iter()
            .flat_map(|s| &s.artifacts)
            .find(|a| a.name == name && self.blobs.readable(&a.blake3))
            .map(|a| a.blake3);
        same.or_else(|| self.recent.lock().unwrap_or_else(|p| p.into_inner()).get(name).copied())
    }

    fn remember_blob(&self, name: &str, key: Key) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), key);
    }

    /// Records a commit whose kernel was predicted equal to `reference`'s
    /// (no input of that build differs): the reference's signature and
    /// artifacts under this commit's build key, `predicted_from` naming it.
    pub fn put_predicted_build(
        &self,
        commit: &CommitId,
        inputs: &BuildInputs,
        reference: &BuildRecord,
    ) -> Result<BuildRecord, StoreError> {
        let record = BuildRecord {
            status: BuildStatus::Ok,
            signature: reference.signature.clone(),
            artifacts: reference.artifacts.clone(),
            predicted_from: Some(reference.build_key),
            ..build_record(commit, inputs, 0.0)
        };
        self.write_build(&record)?;
        Ok(record)
    }

    /// Keeps what a prebuild of a range did (one record per range and recipe).
    pub fn put_prebuild(&self, record: &PrebuildRecord) -> Result<(), StoreError> {
        let key = format!(
            "{}/{}/{}",
            record.recipe_digest.to_hex(),
            record.config_digest.to_hex(),
            record.range
        );
        self.write(|w| {
            w.put(CF_PREBUILDS, &key, record);
            Ok(())
        })
    }

    /// Every prebuilt range, by recipe.
    pub fn prebuilds(&self) -> Result<Vec<PrebuildRecord>, StoreError> {
        Ok(self
            .index
            .read(|r| r.scan::<PrebuildRecord>(CF_PREBUILDS, ""))?
            .into_iter()
            .map(|(_, p)| p)
            .collect())
    }

    /// Records that these inputs fail to build, with the end of the log.
    pub fn put_build_failure(
        &self,
        commit: &CommitId,
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
                    // A build made here outranks one copied from the
                    // remote (own first, then trusted writers); between
                    // two of this cache's own, the first stays.
                    if old.writer.is_some() && record.writer.is_none() {
                        let old_sig = old.signature.as_deref().unwrap_or("failed");
                        w.put(CF_BUILDS, &format!("{key}/{old_sig}"), old);
                        w.put(CF_BUILDS, &key, record);
                    } else {
                        stored_under = format!("{key}/{sig}");
                        w.put(CF_BUILDS, &stored_under, record);
                    }
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
                w.unmark_evicted(&a.blake3);
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

    /// Whether a team build record's kernel signature is its vmlinux's:
    /// the blob is fetched and signed before the signature is believed (a
    /// record claiming another kernel's signature would otherwise decide
    /// which commits are no-ops and label runs, trusted writer or not). A
    /// record whose vmlinux cannot be had is not believed either: this
    /// member builds that commit itself.
    fn signature_checked(&self, r: &BuildRecord) -> bool {
        let (Some(claimed), Some(vmlinux)) = (&r.signature, r.artifacts.first()) else {
            return r.status != BuildStatus::Ok || r.signature.is_none();
        };
        // A 40-digit signature is syzbot's, learned from a log: not re-signable.
        if claimed.as_str().len() != 64 {
            return true;
        }
        let writer = r.writer.as_deref().unwrap_or("?");
        let fetched = self.blobs.contains(&vmlinux.blake3)
            || self
                .remote
                .as_ref()
                .is_some_and(|remote| remote.fetch_blob(&vmlinux.blake3, &self.blobs).unwrap_or(false));
        let checked = fetched
            && tempfile::tempdir_in(&self.dir).is_ok_and(|dir| {
                let file = dir.path().join("vmlinux");
                self.blobs.get_to_file(&vmlinux.blake3, &file).is_ok() && resigns_to(&file, claimed)
            });
        if !checked {
            crate::warn(&format!(
                "build {} from writer {writer} claims kernel signature {} but its {} {}: record not used, \
                 this commit is built here",
                r.build_key.short(),
                claimed.short(),
                vmlinux.name,
                if fetched {
                    "does not have it"
                } else {
                    "cannot be fetched to check"
                }
            ));
        }
        checked
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
    /// Makes sure the remote has this tier's build record of `key` (and
    /// its blobs): queues it for upload when the remote has none. A build
    /// known here from an earlier upload to another store, or whose upload
    /// failed, reaches this one too. False when there is no record here.
    pub fn publish_build(&self, key: &BuildKey) -> Result<bool, StoreError> {
        let Some(remote) = self.writable_remote() else {
            return Ok(false);
        };
        if self.build_local(key)?.is_none() {
            return Ok(false);
        }
        if !remote
            .records::<BuildRecord>(&format!("builds/{}", key.to_hex()))
            .is_empty()
        {
            return Ok(true);
        }
        let entry = upload::pending_build(&key.to_hex());
        self.write(|w| {
            w.put(CF_PENDING, &entry, &0u8);
            Ok(())
        })?;
        self.upload_later(vec![entry]);
        Ok(true)
    }

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
    ///
    /// Records that disagree are chosen between by trust (a trusted
    /// writer's first), then a success before a failure (a flaky failure
    /// must not hide a build), and only among equally trusted writers by
    /// age: never by a field the writer controls alone (issue 27: an
    /// untrusted writer re-signing its record with an earlier `time`).
    fn backfill_builds(
        &self,
        key: &BuildKey,
        found: Vec<Fetched<BuildRecord>>,
    ) -> Result<Option<BuildRecord>, StoreError> {
        let hex = key.to_hex();
        let mut found: Vec<(u8, BuildRecord)> = found
            .into_iter()
            .filter(|f| {
                let filed_right = f.record.build_key == *key && f.record.schema == BUILD_SCHEMA;
                if let (false, Some(remote)) = (filed_right, &self.remote) {
                    let holds = format!(
                        "a {} record of build key {}",
                        f.record.schema,
                        f.record.build_key.short()
                    );
                    remote.misfiled(&format!("builds/{hex}"), &f.stem, &holds);
                }
                filed_right
            })
            .map(|f| {
                let writer = Some(f.writer_label());
                (f.rank, BuildRecord { writer, ..f.record })
            })
            .filter(|(_, r)| self.signature_checked(r))
            .collect();
        found.sort_by(|(ra, a), (rb, b)| {
            (ra, a.status != BuildStatus::Ok)
                .cmp(&(rb, b.status != BuildStatus::Ok))
                .then(a.time.cmp(&b.time))
        });
        let Some((first_rank, first)) = found.first().cloned() else {
            return Ok(None);
        };
        let disagrees = |r: &BuildRecord| r.signature.is_some() && r.signature != first.signature;
        let conflicts: Vec<&BuildRecord> = found
            .iter()
            .skip(1)
            .filter(|(rank, r)| *rank == first_rank && disagrees(r))
            .map(|(_, r)| r)
            .collect();
        let outranked: Vec<&BuildRecord> = found
            .iter()
            .filter(|(rank, r)| *rank > first_rank && disagrees(r))
            .map(|(_, r)| r)
            .collect();
        self.write(|w| {
            for (i, (_, r)) in found.iter().enumerate() {
                let under = if i == 0 {
                    hex.clone()
                } else {
                    format!("{hex}/{}", r.signature.as_deref().unwrap_or("failed"))
                };
                w.put(CF_BUILDS, &under, r);
                if let Some(sr) = r.signature_record() {
                    w.put(CF_SIGNATURES, &format!("{}/{hex}", sr.signature), &sr);
                }
                for a in &r.artifacts {
                    if !self.blobs.contains(&a.blake3) {
                        // Not in the local tier: restore fetches it.
                        w.mark_evicted(&a.blake3, 0);
                    }
                }
            }
            w.add(Counter::DeterminismConflicts, conflicts.len() as i64);
            Ok(())
        })?;
        // Equally trusted writers that disagree: the build is not reproducible.
        for r in conflicts {
            crate::warn(&self.describe_nondeterminism(&first, r));
        }
        // A less trusted writer that disagrees is outvoted, and said.
        for r in outranked {
            crate::warn(&format!(
                "build key {} has kernel signature {} from trusted writer {}; writer {} (not trusted) \
                 claims {}: not used",
                key.short(),
                first.signature.as_deref().map_or("?", crate::short_id),
                first.writer.as_deref().unwrap_or("?"),
                r.writer.as_deref().unwrap_or("?"),
                r.signature.as_deref().map_or("?", crate::short_id),
            ));
        }
        Ok(Some(first))
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

    /// The build record for `key`: local tier, else the remote (backfilled).
    /// The record of `key` when there is something to restore: a build
    /// that succeeded (else why not).
    pub fn restorable(&self, key: &BuildKey) -> Result<Result<BuildRecord, Unrestorable>, StoreError> {
        Ok(match self.build(key)? {
            None => Err(Unrestorable::NoBuild(*key)),
            Some(r) if r.status != BuildStatus::Ok => Err(Unrestorable::Failed(*key)),
            Some(r) => Ok(r),
        })
    }

    pub fn build(&self, key: &BuildKey) -> Result<Option<BuildRecord>, StoreError> {
        match self.build_local(key)? {
            Some(r) => Ok(Some(r)),
            None => self.build_from_remote(key),
        }
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

    /// Restores artifacts under `dest`, each at its name; every byte is
    /// verified against its hash first.
    pub fn restore(&self, artifacts: &[Artifact], dest: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let mut out = Vec::with_capacity(artifacts.len());
        for a in artifacts {
            let target = dest.join(safe_relative(&a.name));
            self.restore_one(a, &target)?;
            if a.executable {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| StoreError::io(&target, e))?;
            }
            out.push(target);
        }
        Ok(out)
    }

    /// One artifact to `target`. A blob that is missing or corrupt (or a
    /// base of its delta chain: the damaged one is quarantined on the
    /// way) is fetched again from the remote when there is one; else the
    /// artifact is gone ([`StoreError::is_gone`]) and the caller builds it.
    fn restore_one(&self, a: &Artifact, target: &Path) -> Result<(), StoreError> {
        for attempt in 0..2 {
            self.fetch_missing(&a.blake3)?;
            match self.blobs.get_to_file(&a.blake3, target) {
                Ok(_) => return Ok(()),
                Err(e @ StoreError::CorruptBlob { .. }) => crate::warn(&e.to_string()),
                Err(StoreError::MissingBlob(_)) => {}
                Err(e) => return Err(e),
            }
            if attempt == 0 && self.remote.as_ref().is_none_or(|r| r.is_down()) {
                break;
            }
        }
        Err(self.gone(a))
    }

    /// Why an artifact cannot be restored: a blob of its chain in
    /// quarantine, else evicted.
    fn gone(&self, a: &Artifact) -> StoreError {
        let chain = self.blobs.chain_of(&a.blake3).unwrap_or_default();
        std::iter::once(a.blake3)
            .chain(chain)
            .find_map(|k| self.blobs.quarantined(&k).map(|path| (k, path)))
            .map_or_else(
                || StoreError::Evicted(a.name.clone()),
                |(blob, path)| StoreError::Quarantined {
                    name: a.name.clone(),
                    blob,
                    path,
                },
            )
    }

    /// Restores a build's artifacts and re-signs its vmlinux before its
    /// signature is believed (a few milliseconds: see the signature
    /// benchmark). A vmlinux without the record's signature means the
    /// record lies (its bytes passed their BLAKE3 check): the record is
    /// forgotten and the artifact reported missing, so the caller builds.
    pub fn restore_build(&self, record: &BuildRecord, dest: &Path) -> Result<Vec<PathBuf>, StoreError> {
        let restored = self.restore(&record.artifacts, dest)?;
        if let (Some(claimed), Some(vmlinux), Some(first)) =
            (&record.signature, restored.first(), record.artifacts.first())
        {
            if claimed.as_str().len() == 64 && !resigns_to(vmlinux, claimed) {
                crate::warn(&format!(
                    "build {} claims kernel signature {} but its restored {} does not have it: record dropped, building again",
                    record.build_key.short(),
                    claimed.short(),
                    first.name
                ));
                self.forget_build(&record.build_key)?;
                return Err(StoreError::Evicted(first.name.clone()));
            }
        }
        Ok(restored)
    }

    /// Restores one blob (its chain fetched as needed) to `dest`; its size.
    pub fn restore_blob(&self, key: &Key, dest: &Path) -> Result<u64, StoreError> {
        self.fetch_missing(key)?;
        self.blobs.get_to_file(key, dest).map_err(|e| match e {
            StoreError::MissingBlob(missing) => match self.blobs.quarantined(&missing) {
                Some(path) => StoreError::Quarantined {
                    name: format!("blob {}", key.short()),
                    blob: missing,
                    path,
                },
                None => e,
            },
            e => e,
        })
    }

    /// Fetches from the remote what reading a blob needs and the local tier
    /// lacks: the blob (with its delta chain), or links of its chain.
    fn fetch_missing(&self, key: &Key) -> Result<(), StoreError> {
        let Some(remote) = &self.remote else { return Ok(()) };
        let missing: Vec<Key> = if self.blobs.contains(key) {
            let chain = self.blobs.chain_of(key)?;
            chain.into_iter().rev().filter(|k| !self.blobs.contains(k)).collect()
        } else {
            vec![*key]
        };
        let mut fetched = Vec::new();
        for k in missing {
            if !self.blobs.contains(&k) && remote.fetch_blob(&k, &self.blobs)? {
                fetched.push(k);
            }
        }
        if !fetched.is_empty() {
            self.write(|w| {
                for k in &fetched {
                    w.unmark_evicted(k);
                }
                Ok(())
            })?;
        }
        Ok(())
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
}

/// Whether the ELF file at `file` has kernel signature `claimed` (a
/// 40-hex signature of syzbot's SHA-1 era cannot be recomputed: no).
pub(crate) fn resigns_to(file: &Path, claimed: &KernelSignature) -> bool {
    crate::signature::ElfFile::open(file)
        .and_then(|f| f.report())
        .is_ok_and(|r| r.signature.to_hex() == claimed.as_str())
}

/// A failed build record for these inputs; callers fill in a success.
fn build_record(commit: &CommitId, inputs: &BuildInputs, build_seconds: f64) -> BuildRecord {
    BuildRecord {
        schema: BUILD_SCHEMA.into(),
        build_key: inputs.key(),
        status: BuildStatus::Failed,
        signature: None,
        artifacts: Vec::new(),
        log_tail: None,
        commit: commit.clone(),
        tree: inputs.tree.clone(),
        config_digest: inputs.config_digest,
        toolchain: inputs.toolchain.clone(),
        arch: inputs.arch.clone(),
        recipe_digest: inputs.recipe_digest,
        build_seconds,
        host: host(),
        time: now(),
        predicted_from: None,
        writer: None,
        patches: inputs.patches.clone(),
        patched_tree: None,
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

/// Keeps artifact names inside the destination directory.
fn safe_relative(name: &str) -> PathBuf {
    Path::new(name)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect()
}
