//! The RocksDB index: one column family per record kind.
//!
//! Many kcache processes share one cache directory (four bisections and a
//! `kcache stats`, say), and RocksDB lets only one process open a database
//! for writing. So no process keeps it open: writers open it for the moment
//! of one atomic, fsynced write batch, readers open it read-only for the
//! moment of their reads. An advisory lock beside the index (`index.lock`)
//! orders the two: shared for readers, exclusive for writers. Without it a
//! read-only open racing a write open (which flushes and deletes the
//! write-ahead log it recovers) can miss records that exist. Writes take
//! milliseconds, so waits are short; one longer than a second is reported,
//! and after [`LOCK_TIMEOUT`] the operation fails with a clear error
//! instead of hanging.
//!
//! A bisection asks the index many small questions per step, and each open
//! costs milliseconds. So a long-running process may take a *lease*
//! ([`Index::hold`]): it keeps the index open read-write (under the
//! exclusive lock) between operations, and gives it up within
//! [`LEASE_POLL`] when another process asks for it. Asking is a file:
//! a process that finds the lock taken touches `index.wants/<pid>` while
//! it waits; the holder's watcher thread sees another process's fresh file
//! there, closes the index
//! and does not take the lease again for [`LEASE_BACKOFF`]. Every write is
//! still one fsynced batch, so a killed holder loses nothing.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use rocksdb::{ColumnFamilyDescriptor, IteratorMode, MergeOperands, Options, WriteBatch, WriteOptions, DB};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

pub const CF_BUILDS: &str = "builds";
pub const CF_SIGNATURES: &str = "signatures";
pub const CF_RUNS: &str = "runs";
pub const CF_KNOWN: &str = "known_signatures";
pub const CF_KNOWN_BY_SIGNATURE: &str = "known_by_signature";
pub const CF_EVICTED: &str = "evicted";
/// Local writes not yet uploaded to the remote (`build/<key>`, `run/<key>`).
pub const CF_PENDING: &str = "pending_upload";
pub const CF_COUNTERS: &str = "counters";
/// What each kbuild build read (`kcache.input-set.v1`), by build key.
pub const CF_INPUT_SETS: &str = "input_sets";
/// One record per prebuilt range and recipe (`kcache.prebuild.v1`).
pub const CF_PREBUILDS: &str = "prebuilds";
/// One record per finished bisection (`kcache.bisection.v1`), by id.
pub const CF_BISECTIONS: &str = "bisections";
pub const ALL_CFS: &[&str] = &[
    CF_BUILDS,
    CF_SIGNATURES,
    CF_RUNS,
    CF_KNOWN,
    CF_KNOWN_BY_SIGNATURE,
    CF_EVICTED,
    CF_PENDING,
    CF_COUNTERS,
    CF_INPUT_SETS,
    CF_PREBUILDS,
    CF_BISECTIONS,
];

pub const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
const REPORT_WAIT_AFTER: Duration = Duration::from_secs(1);
/// How often a lease holder looks for another process asking for the index.
pub const LEASE_POLL: Duration = Duration::from_millis(10);
/// After giving the lease up, a holder opens per operation this long.
pub const LEASE_BACKOFF: Duration = Duration::from_secs(2);
/// A request in `index.wants/` older than this is from a waiter that is gone.
const WANT_FRESH: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Index {
    path: PathBuf,
    /// Shared by every clone in this process (see [`Index::hold`]).
    lease: Arc<Mutex<Lease>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("path", &self.path)
            .field("lease", &lock_lease(&self.lease).enabled)
            .finish()
    }
}

/// The index kept open between operations, or when it was last given up.
#[derive(Default)]
struct Lease {
    enabled: bool,
    open: Option<Open>,
    given_up: Option<Instant>,
}

/// A read-only view of the index.
pub struct Reader<'a> {
    db: &'a DB,
}

/// Writes gathered into one atomic batch.
pub struct Writer<'a> {
    db: &'a DB,
    batch: WriteBatch,
}

fn add_counter(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    let decode = |b: &[u8]| b.try_into().map(i64::from_le_bytes).unwrap_or(0);
    let total = operands
        .iter()
        .fold(existing.map_or(0, decode), |acc, op| acc.wrapping_add(decode(op)));
    Some(total.to_le_bytes().to_vec())
}

fn cf_options(name: &str) -> Options {
    let mut o = Options::default();
    if name == CF_COUNTERS {
        o.set_merge_operator_associative("add_i64", add_counter);
    }
    o.set_compression_type(rocksdb::DBCompressionType::Lz4);
    o
}

fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_open_files(16);
    // Opens are frequent and short (see the module docs): skip the work a
    // long-lived process would amortize.
    o.set_skip_stats_update_on_db_open(true);
    o.set_keep_log_file_num(2);
    // RocksDB opens table files with up to 16 threads per column family by
    // default: a hundred thread spawns per open, most of an open's cost here.
    o.set_max_file_opening_threads(1);
    o
}

fn descriptors() -> Vec<ColumnFamilyDescriptor> {
    ALL_CFS
        .iter()
        .map(|n| ColumnFamilyDescriptor::new(*n, cf_options(n)))
        .collect()
}

fn is_lock_error(e: &rocksdb::Error) -> bool {
    let s = e.to_string();
    s.contains("LOCK") || s.contains("lock file") || s.contains("Resource temporarily unavailable")
}

impl Index {
    pub fn new(path: &Path) -> Index {
        Index {
            path: path.to_path_buf(),
            lease: Arc::default(),
        }
    }

    /// This index with a lease (see the module docs): operations reuse one
    /// read-write open until another process asks for the index. A
    /// watcher thread gives the lease up on request, and ends with the
    /// last clone.
    pub fn hold(&self) {
        let mut lease = lock_lease(&self.lease);
        if lease.enabled {
            return;
        }
        let weak = Arc::downgrade(&self.lease);
        let wants = self.wants_dir();
        let spawned = std::thread::Builder::new()
            .name("kcache-lease".into())
            .spawn(move || watch_lease(&weak, &wants));
        // Without a watcher nobody could take the index from us.
        lease.enabled = spawned.is_ok();
    }

    /// Closes a leased open now (before this process opens the index
    /// another way, which the lease's lock would block).
    fn give_up_lease(&self) {
        lock_lease(&self.lease).give_up();
    }

    fn wants_dir(&self) -> PathBuf {
        self.path.with_extension("wants")
    }

