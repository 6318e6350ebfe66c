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
use crate::vm::workdir;

/// Something `gc` may evict: a blob, or one of the harness's work files.
#[derive(Debug, Clone)]
enum Victim {
    Blob(Key, u64, std::time::SystemTime),
    VmFile(PathBuf, u64, std::time::SystemTime),
}

impl Victim {
    fn blob(&self) -> Option<Key> {
        match self {
            Victim::Blob(k, ..) => Some(*k),
            Victim::VmFile(..) => None,
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Victim::Blob(_, b, _) | Victim::VmFile(_, b, _) => *b,
        }
    }

    fn vm_bytes(&self) -> u64 {
        match self {
            Victim::Blob(..) => 0,
            Victim::VmFile(_, b, _) => *b,
        }
    }

    fn last_used(&self) -> std::time::SystemTime {
        match self {
            Victim::Blob(_, _, t) | Victim::VmFile(_, _, t) => *t,
        }
    }
}

/// Work files were there but could not be evicted: a harness held them.
fn held_by_a_harness(all: &[workdir::Entry], evictable: &[workdir::Entry]) -> bool {
    !all.is_empty() && evictable.is_empty()
}

impl Cache {
    /// Names every record that is not its family's record (damaged, or
    /// JSON of another shape: `{}` under a run key, a schema-only build)
    /// and every counter of the wrong width; a repair deletes them.
    fn unparsable_records(&self, repair: bool, report: &mut VerifyReport) -> Result<(), StoreError> {
        let bad = self.index.read(unparsable)?;
        if repair && !bad.is_empty() {
            self.write(|w| {
                for b in &bad {
                    w.delete(b.cf, &b.key);
                }
                Ok(())
            })?;
            report.repaired = true;
        }
        for b in bad {
            let fate = if repair { " (deleted)" } else { "" };
            report
                .problems
                .push(format!("record {}/{} is unreadable: {}{fate}", b.cf, b.key, b.problem));
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
        let vm_dir = self.dir.join(workdir::DIR);
        let vm_files = workdir::list(&vm_dir).map_err(|e| StoreError::io(&vm_dir, e))?;
        Ok(Stats {
            cache_dir: self.dir.clone(),
            records,
            blobs: blobs.len() as u64,
            blob_bytes: blobs.iter().map(|b| b.stored_bytes).sum(),
            vm_files: vm_files.len() as u64,
            vm_bytes: vm_files.iter().map(|f| f.bytes).sum(),
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

    /// Marks the blobs evicted, then removes them. On a full disk there is
    /// no room for the markers: the blobs go first (a blob missing without
    /// its marker is what a restore treats as gone and `verify` names),
    /// then the markers are written in the space they freed.
    fn evict_blobs(&self, victims: &[Key]) -> Result<(), StoreError> {
        if victims.is_empty() {
            return Ok(());
        }
        match self.mark_evicted(victims) {
            Ok(()) => {}
            Err(StoreError::NoSpace { .. }) => {
                crate::notice("the disk is full: evicting the blobs before writing their eviction markers");
                self.remove_blobs(victims);
                if let Err(e) = self.mark_evicted(victims) {
                    // The space is freed all the same; a blob missing
                    // without its marker is what `verify --repair` marks.
                    crate::warn(&format!(
                        "evicted {} blob(s) but could not write their eviction markers ({e}); \
                         run `kcache verify --repair` once there is space",
                        victims.len()
                    ));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        self.remove_blobs(victims);
        Ok(())
    }

    fn remove_blobs(&self, keys: &[Key]) {
        for k in keys {
            let _ = self.blobs.remove(k);
        }
    }

    /// Evicts least-recently-used content until blobs and the harness's
    /// work files (`vm/`: compiled reproducers, initramfs images, made
    /// again when needed) take at most `max_bytes`. Records stay; an
    /// evicted marker says why a blob is gone. While a harness uses `vm/`
    /// its files are counted but not evicted.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, StoreError> {
        let blobs = self.blobs.list().map_err(|e| StoreError::io(self.dir(), e))?;
        let vm_dir = self.dir.join(workdir::DIR);
        let vm_files = workdir::list(&vm_dir).map_err(|e| StoreError::io(&vm_dir, e))?;
        let vm_lock = workdir::lock_for_eviction(&vm_dir);
        let evictable_vm: &[workdir::Entry] = if vm_lock.is_some() { &vm_files } else { &[] };
        let vm_before: u64 = vm_files.iter().map(|f| f.bytes).sum();
        let mut total: u64 = blobs.iter().map(|b| b.stored_bytes).sum::<u64>() + vm_before;
        let before = total;
        let victims = self.pick_victims(&blobs, evictable_vm, &mut total, max_bytes);
        let blob_victims: Vec<Key> = victims.iter().filter_map(Victim::blob).collect();
        self.evict_blobs(&blob_victims)?;
        let mut vm_evicted = 0;
        for v in &victims {
            if let Victim::VmFile(path, ..) = v {
                workdir::remove(path).map_err(|e| StoreError::io(path, e))?;
                vm_evicted += 1;
            }
        }
        let vm_freed: u64 = victims.iter().map(Victim::vm_bytes).sum();
        drop(vm_lock);
        let tmp_removed = self.blobs.clean_tmp().map_err(|e| StoreError::io(self.dir(), e))?
            + self.clean_stale()
            + workdir::clean_temporary(&vm_dir);
        Ok(GcReport {
            evicted: blob_victims.len(),
            bytes_before: before,
            bytes_after: total,
            tmp_removed,
            vm_evicted,
            vm_bytes: vm_before - vm_freed,
            vm_in_use: held_by_a_harness(&vm_files, evictable_vm),
        })
    }

    /// Least recently used first, blobs and work files alike, but never
    /// the base of a delta that stays: a base is evicted only with (after)
    /// its last dependent.
    fn pick_victims(
        &self,
        blobs: &[BlobEntry],
        vm_files: &[workdir::Entry],
        total: &mut u64,
        max_bytes: u64,
    ) -> Vec<Victim> {
        let chains: HashMap<Key, Vec<Key>> = blobs
            .iter()
            .filter_map(|b| Some((b.key, self.blobs.chain_of(&b.key).ok()?)))
            .filter(|(_, chain)| !chain.is_empty())
            .collect();
        let mut needed: HashMap<Key, usize> = HashMap::new();
        for link in chains.values().flatten() {
            *needed.entry(*link).or_default() += 1;
        }
        let mut candidates: Vec<Victim> = blobs
            .iter()
            .map(|b| Victim::Blob(b.key, b.stored_bytes, b.last_used))
            .chain(
                vm_files
                    .iter()
                    .map(|f| Victim::VmFile(f.path.clone(), f.bytes, f.last_used)),
            )
            .collect();
        candidates.sort_by_key(Victim::last_used);
        let mut victims = Vec::new();
        let mut gone: HashSet<usize> = HashSet::new();
        // Each pass frees the bases whose last dependent the pass before evicted.
        while *total > max_bytes {
            let before = victims.len();
            for (i, c) in candidates.iter().enumerate() {
                if *total <= max_bytes {
                    break;
                }
                if gone.contains(&i) || c.blob().is_some_and(|k| needed.get(&k).is_some_and(|n| *n > 0)) {
                    continue;
                }
                *total -= c.bytes();
                gone.insert(i);
                if let Some(k) = c.blob() {
                    for link in chains.get(&k).into_iter().flatten() {
                        needed.entry(*link).and_modify(|n| *n -= 1);
                    }
                }
                victims.push(c.clone());
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
        let damaged = match self.index.read(read_every_block) {
            Ok(_) => None,
            Err(e @ StoreError::IndexDamaged { .. }) if repair => Some(e),
            Err(e) => return Err(e),
        };
        if let Some(e) = &damaged {
            report
                .problems
                .push(e.to_string().lines().next().unwrap_or("").to_string());
            self.index.repair()?;
            report.repaired = true;
        }
        self.unparsable_records(repair, &mut report)?;
        if damaged.is_some() {
            let after = self.index.read(read_every_block)?;
            report.salvage = Some(self.salvage_report(after)?);
        }
        // Records named above as unreadable are left out (without --repair
        // they are still there).
        let (builds, sigs, runs, evicted) = self.index.read(|r| {
            Ok((
                parsable::<BuildRecord>(r, CF_BUILDS)?,
                parsable::<SignatureRecord>(r, CF_SIGNATURES)?,
                parsable::<RunRecord>(r, CF_RUNS)?,
                parsable::<u64>(r, CF_EVICTED)?,
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
            // Pulled runs too: their consoles are fetched with them.
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
        self.verify_vm_files(repair, &mut report)?;
        if repair {
            report.tmp_removed = self.blobs.clean_tmp().map_err(|e| StoreError::io(self.dir(), e))?
                + workdir::clean_temporary(&self.dir.join(workdir::DIR));
        }
        Ok(report)
    }

    /// Every work file of the harness (`vm/`) against its digest. A repair
    /// deletes the bad ones (they are made again when needed), unless a
    /// running harness holds the directory.
    fn verify_vm_files(&self, repair: bool, report: &mut VerifyReport) -> Result<(), StoreError> {
        let dir = self.dir.join(workdir::DIR);
        let files = workdir::list(&dir).map_err(|e| StoreError::io(&dir, e))?;
        report.vm_files = files.len() as u64;
        let bad: Vec<(&workdir::Entry, workdir::Problem)> = files
            .iter()
            .filter_map(|f| workdir::check(&f.path).err().map(|p| (f, p)))
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        let lock = if repair { workdir::lock_for_eviction(&dir) } else { None };
        for (f, problem) in bad {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let fate = match &lock {
                Some(_) => {
                    workdir::remove(&f.path).map_err(|e| StoreError::io(&f.path, e))?;
                    report.repaired = true;
                    " (deleted: it is made again when needed)"
                }
                None if repair => " (not deleted: a running harness uses vm/; repair again after it)",
                None => "",
            };
            report.problems.push(format!("{}/{name} {problem}{fate}", workdir::DIR));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub cache_dir: PathBuf,
    pub records: BTreeMap<String, u64>,
    pub blobs: u64,
    pub blob_bytes: u64,
    /// The reproducer harness's work files (`vm/`): programs and initramfs images.
    pub vm_files: u64,
    pub vm_bytes: u64,
    pub counters: BTreeMap<String, i64>,
    /// Every prebuilt range, by recipe and config.
    pub prebuilt: Vec<super::PrebuildRecord>,
    /// Build and run records by writer: `here`, `unsigned` or a team
    /// member's public key (records copied from the remote).
    pub by_writer: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GcReport {
    /// Blobs evicted.
    pub evicted: usize,
    /// Blobs and work files (`vm/`), before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub tmp_removed: usize,
    /// The harness's work files (compiled reproducers, initramfs images) evicted.
    pub vm_evicted: usize,
    /// What the work files still take.
    pub vm_bytes: u64,
    /// A harness was using `vm/`: its files were counted, not evicted.
    pub vm_in_use: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    pub records: u64,
    pub blobs: u64,
    /// The harness's work files checked (`vm/`).
    pub vm_files: u64,
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
/// its checksum checked) and counts them.
fn read_every_block(r: &Reader) -> Result<RecordCounts, StoreError> {
    let mut counts = RecordCounts::new();
    for cf in index::ALL_CFS {
        counts.insert(cf.to_string(), r.raw(cf)?.len() as u64);
    }
    Ok(counts)
}

/// A record that is not what its column family holds.
struct Unparsable {
    cf: &'static str,
    key: String,
    problem: String,
}

/// Why `bytes` is not a record of column family `cf`, if it is not.
fn record_problem(cf: &str, bytes: &[u8]) -> Option<String> {
    fn check<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Option<String> {
        serde_json::from_slice::<T>(bytes).err().map(|e| e.to_string())
    }
    match cf {
        CF_BUILDS => check::<BuildRecord>(bytes),
        CF_SIGNATURES => check::<SignatureRecord>(bytes),
        CF_RUNS => check::<RunRecord>(bytes),
        CF_KNOWN | index::CF_KNOWN_BY_SIGNATURE => check::<super::KnownSignature>(bytes),
        CF_EVICTED => check::<u64>(bytes),
        CF_PENDING => check::<u8>(bytes),
        CF_INPUT_SETS => check::<super::InputSet>(bytes),
        CF_PREBUILDS => check::<super::PrebuildRecord>(bytes),
        index::CF_COUNTERS => (bytes.len() != 8).then(|| {
            format!(
                "a counter is 8 bytes (a little-endian i64), this one is {}",
                bytes.len()
            )
        }),
        // Bisection records are the bisect module's documents.
        _ => check::<serde_json::Value>(bytes),
    }
}

/// Every record of the index that does not parse as its family's record.
fn unparsable(r: &Reader) -> Result<Vec<Unparsable>, StoreError> {
    let mut bad = Vec::new();
    for cf in index::ALL_CFS {
        for (key, v) in r.raw(cf)? {
            if let Some(problem) = record_problem(cf, &v) {
                bad.push(Unparsable { cf, key, problem });
            }
        }
    }
    Ok(bad)
}

/// The records of `cf` that parse as `T` (the others are reported by
/// [`unparsable`]).
fn parsable<T: serde::de::DeserializeOwned>(r: &Reader, cf: &str) -> Result<Vec<(String, T)>, StoreError> {
    Ok(r.raw(cf)?
        .into_iter()
        .filter_map(|(k, v)| Some((k, serde_json::from_slice(&v).ok()?)))
        .collect())
}

impl VerifyReport {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}
