//! Content-addressed blobs: named by BLAKE3 of the uncompressed bytes,
//! stored zstd-compressed at `blobs/<2 hex>/<64 hex>.zst`.
//!
//! A blob is written to `tmp/`, fsynced, renamed into place and its
//! directory fsynced, so a blob that exists is complete. Every read
//! re-hashes what it decompresses; a blob that does not hash to its name is
//! moved to `quarantine/` and reported, never returned.
//!
//! Dense storage: a blob may be a *delta* (`kcache.delta.v1`, see
//! `cache-schema/blob-delta.v1.json`): a zstd skippable frame holding a
//! JSON header that names its chain (its base, the base's base, ... down to
//! a full blob), then a zstd frame compressed with the base's bytes as
//! reference prefix (zstd's "patch-from" with long-distance matching). Two
//! builds of neighbouring commits differ in a few KB, so a vmlinux costs KBs
//! instead of MBs. A chain is at most [`MAX_CHAIN`] links, so a read
//! decodes at most that many blobs; a delta that does not pay is stored
//! full. Full blobs are plain zstd files, as before: old caches read as
//! they are. A delta's name is still the BLAKE3 of the bytes it decodes to,
//! and every read checks it. A delta whose base was quarantined or deleted
//! is not [`BlobStore::readable`]: callers treat it as missing, and storing
//! the same bytes again rewrites it (deltas against it stay valid: they
//! decode against its bytes, not its file).

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::StoreError;
use crate::key::Key;

/// zstd level: fast enough that compression keeps up with a 2-core build
/// host, while vmlinux still shrinks to about a third.
const ZSTD_LEVEL: i32 = 1;
/// Files above this size are compressed with zstd's worker threads.
const MULTITHREAD_ABOVE: u64 = 32 << 20;

/// The longest delta chain: a read decodes at most this many blobs.
pub const MAX_CHAIN: usize = 16;
/// A delta larger than 1/DELTA_PAYS of its raw size is not worth a chain
/// link: the blob is stored full (a full vmlinux is ~1/5.5 of raw).
const DELTA_PAYS: u64 = 12;
/// zstd level of deltas: long-distance matching does the work.
const DELTA_LEVEL: i32 = 3;
/// The skippable-frame magic a delta starts with (zstd reserves
/// 0x184D2A50..0x184D2A5F for frames decoders skip).
const DELTA_MAGIC: u32 = 0x184D_2A5B;
pub const DELTA_FORMAT: &str = "kcache.delta.v1";
/// A header larger than this is not kcache's.
const MAX_HEADER: u32 = 64 << 10;

/// A delta blob's header (`cache-schema/blob-delta.v1.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeltaHeader {
    pub format: String,
    /// The blobs this one needs, nearest first: its base, the base's
    /// base, ..., ending at a full blob.
    pub chain: Vec<Key>,
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// What putting a blob did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub key: Key,
    pub size: u64,
    /// Compressed bytes written; 0 when the blob was already there.
    pub written: u64,
}

impl BlobStore {
    pub fn new(cache_dir: &Path) -> BlobStore {
        BlobStore {
            root: cache_dir.to_path_buf(),
        }
    }