    /// Tells a lease holder that this process waits for the index (best
    /// effort: a reader that may not write there cannot ask, and waits).
    fn ask_for_index(&self) -> bool {
        let dir = self.wants_dir();
        let _ = std::fs::create_dir(&dir);
        let path = dir.join(std::process::id().to_string());
        File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now()))
            .is_ok()
    }

    fn stop_asking(&self) {
        let _ = std::fs::remove_file(self.wants_dir().join(std::process::id().to_string()));
    }

    /// Runs `f` on the leased open (taking the lease if it is free to
    /// take), or returns `None` when this index holds no lease or is
    /// backing off.
    fn with_lease<R>(&self, f: impl FnOnce(&DB) -> Result<R, StoreError>) -> Option<Result<R, StoreError>> {
        let mut lease = lock_lease(&self.lease);
        if !lease.enabled {
            return None;
        }
        if lease.open.is_none() {
            let backing_off = lease.given_up.is_some_and(|t| t.elapsed() < LEASE_BACKOFF);
            if backing_off || another_process_wants(&self.wants_dir()) {
                return None;
            }
            match self.open_rw() {
                Ok(open) => lease.open = Some(open),
                Err(e) => return Some(Err(e)),
            }
        }
        let db = &lease.open.as_ref().expect("just opened").db;
        Some(f(db))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db_err(&self, e: impl std::fmt::Display) -> StoreError {
        index_error(&self.path, e)
    }

    /// Whether the index directory holds records (or the remains of
    /// them): a table, or a write-ahead log with something in it. A
    /// process killed while it created the index leaves a MANIFEST and
    /// an empty log but no CURRENT: no record can be lost there.
    fn has_database_files(&self) -> bool {
        std::fs::read_dir(&self.path).is_ok_and(|d| {
            d.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                let non_empty = || e.metadata().is_ok_and(|m| m.len() > 0);
                name.ends_with(".sst") || (name.ends_with(".log") && non_empty())
            })
        })
    }

    /// Runs RocksDB's repair on the index (under the exclusive lock): it
    /// salvages every record still readable and drops what is not.
    /// It repairs a copy and swaps it in (see `index_swap`): a process
    /// killed inside never leaves an index with fewer records than before.
    pub fn repair(&self) -> Result<(), StoreError> {
        self.give_up_lease();
        let _lock = self.lock(true)?;
        super::index_swap::repair_on_a_copy(&self.path, |copy| {
            DB::repair(&db_options(), copy).map_err(|e| self.db_err(e))?;
            // Repair keeps the column families it finds; a write open adds
            // any it lost.
            drop(DB::open_cf_descriptors(&db_options(), copy, descriptors()).map_err(|e| self.db_err(e))?);
            Ok(())
        })
    }

    /// Takes the advisory lock beside the index: shared for readers,
    /// exclusive for writers; waits are bounded and reported. A reader of a
    /// cache it may not write (a read-only mirror, a container layer) takes
    /// the shared lock through a read-only open, or none where the lock
    /// file cannot exist: then no kcache can be writing there either.
    fn lock(&self, exclusive: bool) -> Result<Option<File>, StoreError> {
        let path = self.path.with_extension("lock");
        let opened = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path);
        let file = match opened {
            Ok(f) => f,
            Err(e) if !exclusive && is_read_only(&e) => match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(StoreError::io(&path, e)),
            },
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let start = Instant::now();
        let mut delay = Duration::from_millis(1);
        let mut reported = false;
        let mut asked = false;
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => {
                    if asked {
                        self.stop_asking();
                    }
                    if reported {
                        crate::notice(&format!(
                            "got the cache index after waiting {:.1}s",
                            start.elapsed().as_secs_f64()
                        ));
                    }
                    return Ok(Some(file));
                }
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
            }
            let waited = start.elapsed();
            if waited > LOCK_TIMEOUT {
                if asked {
                    self.stop_asking();
                }
                return Err(StoreError::Busy {
                    path: self.path.clone(),
                    waited,
                });
            }
            asked |= self.ask_for_index();
            if waited > REPORT_WAIT_AFTER && !reported {
                crate::notice(&format!(
                    "waiting for the cache index {}: another kcache process is using it",
                    self.path.display()
                ));
                reported = true;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(50));
        }
    }

    /// Opens the index for writing under the exclusive lock. RocksDB's own
    /// lock is then free but for a process that does not take ours.
    fn open_rw(&self) -> Result<Open, StoreError> {
        let lock = self.lock(true)?;
        super::index_swap::finish_interrupted_repair(&self.path)?;
        // Without CURRENT, RocksDB would start an empty database beside the
        // old files: every record silently gone.
        if !self.path.join("CURRENT").exists() && self.has_database_files() {
            return Err(self.db_err("Corruption: CURRENT is missing but database files remain"));
        }
        let start = Instant::now();
        loop {
            match DB::open_cf_descriptors(&db_options(), &self.path, descriptors()) {
                Ok(db) => return Ok(Open { db, _lock: lock }),
                Err(e) if is_lock_error(&e) && start.elapsed() < LOCK_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.db_err(e)),
            }
        }
    }

    /// Opens the index read-only under the shared lock.
    fn open_ro(&self) -> Result<Open, StoreError> {
        for first in [true, false] {
            if !self.path.join("CURRENT").exists() || super::index_swap::repair_interrupted(&self.path) {
                drop(self.open_rw()?);
            }
            let lock = self.lock(false)?;
            match DB::open_cf_descriptors_read_only(&db_options(), &self.path, descriptors(), false) {
                Ok(db) => return Ok(Open { db, _lock: lock }),
                Err(e) if first && e.to_string().contains("olumn famil") => {
                    // A cache made by an older kcache: a write open adds the
                    // missing column families (not while we hold the shared lock).
                    drop(lock);
                    drop(self.open_rw()?);
                }
                Err(e) => return Err(self.db_err(e)),
            }
        }
        unreachable_open(&self.path)
    }

    pub fn read<R>(&self, f: impl FnOnce(&Reader) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut f = Some(f);
        if let Some(result) = self.with_lease(|db| (f.take().expect("runs once"))(&Reader { db })) {
            return result;
        }
        let open = self.open_ro()?;
        (f.take().expect("runs once"))(&Reader { db: &open.db })
    }

    /// Runs `f` and commits everything it wrote as one fsynced batch.
    pub fn write<R>(&self, f: impl FnOnce(&mut Writer) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut f = Some(f);
        if let Some(result) = self.with_lease(|db| self.write_batch(db, f.take().expect("runs once"))) {
            return result;
        }
        let open = self.open_rw()?;
        self.write_batch(&open.db, f.take().expect("runs once"))
    }

    fn write_batch<R>(&self, db: &DB, f: impl FnOnce(&mut Writer) -> Result<R, StoreError>) -> Result<R, StoreError> {
        let mut w = Writer {
            db,
            batch: WriteBatch::default(),
        };
        let result = f(&mut w)?;
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        db.write_opt(w.batch, &opts).map_err(|e| self.db_err(e))?;
        Ok(result)
    }

    /// Runs `f` with the index open for writing (and reading) for a while:
    /// bulk loads and benchmarks. Everyone else waits meanwhile.
    pub fn session<R>(&self, f: impl FnOnce(&Writer) -> Result<R, StoreError>) -> Result<R, StoreError> {
        self.give_up_lease();
        let open = self.open_rw()?;
        let w = Writer {
            db: &open.db,
            batch: WriteBatch::default(),
        };
        f(&w)
    }
}

