//! The harness's work directory (`<cache>/vm/`): compiled programs and
//! initramfs images, each derived from its inputs and regenerated when
//! missing, so any of them may be evicted or deleted at any time but while
//! a harness is using the directory.
//!
//! Conventions every writer and reader here keeps:
//! - `NAME` is a derived file, written atomically (rename); beside it
//!   `NAME.blake3` holds the hex BLAKE3 of its bytes, written after it. A
//!   file without a matching digest is not reused (it is made again) and
//!   `verify` reports it.
//! - A reuse sets the file's modification time: it is the "last used"
//!   time `gc` evicts by, least recently used first.
//! - A harness holds a shared lock on `.in-use` for as long as it lives;
//!   eviction takes it exclusively, or evicts nothing (the harness's
//!   initramfs must stay while its VMs boot).
//! - Names starting with `.` are temporary (a compile's directory, a file
//!   being written) and may be removed once a minute old.
//!
//! Invariant: depends on nothing in the crate; knows file names and
//! digests, never what the files mean. `store`'s `gc` and `verify` use it
//! for the cache's `vm/` directory.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The work directory's name under the cache directory.
pub const DIR: &str = "vm";
const DIGEST_SUFFIX: &str = ".blake3";
const LOCK: &str = ".in-use";
/// A temporary file younger than this may still be being written.
const TEMP_GRACE: Duration = Duration::from_secs(60);

/// One derived file: its size (with its digest file) and last use.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: PathBuf,
    pub bytes: u64,
    pub last_used: SystemTime,
}

/// The derived files in `dir` (none when it does not exist).
pub fn list(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for e in entries {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let meta = e.metadata()?;
        if name.starts_with('.') || name.ends_with(DIGEST_SUFFIX) || !meta.is_file() {
            continue;
        }
        let path = e.path();
        let digest_bytes = std::fs::metadata(digest_path(&path)).map_or(0, |m| m.len());
        out.push(Entry {
            bytes: meta.len() + digest_bytes,
            last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            path,
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn digest_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(DIGEST_SUFFIX);
    PathBuf::from(p)
}

/// Why a derived file cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("has no digest file ({}{DIGEST_SUFFIX}; made by a kcache before digests, or half-written)", name(.0))]
    NoDigest(PathBuf),
    #[error("does not match its digest (damaged or half-written)")]
    Mismatch,
    #[error("cannot be read: {0}")]
    Unreadable(String),
}

fn name(p: &Path) -> String {
    p.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Checks `path` against its digest file.
pub fn check(path: &Path) -> Result<(), Problem> {
    let want = match std::fs::read_to_string(digest_path(path)) {
        Ok(text) => text.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Problem::NoDigest(path.to_path_buf())),
        Err(e) => return Err(Problem::Unreadable(e.to_string())),
    };
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_mmap(path)
        .map_err(|e| Problem::Unreadable(e.to_string()))?;
    if hasher.finalize().to_hex().as_str() == want {
        Ok(())
    } else {
        Err(Problem::Mismatch)
    }
}

/// `path` is there and matches its digest: marks it used and says yes.
/// Anything else (missing, damaged, no digest) says no: the caller makes
/// it again.
pub fn reuse(path: &Path) -> bool {
    if check(path).is_err() {
        return false;
    }
    // Best effort: a file that cannot be touched is still good.
    let _ = File::options()
        .append(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    true
}

/// Moves the finished file `tmp` (in `path`'s directory) to `path`, then
/// writes `path`'s digest file: a reader sees no digest or the right one.
pub fn publish(tmp: &Path, path: &Path) -> std::io::Result<()> {
    let digest = blake3::Hasher::new().update_mmap(tmp)?.finalize();
    std::fs::rename(tmp, path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut f = tempfile::Builder::new().prefix(".digest-").tempfile_in(dir)?;
    f.write_all(digest.to_hex().as_bytes())?;
    f.persist(digest_path(path)).map_err(|e| e.error)?;
    Ok(())
}

/// Removes a derived file and its digest file.
pub fn remove(path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(digest_path(path));
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes temporary files and directories (names starting with `.`,
/// but the lock) older than a minute, and digest files whose file is
/// gone. Returns how many it removed.
pub fn clean_temporary(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        let orphan_digest = name
            .strip_suffix(DIGEST_SUFFIX)
            .is_some_and(|f| !f.starts_with('.') && !dir.join(f).exists());
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= TEMP_GRACE);
        let temporary = name.starts_with('.') && name != LOCK;
        if !(orphan_digest || (temporary && old)) {
            continue;
        }
        let gone = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

/// A harness's hold on the directory: while any exists, [`lock_for_eviction`]
/// fails and nothing is evicted.
#[derive(Debug)]
pub struct InUse {
    _file: File,
}

fn lock_file(dir: &Path) -> std::io::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK))
}

/// Marks `dir` in use (a shared lock, waited for while an eviction runs).
pub fn hold(dir: &Path) -> std::io::Result<InUse> {
    let file = lock_file(dir)?;
    file.lock_shared()?;
    Ok(InUse { _file: file })
}

/// The exclusive lock eviction needs; `None` while a harness uses the
/// directory (or it does not exist).
pub fn lock_for_eviction(dir: &Path) -> Option<File> {
    if !dir.is_dir() {
        return None;
    }
    let file = lock_file(dir).ok()?;
    file.try_lock().ok()?;
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derived(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let tmp = dir.join(format!(".tmp-{name}"));
        std::fs::write(&tmp, bytes).unwrap();
        let path = dir.join(name);
        publish(&tmp, &path).unwrap();
        path
    }

    #[test]
    fn a_published_file_checks_and_a_damaged_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = derived(dir.path(), "repro-abc", b"\x7fELF program");
        assert_eq!(check(&p), Ok(()));
        assert!(reuse(&p));
        std::fs::write(&p, b"\x7fELF progra").unwrap();
        assert_eq!(check(&p), Err(Problem::Mismatch));
        assert!(!reuse(&p));
        std::fs::remove_file(digest_path(&p)).unwrap();
        assert!(matches!(check(&p), Err(Problem::NoDigest(_))));
        let e = list(dir.path()).unwrap();
        assert_eq!(e.len(), 1, "digest and temporary files are not entries: {e:?}");
        remove(&p).unwrap();
        assert!(list(dir.path()).unwrap().is_empty());
    }

    #[test]
    fn reuse_marks_the_file_used() {
        let dir = tempfile::tempdir().unwrap();
        let p = derived(dir.path(), "init-1", b"init");
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .append(true)
            .open(&p)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(list(dir.path()).unwrap()[0].last_used <= old + Duration::from_secs(1));
        assert!(reuse(&p));
        assert!(list(dir.path()).unwrap()[0].last_used > old + Duration::from_secs(60));
    }

    #[test]
    fn a_holder_blocks_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let held = hold(dir.path()).unwrap();
        assert!(lock_for_eviction(dir.path()).is_none());
        drop(held);
        assert!(lock_for_eviction(dir.path()).is_some());
        assert!(lock_for_eviction(&dir.path().join("absent")).is_none());
    }

    #[test]
    fn cleaning_keeps_young_temporaries_and_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _held = hold(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join(".compile-x")).unwrap();
        std::fs::write(dir.path().join("gone.blake3"), "00").unwrap();
        assert_eq!(clean_temporary(dir.path()), 1, "only the orphan digest file");
        assert!(dir.path().join(".compile-x").exists());
        assert!(dir.path().join(LOCK).exists());
    }
}