    pub fn path_of(&self, key: &Key) -> PathBuf {
        let hex = key.to_hex();
        self.root.join("blobs").join(&hex[..2]).join(format!("{hex}.zst"))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    pub fn contains(&self, key: &Key) -> bool {
        self.path_of(key).is_file()
    }

    /// Whether a stored blob can be read: it is here, and so is every
    /// base its delta chain decodes against. A delta whose base was
    /// quarantined or deleted is not (issue 27): storing the same bytes
    /// again rewrites it, and nothing is stored against it.
    pub fn readable(&self, key: &Key) -> bool {
        let mut key = *key;
        for _ in 0..=MAX_CHAIN {
            match self.chain_of(&key) {
                Ok(chain) => match chain.first() {
                    None => return true,
                    Some(base) => key = *base,
                },
                Err(_) => return false,
            }
        }
        false
    }

    /// Where a quarantined blob went (the newest copy), if it was.
    pub fn quarantined(&self, key: &Key) -> Option<PathBuf> {
        let prefix = format!("{}.", key.to_hex());
        fs::read_dir(self.quarantine_dir())
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
            .map(|e| e.path())
            .max()
    }

    /// Stores a file's bytes; does nothing but hash when already stored.
    pub fn put_file(&self, path: &Path) -> Result<Stored, StoreError> {
        let io_err = |e| StoreError::io(path, e);
        let size = fs::metadata(path).map_err(io_err)?.len();
        let key = crate::key::file_digest(path).map_err(io_err)?;
        if self.readable(&key) {
            return Ok(Stored { key, size, written: 0 });
        }
        let mut src = File::open(path).map_err(io_err)?;
        let written = self.write_compressed(&key, &mut src, size)?;
        Ok(Stored { key, size, written })
    }

    /// Stores a file as a delta against `base` (a stored blob: the same
    /// artifact of a neighbouring build) when the chain stays within
    /// [`MAX_CHAIN`] and the delta pays; else as a full blob.
    pub fn put_file_against(&self, path: &Path, base: Option<&Key>) -> Result<Stored, StoreError> {
        let io_err = |e| StoreError::io(path, e);
        let size = fs::metadata(path).map_err(io_err)?.len();
        let key = crate::key::file_digest(path).map_err(io_err)?;
        // A stored copy whose chain is broken is written again (same
        // bytes, same name: blobs that are deltas against it stay valid).
        if self.readable(&key) {
            return Ok(Stored { key, size, written: 0 });
        }
        if let Some(base) = base.filter(|b| **b != key && self.readable(b)) {
            match self.try_delta(&key, path, base) {
                Ok(Some(written)) => return Ok(Stored { key, size, written }),
                Ok(None) => {}
                // A base found damaged on the way (now quarantined) is no
                // reason to fail a build: the blob is stored full.
                Err(StoreError::CorruptBlob { .. } | StoreError::MissingBlob(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut src = File::open(path).map_err(io_err)?;
        let written = self.write_compressed(&key, &mut src, size)?;
        Ok(Stored { key, size, written })
    }

    /// Writes `path` as a delta against `base`; `None` when the chain
    /// would be too long or the delta does not pay (nothing written).
    fn try_delta(&self, key: &Key, path: &Path, base: &Key) -> Result<Option<u64>, StoreError> {
        let mut chain = vec![*base];
        chain.extend(self.chain_of(base)?);
        if chain.len() > MAX_CHAIN {
            return Ok(None);
        }
        let mut reference = Vec::new();
        self.read_verified(base, &mut reference)?;
        // The new file is streamed (only the base must be in memory, as
        // zstd's reference prefix), and the encoder stops as soon as the
        // delta outgrows what pays: no whole wasted compression before the
        // full blob is written instead.
        let src = File::open(path).map_err(|e| StoreError::io(path, e))?;
        let size = src.metadata().map_err(|e| StoreError::io(path, e))?.len();
        let pays = (size / DELTA_PAYS).max(4096);
        let header = serde_json::to_vec(&DeltaHeader {
            format: DELTA_FORMAT.into(),
            chain,
        })
        .expect("headers serialize");
        let tmp_dir = self.tmp_dir();
        fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let io_err = |e| StoreError::io(&tmp_path, e);
        let encoded = (|| {
            let mut out = Capped {
                inner: BufWriter::with_capacity(1 << 20, tmp.as_file()),
                left: pays,
            };
            out.write_all(&DELTA_MAGIC.to_le_bytes())?;
            out.write_all(&(header.len() as u32).to_le_bytes())?;
            out.write_all(&header)?;
            let mut enc = zstd::Encoder::with_ref_prefix(out, DELTA_LEVEL, &reference)?;
            enc.long_distance_matching(true)?;
            enc.window_log(window_log(reference.len() + size as usize))?;
            enc.include_contentsize(true)?;
            enc.set_pledged_src_size(Some(size))?;
            io::copy(&mut BufReader::with_capacity(1 << 20, &src), &mut enc)?;
            enc.finish()?.inner.flush()
        })();
        match encoded {
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<DoesNotPay>()) => return Ok(None),
            other => other.map_err(io_err)?,
        }
        let written = tmp.as_file().metadata().map_err(io_err)?.len();
        tmp.as_file().sync_all().map_err(io_err)?;
        self.install(key, tmp)?;
        Ok(Some(written))
    }

    /// The blobs a stored blob needs to be read (empty for a full blob).
    pub fn chain_of(&self, key: &Key) -> Result<Vec<Key>, StoreError> {
        let path = self.path_of(key);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::MissingBlob(*key)),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        match read_header(&mut file) {
            Ok(h) => Ok(h.map(|h| h.chain).unwrap_or_default()),
            Err(problem) => Err(StoreError::CorruptBlob {
                key: *key,
                path,
                problem,
                quarantined: None,
            }),
        }
    }

    /// The chain a blob file not yet installed names (a download).
    pub fn chain_in(file: &Path) -> Result<Vec<Key>, String> {
        let mut f = File::open(file).map_err(|e| e.to_string())?;
        Ok(read_header(&mut f)?.map(|h| h.chain).unwrap_or_default())
    }

    /// Stores bytes held in memory (small blobs: logs, manifests).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Stored, StoreError> {
        let key = crate::key::digest(bytes);
        let size = bytes.len() as u64;
        if self.contains(&key) {
            return Ok(Stored { key, size, written: 0 });
        }
        let written = self.write_compressed(&key, &mut &bytes[..], size)?;
        Ok(Stored { key, size, written })
    }

    fn write_compressed(&self, key: &Key, src: &mut dyn Read, size: u64) -> Result<u64, StoreError> {
        let tmp_dir = self.tmp_dir();
        fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        let tmp_path = tmp.path().to_path_buf();
        let io_err = |e| StoreError::io(&tmp_path, e);
        {
            let mut enc =
                zstd::Encoder::new(BufWriter::with_capacity(1 << 20, tmp.as_file()), ZSTD_LEVEL).map_err(io_err)?;
            if size > MULTITHREAD_ABOVE {
                let workers = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
                enc.multithread(workers).map_err(io_err)?;
            }
            enc.include_contentsize(true).map_err(io_err)?;
            enc.set_pledged_src_size(Some(size)).map_err(io_err)?;
            io::copy(src, &mut enc).map_err(io_err)?;
            enc.finish().map_err(io_err)?.flush().map_err(io_err)?;
        }
        tmp.as_file().sync_all().map_err(io_err)?;
        let written = tmp.as_file().metadata().map_err(io_err)?.len();
        self.install(key, tmp)?;
        Ok(written)
    }

    /// Renames a complete, synced blob file into place.
    fn install(&self, key: &Key, tmp: tempfile::NamedTempFile) -> Result<(), StoreError> {
        let dest = self.path_of(key);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        tmp.persist(&dest).map_err(|e| StoreError::io(&dest, e.error))?;
        sync_dir(dir)
    }

    /// Decompresses a blob into `dest` (written via a temp file and renamed),
    /// verifying its hash; a corrupt blob is quarantined and reported.
    pub fn get_to_file(&self, key: &Key, dest: &Path) -> Result<u64, StoreError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| StoreError::io(dir, e))?;
        let size = {
            let mut out = BufWriter::with_capacity(1 << 20, tmp.as_file());
            let n = self.read_verified(key, &mut out)?;
            out.flush().map_err(|e| StoreError::io(dest, e))?;
            n
        };
        tmp.persist(dest).map_err(|e| StoreError::io(dest, e.error))?;
        Ok(size)
    }