impl Lease {
    /// Closes the leased open, flushed: the next process finds the
    /// records in table files, as after a per-operation open.
    fn give_up(&mut self) {
        if let Some(open) = self.open.take() {
            let _ = flush_all(&open.db);
            self.given_up = Some(Instant::now());
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.give_up();
    }
}

fn flush_all(db: &DB) -> Result<(), StoreError> {
    for name in ALL_CFS {
        db.flush_cf(cf(db, name)).map_err(|e| index_error(db.path(), e))?;
    }
    Ok(())
}

/// The lease holder's watcher: gives the index up when another process
/// asks for it; ends when the last handle on the lease is gone.
fn watch_lease(lease: &Weak<Mutex<Lease>>, wants: &Path) {
    loop {
        std::thread::sleep(LEASE_POLL);
        let Some(lease) = lease.upgrade() else { return };
        if another_process_wants(wants) {
            lock_lease(&lease).give_up();
        }
    }
}

/// Whether a process other than this one asked for the index lately.
fn another_process_wants(wants: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(wants) else {
        return false;
    };
    let me = std::process::id().to_string();
    entries.flatten().any(|e| {
        e.file_name().to_str() != Some(me.as_str())
            && e.metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().map_or(true, |age| age < WANT_FRESH))
    })
}

/// The lease's lock; a panic elsewhere while holding it leaves a lease
/// that is still consistent (an open or none), so poisoning is ignored.
fn lock_lease(lease: &Mutex<Lease>) -> MutexGuard<'_, Lease> {
    lease.lock().unwrap_or_else(|p| p.into_inner())
}

/// An open database and the advisory lock it was opened under; the
/// database closes before the lock is released (fields drop in order).
struct Open {
    db: DB,
    _lock: Option<File>,
}

/// Errors that mean "you may not write here", not "something is broken".
fn is_read_only(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

fn unreachable_open(path: &Path) -> Result<Open, StoreError> {
    Err(StoreError::Index {
        path: path.to_path_buf(),
        problem: "column families still missing after a write open".into(),
    })
}

/// A RocksDB error as a store error: damage (corruption, a missing or
/// truncated file) and a full disk get their own variants, which tell the
/// user what to do.
fn index_error(path: &Path, e: impl std::fmt::Display) -> StoreError {
    let problem = e.to_string();
    // RocksDB names the file it failed to write (a MANIFEST, say): a full
    // disk must not read as damage.
    if problem.contains("No space left on device") {
        return StoreError::NoSpace {
            path: path.to_path_buf(),
        };
    }
    const DAMAGE: &[&str] = &[
        "Corruption",
        "No such file",
        "checksum",
        "MANIFEST",
        "CURRENT",
        "truncated",
        "Invalid argument",
    ];
    if DAMAGE.iter().any(|d| problem.contains(d)) {
        StoreError::IndexDamaged {
            path: path.to_path_buf(),
            problem,
        }
    } else {
        StoreError::Index {
            path: path.to_path_buf(),
            problem,
        }
    }
}

fn cf<'d>(db: &'d DB, name: &str) -> &'d rocksdb::ColumnFamily {
    db.cf_handle(name).expect("every column family is opened")
}

fn decode<T: DeserializeOwned>(cf_name: &str, key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadRecord {
        cf: cf_name.to_string(),
        key: String::from_utf8_lossy(key).into_owned(),
        problem: e.to_string(),
    })
}

/// Reads shared by `Reader` and `Writer`.
pub trait Read {
    fn db(&self) -> &DB;

    fn get<T: DeserializeOwned>(&self, cf_name: &str, key: &str) -> Result<Option<T>, StoreError> {
        let db = self.db();
        match db.get_cf(cf(db, cf_name), key.as_bytes()) {
            Ok(Some(bytes)) => decode(cf_name, key.as_bytes(), &bytes).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(index_error(db.path(), e)),
        }
    }

    fn exists(&self, cf_name: &str, key: &str) -> Result<bool, StoreError> {
        let db = self.db();
        db.get_pinned_cf(cf(db, cf_name), key.as_bytes())
            .map(|v| v.is_some())
            .map_err(|e| index_error(db.path(), e))
    }

