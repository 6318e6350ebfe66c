//! What can go wrong in the cache, each naming the file or record it
//! concerns (and, for a damaged index, what to do about it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::key::Key;
use crate::signature;

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
    /// The disk under the cache is full: nothing is damaged (a write that
    /// failed for space leaves the index as it was).
    #[error("cache {}: the disk is full (no space left on device), the cache is intact; \
             free some space (`kcache gc --max-size SIZE`, or elsewhere on that file system) and run again",
        cache_of(path).display())]
    NoSpace { path: PathBuf },
    #[error("cache directory {} is not a directory (check --cache-dir / KCACHE_DIR)", .0.display())]
    NotADirectory(PathBuf),
    #[error("cache directory {} is not valid UTF-8: the index (RocksDB) takes UTF-8 paths only; \
             choose another --cache-dir / KCACHE_DIR", .0.display())]
    NotUtf8(PathBuf),
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
    /// An artifact that cannot be read because it (or a base its delta
    /// chain needs) was found corrupt and moved aside: like an eviction,
    /// a bisection builds it again.
    #[error("artifact {name} cannot be restored: blob {blob} was found corrupt and quarantined ({}); \
             a bisection builds it again, `kcache verify` lists what else it broke", path.display())]
    Quarantined { name: String, blob: Key, path: PathBuf },
    #[error("remote {url}: {problem}")]
    Remote { url: String, problem: String },
}

/// The cache directory of an index path (`<cache>/index`).
fn cache_of(index: &Path) -> &Path {
    index.parent().unwrap_or(index)
}

impl StoreError {
    /// An artifact that is not there to restore (evicted, or quarantined
    /// as corrupt): the caller builds it again.
    pub fn is_gone(&self) -> bool {
        matches!(self, StoreError::Evicted(_) | StoreError::Quarantined { .. })
    }

    pub fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