    /// The blob's bytes in memory (small blobs only).
    pub fn get_bytes(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        self.read_verified(key, &mut out)?;
        Ok(out)
    }

    /// Streams the decompressed blob into `out` while hashing it. `out`
    /// must not be trusted by the caller unless this returns `Ok`; a blob
    /// that fails the check is quarantined.
    pub fn read_verified(&self, key: &Key, out: &mut dyn Write) -> Result<u64, StoreError> {
        self.read_verified_at(key, out, 0, Quarantine::Yes)
    }

    fn read_verified_at(&self, key: &Key, out: &mut dyn Write, depth: usize, q: Quarantine) -> Result<u64, StoreError> {
        match self.stream(key, out, depth, q)? {
            Ok(n) => {
                if q == Quarantine::Yes {
                    touch(&self.path_of(key));
                }
                Ok(n)
            }
            Err(problem) => {
                let path = self.path_of(key);
                let quarantined = match q {
                    Quarantine::Yes => self.quarantine(key),
                    Quarantine::No => None,
                };
                Err(StoreError::CorruptBlob {
                    key: *key,
                    path,
                    problem,
                    quarantined,
                })
            }
        }
    }

    /// Checks a blob without keeping its bytes or moving anything (its
    /// bases included): what `verify` reports.
    pub fn check(&self, key: &Key) -> Result<u64, BlobProblem> {
        match self.stream(key, &mut io::sink(), 0, Quarantine::No) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(problem)) => Err(BlobProblem::Corrupt(problem)),
            Err(StoreError::MissingBlob(base)) if base != *key => Err(BlobProblem::BrokenChain {
                base,
                why: "missing".into(),
            }),
            Err(StoreError::CorruptBlob { key: base, problem, .. }) if base != *key => Err(BlobProblem::BrokenChain {
                base,
                why: format!("corrupt: {problem}"),
            }),
            Err(e) => Err(BlobProblem::Corrupt(e.to_string())),
        }
    }

    /// A temp file in this store's `tmp/`, for a blob arriving from elsewhere.
    pub fn incoming(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let tmp_dir = self.tmp_dir();
        fs::create_dir_all(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))?;
        tempfile::NamedTempFile::new_in(&tmp_dir).map_err(|e| StoreError::io(&tmp_dir, e))
    }

    /// Moves a compressed blob that arrived in `file` into place, after
    /// checking that it decompresses to bytes that hash to `key`. A blob
    /// that fails is dropped, never installed.
    pub fn install_verified(&self, key: &Key, file: tempfile::NamedTempFile) -> Result<(), String> {
        file.as_file().sync_all().map_err(|e| e.to_string())?;
        let reopened = File::open(file.path()).map_err(|e| e.to_string())?;
        self.verify_file(key, reopened, &mut io::sink(), 0, Quarantine::Yes)
            .map_err(|e| e.to_string())??;
        let dest = self.path_of(key);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        file.persist(&dest).map_err(|e| e.error.to_string())?;
        sync_dir(dir).map_err(|e| e.to_string())
    }

    /// Outer error: the blob (or a base it needs) cannot be had; inner:
    /// the blob itself is corrupt.
    fn stream(
        &self,
        key: &Key,
        out: &mut dyn Write,
        depth: usize,
        q: Quarantine,
    ) -> Result<Result<u64, String>, StoreError> {
        let path = self.path_of(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::MissingBlob(*key)),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        self.verify_file(key, file, out, depth, q)
    }

    /// Decodes a blob file (full or delta) into `out` while hashing it. A
    /// delta's base is read (and verified) first; a base that is missing
    /// or corrupt is the outer error, so the delta itself is not blamed.
    fn verify_file(
        &self,
        key: &Key,
        mut file: File,
        out: &mut dyn Write,
        depth: usize,
        q: Quarantine,
    ) -> Result<Result<u64, String>, StoreError> {
        let header = match read_header(&mut file) {
            Ok(h) => h,
            Err(problem) => return Ok(Err(problem)),
        };
        let Some(header) = header else {
            return verify_stream(key, file, None, out);
        };
        let Some(base) = header.chain.first() else {
            return Ok(Err("a delta without a base".into()));
        };
        if depth >= MAX_CHAIN || base == key {
            return Ok(Err(format!("its chain is longer than {MAX_CHAIN} links (or a loop)")));
        }
        let mut reference = Vec::new();
        self.read_verified_at(base, &mut reference, depth + 1, q)?;
        verify_stream(key, file, Some(&reference), out)
    }

    /// Moves a blob aside so it is never read again; returns where it went.
    pub fn quarantine(&self, key: &Key) -> Option<PathBuf> {
        let q = self.quarantine_dir();
        fs::create_dir_all(&q).ok()?;
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dest = q.join(format!("{}.{stamp}.zst", key.to_hex()));
        fs::rename(self.path_of(key), &dest).ok()?;
        Some(dest)
    }

    pub fn remove(&self, key: &Key) -> io::Result<()> {
        fs::remove_file(self.path_of(key))
    }

    /// Every stored blob with its compressed size and last use.
    pub fn list(&self) -> io::Result<Vec<BlobEntry>> {
        let mut out = Vec::new();
        let root = self.root.join("blobs");
        let Ok(shards) = fs::read_dir(&root) else {
            return Ok(out);
        };
        for shard in shards {
            for entry in fs::read_dir(shard?.path())? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(key) = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".zst"))
                    .and_then(Key::from_hex)
                else {
                    continue;
                };
                let meta = entry.metadata()?;
                out.push(BlobEntry {
                    key,
                    stored_bytes: meta.len(),
                    last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
        Ok(out)
    }

    /// Removes temp files a killed writer left behind.
    pub fn clean_tmp(&self) -> io::Result<usize> {
        let Ok(entries) = fs::read_dir(self.tmp_dir()) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries {
            let e = e?;
            let old = e
                .metadata()?
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 3600);
            if old && fs::remove_file(e.path()).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Whether a read that finds a corrupt blob moves it aside (a restore) or
/// only reports it (`verify` without `--repair`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quarantine {
    Yes,
    No,
}

/// Why a stored blob cannot be read (`verify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobProblem {
    /// The blob's own bytes are bad.
    Corrupt(String),
    /// A delta whose chain is broken: a base it decodes against is
    /// missing or corrupt (the blob itself may be fine).
    BrokenChain { base: Key, why: String },
}

