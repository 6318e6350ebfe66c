//! Keeping the cache healthy: statistics, eviction (`gc`), removal of what
//! killed processes left behind, `verify` and the salvage of a damaged index.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::blob::{BlobEntry, BlobProblem};
use super::index::{
    self, Read, Reader, CF_BUILDS, CF_EVICTED, CF_INPUT_SETS, CF_KNOWN, CF_PENDING, CF_RUNS, CF_SIGNATURES,
};
use super::index::{CF_BISECTIONS, CF_PREBUILDS};
use super::{now, BuildRecord, Cache, RunRecord, SignatureRecord, StoreError, ARTIFACTS_LOCK, ARTIFACTS_PREFIX};
use crate::key::Key;
use crate::signature::{self, KernelSignature};

impl Cache {
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
            // A run's kept console is named by the run, not orphaned.
            let runs: Vec<(String, RunRecord)> = v.r.scan(CF_RUNS, "")?;
            Ok(builds
                .into_iter()
                .flat_map(|(_, b)| b.artifacts.into_iter().map(|a| a.blake3))
                .chain(runs.into_iter().filter_map(|(_, r)| r.log_blob))
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
                CF_PREBUILDS,
                CF_BISECTIONS,
            ] {
                records.insert(cf.to_string(), r.count(cf)?);
            }
            Ok((records, r.counters()?.into_iter().collect()))
        })?;
        let by_writer = self.records_by_writer()?;
        let blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        Ok(Stats {
            cache_dir: self.dir.clone(),
            records,
            blobs: blobs.len() as u64,
            blob_bytes: blobs.iter().map(|b| b.stored_bytes).sum(),
            counters,
            prebuilt: self.prebuilds()?,
            by_writer,
        })
    }

    /// Build and run records by who wrote them: `here`, or the signing
    /// key (`unsigned`) of the team member whose record was copied from the
    /// remote. Only records that name a writer are decoded.
    fn records_by_writer(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        const FIELD: &[u8] = b"\"writer\":\"";
        self.index.read(|r| {
            let mut out = BTreeMap::new();
            for cf in [CF_BUILDS, CF_RUNS] {
                for (_, v) in r.raw(cf)? {
                    let writer = v
                        .windows(FIELD.len())
                        .position(|w| w == FIELD)
                        .and_then(|at| {
                            let rest = &v[at + FIELD.len()..];
                            rest.iter().position(|&b| b == b'"').map(|end| &rest[..end])
                        })
                        .map_or_else(|| "here".to_string(), |w| String::from_utf8_lossy(w).into_owned());
                    *out.entry(writer).or_default() += 1;
                }
            }
            Ok(out)
        })
    }

    /// Says, in one batch, that these blobs were evicted now.
    fn mark_evicted(&self, blobs: &[Key]) -> Result<(), StoreError> {
        let time = now();
        self.write(|w| {
            blobs.iter().for_each(|k| w.mark_evicted(k, time));
            Ok(())
        })
    }

    /// Evicts least-recently-used blobs until the blobs take at most
    /// `max_bytes`. Records stay; an evicted marker says why a blob is gone.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, StoreError> {
        let mut blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        blobs.sort_by_key(|b| b.last_used);
        let mut total: u64 = blobs.iter().map(|b| b.stored_bytes).sum();
        let before = total;
        let victims = self.pick_victims(&blobs, &mut total, max_bytes);
        if !victims.is_empty() {
            self.mark_evicted(&victims)?;
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

    /// Least recently used first, but never the base of a delta that
    /// stays: a base is evicted only with (after) its last dependent.
    fn pick_victims(&self, blobs: &[BlobEntry], total: &mut u64, max_bytes: u64) -> Vec<Key> {
        let chains: HashMap<Key, Vec<Key>> = blobs
            .iter()
            .filter_map(|b| Some((b.key, self.blobs.chain_of(&b.key).ok()?)))
            .filter(|(_, chain)| !chain.is_empty())
            .collect();
        let mut needed: HashMap<Key, usize> = HashMap::new();
        for link in chains.values().flatten() {
            *needed.entry(*link).or_default() += 1;
        }
        let mut victims = Vec::new();
        let mut gone: HashSet<Key> = HashSet::new();
        // Each pass frees the bases whose last dependent the pass before evicted.
        while *total > max_bytes {
            let before = victims.len();
            for b in blobs {
                if *total <= max_bytes {
                    break;
                }
                if gone.contains(&b.key) || needed.get(&b.key).is_some_and(|n| *n > 0) {
                    continue;
                }
                *total -= b.stored_bytes;
                gone.insert(b.key);
                victims.push(b.key);
                for link in chains.get(&b.key).into_iter().flatten() {
                    needed.entry(*link).and_modify(|n| *n -= 1);
                }
            }
            if victims.len() == before {
                break;
            }
        }
        victims
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
            // A run pulled from the team remote names a console kept on its
            // writer's machine (consoles are not uploaded): not missing here.
            if r.writer.is_none() {
                referenced.extend(r.log_blob.iter().map(|b| (format!("runs/{k}"), *b)));
            }
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
            match self.blobs.check(&b.key) {
                Ok(_) => {}
                Err(problem @ BlobProblem::Corrupt(_)) => {
                    report.problems.push(format!("blob {} is corrupt: {problem}", b.key));
                    if repair {
                        self.blobs.quarantine(&b.key);
                        newly_evicted.push(b.key);
                    }
                }
                Err(problem @ BlobProblem::BrokenChain { .. }) => {
                    // Unreadable though not damaged itself: a restore
                    // treats it as missing (rebuilt or refetched).
                    report
                        .problems
                        .push(format!("blob {} cannot be read: {problem}", b.key));
                    if repair && self.blobs.remove(&b.key).is_ok() {
                        newly_evicted.push(b.key);
                    }
                }
            }
        }
        if repair && !newly_evicted.is_empty() {
            // The records stay true: their artifacts are gone, say so.
            self.mark_evicted(&newly_evicted)?;
            report.repaired = true;
        }
        if repair {
            report.tmp_removed = self.blobs.clean_tmp().map_err(|e| StoreError::io(self.dir(), e))?;
        }
        Ok(report)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub cache_dir: PathBuf,
    pub records: BTreeMap<String, u64>,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub counters: BTreeMap<String, i64>,
    /// Every prebuilt range, by recipe and config.
    pub prebuilt: Vec<super::PrebuildRecord>,
    /// Build and run records by writer: `here`, `unsigned` or a team
    /// member's public key (records copied from the remote).
    pub by_writer: BTreeMap<String, u64>,
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