    /// Every (key, record) whose key starts with `prefix`, in key order.
    fn scan<T: DeserializeOwned>(&self, cf_name: &str, prefix: &str) -> Result<Vec<(String, T)>, StoreError> {
        let db = self.db();
        let mode = IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward);
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, cf_name), mode) {
            let (k, v) = item.map_err(|e| index_error(db.path(), e))?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            let key = String::from_utf8_lossy(&k).into_owned();
            out.push((key, decode(cf_name, &k, &v)?));
        }
        Ok(out)
    }

    /// The distinct first `/`-separated segments of the keys starting
    /// with `prefix`, at most `limit` of them (prefix lookups need 2 to
    /// tell unique from ambiguous).
    fn heads(&self, cf_name: &str, prefix: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mode = IteratorMode::From(prefix.as_bytes(), rocksdb::Direction::Forward);
        let mut out: Vec<String> = Vec::new();
        for item in db.iterator_cf(cf(db, cf_name), mode) {
            let (k, _) = item.map_err(|e| index_error(db.path(), e))?;
            if !k.starts_with(prefix.as_bytes()) || out.len() >= limit {
                break;
            }
            let key = String::from_utf8_lossy(&k);
            let head = key.split('/').next().unwrap_or_default();
            if out.last().map(String::as_str) != Some(head) {
                out.push(head.to_string());
            }
        }
        Ok(out)
    }

    /// Number of keys in a column family (exact; walks the keys).
    fn count(&self, cf_name: &str) -> Result<u64, StoreError> {
        let db = self.db();
        let mut n = 0;
        for item in db.iterator_cf(cf(db, cf_name), IteratorMode::Start) {
            item.map_err(|e| index_error(db.path(), e))?;
            n += 1;
        }
        Ok(n)
    }

    fn counter(&self, name: &str) -> Result<i64, StoreError> {
        let db = self.db();
        let v = db
            .get_cf(cf(db, CF_COUNTERS), name.as_bytes())
            .map_err(|e| index_error(db.path(), e))?;
        Ok(v.and_then(|b| b.as_slice().try_into().ok())
            .map_or(0, i64::from_le_bytes))
    }

    /// Every (key, raw value) of a column family.
    fn raw(&self, cf_name: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let db = self.db();
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, cf_name), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| index_error(db.path(), e))?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    fn counters(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let db = self.db();
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, CF_COUNTERS), IteratorMode::Start) {
            let (k, v) = item.map_err(|e| index_error(db.path(), e))?;
            let value = v.as_ref().try_into().map_or(0, i64::from_le_bytes);
            out.push((String::from_utf8_lossy(&k).into_owned(), value));
        }
        Ok(out)
    }
}

impl Read for Reader<'_> {
    fn db(&self) -> &DB {
        self.db
    }
}

impl Read for Writer<'_> {
    fn db(&self) -> &DB {
        self.db
    }
}

impl Writer<'_> {
    pub fn put<T: Serialize>(&mut self, cf_name: &str, key: &str, record: &T) {
        let bytes = serde_json::to_vec(record).expect("records serialize");
        self.batch.put_cf(cf(self.db, cf_name), key.as_bytes(), bytes);
    }

    pub fn delete(&mut self, cf_name: &str, key: &str) {
        self.batch.delete_cf(cf(self.db, cf_name), key.as_bytes());
    }

    /// Says why a blob is gone: evicted at `time` (unix seconds; 0: never
    /// here, a record backfilled from the remote whose blob is fetched on
    /// restore). Records stay; `stats`, `verify` and restores read this.
    pub fn mark_evicted(&mut self, blob: &crate::key::Key, time: u64) {
        self.put(CF_EVICTED, &blob.to_hex(), &time);
    }

    /// The blob is here again: no longer evicted.
    pub fn unmark_evicted(&mut self, blob: &crate::key::Key) {
        self.delete(CF_EVICTED, &blob.to_hex());
    }

    pub fn add(&mut self, counter: super::Counter, delta: i64) {
        self.batch
            .merge_cf(cf(self.db, CF_COUNTERS), counter.name().as_bytes(), delta.to_le_bytes());
    }

    /// Writes one record immediately, unsynced (bulk loads only; a session
    /// ends with [`Writer::flush`]).
    pub fn put_now<T: Serialize>(&self, cf_name: &str, key: &str, record: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).expect("records serialize");
        let mut opts = WriteOptions::default();
        opts.disable_wal(true);
        self.db
            .put_cf_opt(cf(self.db, cf_name), key.as_bytes(), bytes, &opts)
            .map_err(|e| index_error(self.db.path(), e))
    }

    pub fn flush(&self) -> Result<(), StoreError> {
        for name in ALL_CFS {
            self.db
                .flush_cf(cf(self.db, name))
                .map_err(|e| index_error(self.db.path(), e))?;
        }
        Ok(())
    }
}