impl std::fmt::Display for BlobProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobProblem::Corrupt(p) => f.write_str(p),
            BlobProblem::BrokenChain { base, why } => {
                write!(f, "broken delta chain: its base blob {base} is {why}")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct BlobEntry {
    pub key: Key,
    pub stored_bytes: u64,
    pub last_used: SystemTime,
}

/// Decompresses `file` into `out` while hashing. Outer error: writing `out`
/// failed; inner error: the blob is corrupt.
fn verify_stream(
    key: &Key,
    file: File,
    reference: Option<&[u8]>,
    out: &mut dyn Write,
) -> Result<Result<u64, String>, StoreError> {
    let mut hasher = blake3::Hasher::new();
    // A failure to write `out` is the destination's problem, not the
    // blob's: it must not get a good blob quarantined.
    let mut sink_error = None;
    let copied = (|| -> io::Result<u64> {
        let mut dec = match reference {
            Some(r) => zstd::Decoder::with_ref_prefix(BufReader::new(file), r)?,
            None => zstd::Decoder::new(file)?,
        };
        dec.window_log_max(31)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = dec.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            hasher.update(&buf[..n]);
            if let Err(e) = out.write_all(&buf[..n]) {
                sink_error = Some(e);
                return Ok(total);
            }
            total += n as u64;
        }
    })();
    if let Some(e) = sink_error {
        return Err(StoreError::io(Path::new("(restore destination)"), e));
    }
    Ok(match copied {
        Ok(n) if *hasher.finalize().as_bytes() == key.0 => Ok(n),
        Ok(_) => Err("content does not hash to its name".to_string()),
        Err(e) => Err(format!("cannot decompress: {e}")),
    })
}

