//! Content-addressed blobs: named by BLAKE3 of the uncompressed bytes,
//! stored zstd-compressed at `blobs/<2 hex>/<64 hex>.zst`.
//!
//! A blob is written to `tmp/`, fsynced, renamed into place and its
//! directory fsynced, so a blob that exists is complete. Every read
//! re-hashes what it decompresses; a blob that does not hash to its name is
//! moved to `quarantine/` and reported, never returned.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::StoreError;
use crate::key::Key;

/// zstd level: fast enough that compression keeps up with a 2-core build
/// host, while vmlinux still shrinks to about a third.
const ZSTD_LEVEL: i32 = 1;
/// Files above this size are compressed with zstd's worker threads.
const MULTITHREAD_ABOVE: u64 = 32 << 20;

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

    /// Stores a file's bytes; does nothing but hash when already stored.
    pub fn put_file(&self, path: &Path) -> Result<Stored, StoreError> {
        let io_err = |e| StoreError::io(path, e);
        let size = fs::metadata(path).map_err(io_err)?.len();
        let key = crate::key::file_digest(path).map_err(io_err)?;
        if self.contains(&key) {
            return Ok(Stored { key, size, written: 0 });
        }
        let mut src = File::open(path).map_err(io_err)?;
        let written = self.write_compressed(&key, &mut src, size)?;
        Ok(Stored { key, size, written })
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
        let dest = self.path_of(key);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        tmp.persist(&dest).map_err(|e| StoreError::io(&dest, e.error))?;
        sync_dir(dir)?;
        Ok(written)
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
        match self.stream(key, out)? {
            Ok(n) => {
                touch(&self.path_of(key));
                Ok(n)
            }
            Err(problem) => {
                let path = self.path_of(key);
                let quarantined = self.quarantine(key);
                Err(StoreError::CorruptBlob {
                    key: *key,
                    path,
                    problem,
                    quarantined,
                })
            }
        }
    }

    /// Checks a blob without keeping its bytes or moving it.
    pub fn check(&self, key: &Key) -> Result<u64, String> {
        match self.stream(key, &mut io::sink()) {
            Ok(inner) => inner,
            Err(e) => Err(e.to_string()),
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
        verify_stream(key, reopened, &mut io::sink()).map_err(|e| e.to_string())??;
        let dest = self.path_of(key);
        let dir = dest.parent().expect("blob paths have a parent");
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        file.persist(&dest).map_err(|e| e.error.to_string())?;
        sync_dir(dir).map_err(|e| e.to_string())
    }

    /// Outer error: the blob cannot be opened; inner: it is corrupt.
    fn stream(&self, key: &Key, out: &mut dyn Write) -> Result<Result<u64, String>, StoreError> {
        let path = self.path_of(key);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::MissingBlob(*key)),
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        verify_stream(key, file, out)
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

#[derive(Debug, Clone)]
pub struct BlobEntry {
    pub key: Key,
    pub stored_bytes: u64,
    pub last_used: SystemTime,
}

/// Decompresses `file` into `out` while hashing. Outer error: writing `out`
/// failed; inner error: the blob is corrupt.
fn verify_stream(key: &Key, file: File, out: &mut dyn Write) -> Result<Result<u64, String>, StoreError> {
    let mut hasher = blake3::Hasher::new();
    // A failure to write `out` is the destination's problem, not the
    // blob's: it must not get a good blob quarantined.
    let mut sink_error = None;
    let copied = (|| -> io::Result<u64> {
        let mut dec = zstd::Decoder::new(file)?;
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
}