/// The delta header at the start of a blob file, leaving the file at the
/// zstd frame; a full blob has none (the file is left at its start).
fn read_header(file: &mut File) -> Result<Option<DeltaHeader>, String> {
    let mut head = [0u8; 8];
    let n = read_up_to(file, &mut head).map_err(|e| e.to_string())?;
    if n < 8 || u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) != DELTA_MAGIC {
        file.rewind().map_err(|e| e.to_string())?;
        return Ok(None);
    }
    let len = u32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
    if len > MAX_HEADER {
        return Err(format!("delta header of {len} bytes (at most {MAX_HEADER})"));
    }
    let mut bytes = vec![0u8; len as usize];
    file.read_exact(&mut bytes)
        .map_err(|e| format!("truncated delta header: {e}"))?;
    let header: DeltaHeader = serde_json::from_slice(&bytes).map_err(|e| format!("bad delta header: {e}"))?;
    if header.format != DELTA_FORMAT {
        return Err(format!("unknown blob format {:?}", header.format));
    }
    Ok(Some(header))
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// A window that spans the reference and the new bytes, so every match in
/// the reference is reachable (zstd's patch-from rule).
/// A writer that fails with [`DoesNotPay`] once more than `left` bytes
/// were written: a delta that does not pay stops early.
struct Capped<W: Write> {
    inner: W,
    left: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("the delta does not pay")]
struct DoesNotPay;

impl<W: Write> Write for Capped<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(DoesNotPay));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn window_log(span: usize) -> u32 {
    let bits = usize::BITS - span.max(1).leading_zeros();
    bits.clamp(17, 31)
}

/// Marks a blob as just used, for least-recently-used eviction.
fn touch(path: &Path) {
    if let Ok(f) = File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put_bytes(b"hello kernel").unwrap();
        assert!(a.written > 0);
        let again = store.put_bytes(b"hello kernel").unwrap();
        assert_eq!(again.written, 0);
        assert_eq!(store.get_bytes(&a.key).unwrap(), b"hello kernel");
    }

    #[test]
    fn corrupt_blob_is_quarantined_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put_bytes(&vec![7u8; 10000]).unwrap();
        let other = zstd::encode_all(&b"something else"[..], 1).unwrap();
        fs::write(store.path_of(&a.key), other).unwrap();
        let err = store.get_bytes(&a.key).unwrap_err();
        assert!(matches!(err, StoreError::CorruptBlob { .. }), "{err}");
        assert!(err.to_string().contains(&a.key.to_hex()));
        assert!(!store.contains(&a.key));
        assert!(matches!(store.get_bytes(&a.key), Err(StoreError::MissingBlob(_))));
    }

    #[test]
    fn truncated_and_garbage_blobs_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let a = store.put_bytes(&data).unwrap();
        let path = store.path_of(&a.key);
        let full = fs::read(&path).unwrap();
        fs::write(&path, &full[..full.len() / 2]).unwrap();
        assert!(store.check(&a.key).is_err());
        store.put_bytes(&data).unwrap();
        fs::write(&path, b"garbage, not zstd").unwrap();
        assert!(store.check(&a.key).is_err());
    }

    /// A kernel-like file: pseudo-random (incompressible) 1 MiB, with
    /// `edits` bytes changed at spread positions.
    fn version(dir: &Path, name: &str, edits: &[usize]) -> PathBuf {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut data: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for &e in edits {
            let at = e * 7919 % data.len();
            data[at] = data[at].wrapping_add(1);
        }
        let path = dir.join(name);
        fs::write(&path, &data).unwrap();
        path
    }

    #[test]
    fn a_neighbour_is_stored_as_a_small_delta_and_reads_back_bit_for_bit() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put_file(&version(dir.path(), "a", &[])).unwrap();
        let b_path = version(dir.path(), "b", &[1, 2, 3]);
        let b = store.put_file_against(&b_path, Some(&a.key)).unwrap();
        assert!(a.written > 1 << 19, "random bytes do not compress: {}", a.written);
        assert!(b.written < 4096, "the delta is {} bytes", b.written);
        assert_eq!(store.chain_of(&b.key).unwrap(), vec![a.key]);
        assert_eq!(store.get_bytes(&b.key).unwrap(), fs::read(&b_path).unwrap());
        assert!(store.check(&b.key).is_ok());
    }

    #[test]
    fn chains_stay_bounded_and_every_link_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let mut prev: Option<Key> = None;
        let mut keys = Vec::new();
        for i in 0..MAX_CHAIN + 4 {
            let path = version(dir.path(), &format!("v{i}"), &[i]);
            let s = store.put_file_against(&path, prev.as_ref()).unwrap();
            assert!(store.chain_of(&s.key).unwrap().len() <= MAX_CHAIN);
            keys.push((s.key, fs::read(&path).unwrap()));
            prev = Some(s.key);
        }
        let full = keys
            .iter()
            .filter(|(k, _)| store.chain_of(k).unwrap().is_empty())
            .count();
        assert_eq!(full, 2, "a keyframe at the start and one when the chain was full");
        for (k, bytes) in &keys {
            assert_eq!(&store.get_bytes(k).unwrap(), bytes);
        }
    }

    #[test]
    fn a_delta_that_does_not_pay_is_stored_full() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put_file(&version(dir.path(), "a", &[])).unwrap();
        let other = dir.path().join("other");
        fs::write(
            &other,
            (0..1u32 << 18)
                .flat_map(|i| (i * 2_654_435_761).to_le_bytes())
                .collect::<Vec<u8>>(),
        )
        .unwrap();
        let b = store.put_file_against(&other, Some(&a.key)).unwrap();
        assert!(store.chain_of(&b.key).unwrap().is_empty());
        assert_eq!(store.get_bytes(&b.key).unwrap(), fs::read(&other).unwrap());
    }

    #[test]
    fn a_missing_or_corrupt_base_is_named_and_the_delta_is_not_blamed() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put_file(&version(dir.path(), "a", &[])).unwrap();
        let b = store
            .put_file_against(&version(dir.path(), "b", &[5]), Some(&a.key))
            .unwrap();
        let full = fs::read(store.path_of(&a.key)).unwrap();
        fs::write(store.path_of(&a.key), &full[..full.len() / 2]).unwrap();
        let err = store.get_bytes(&b.key).unwrap_err();
        assert!(
            matches!(&err, StoreError::CorruptBlob { key, .. } if *key == a.key),
            "{err}"
        );
        assert!(store.contains(&b.key), "the delta stays");
        assert!(matches!(store.get_bytes(&b.key), Err(StoreError::MissingBlob(k)) if k == a.key));
        // Its chain is broken: `verify` names the base, and storing the
        // same bytes again (a rebuild) makes it readable at once.
        assert!(!store.readable(&b.key));
        assert!(store.quarantined(&a.key).is_some());
        let problem = store.check(&b.key).unwrap_err();
        assert!(
            matches!(&problem, BlobProblem::BrokenChain { base, .. } if *base == a.key),
            "{problem}"
        );
        let again = store.put_file_against(&version(dir.path(), "b", &[5]), None).unwrap();
        assert!(again.written > 0, "rewritten");
        assert!(store.get_bytes(&b.key).is_ok());
    }

    #[test]
    fn a_garbage_delta_header_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::new(dir.path());
        let a = store.put_bytes(b"payload").unwrap();
        let mut bad = DELTA_MAGIC.to_le_bytes().to_vec();
        bad.extend(5u32.to_le_bytes());
        bad.extend(b"{nope");
        fs::write(store.path_of(&a.key), &bad).unwrap();
        let problem = store.check(&a.key).unwrap_err();
        assert!(problem.to_string().contains("bad delta header"), "{problem}");
    }
}
