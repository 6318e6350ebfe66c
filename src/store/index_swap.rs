//! A repair of the index that a `kill -9` cannot turn into an empty cache.
//!
//! RocksDB's repair rewrites the MANIFEST and CURRENT in place, and a
//! process killed inside it left a truncated CURRENT or a MANIFEST that
//! names none of the tables (the next open then deleted them as obsolete):
//! every record silently gone. So the repair never touches the index
//! itself. It works on a copy (`index.repairing`), makes the copy durable,
//! and renames it `index.repaired`: that rename is the commit point. The
//! repaired copy then replaces the index by two renames (the damaged index
//! goes to `index.unrepaired` and is deleted last). A process killed at
//! any point leaves either the damaged index as it was (the copy is
//! deleted by the next open) or a complete repaired copy, which the next
//! open puts in place ([`finish_interrupted_repair`]) before it reads
//! anything. All of this runs under the index's exclusive lock.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The copy being repaired: incomplete until renamed to [`repaired`].
fn repairing(index: &Path) -> PathBuf {
    index.with_extension("repairing")
}

/// A complete, durable repaired copy waiting to replace the index.
pub fn repaired(index: &Path) -> PathBuf {
    index.with_extension("repaired")
}

/// The damaged index, moved aside until the repaired copy is in place.
fn unrepaired(index: &Path) -> PathBuf {
    index.with_extension("unrepaired")
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |e| StoreError::io(path, e)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

/// Every file of `dir` (a RocksDB directory has no subdirectory that
/// matters but `lost/`, RocksDB's own archive of what a repair dropped).
fn files(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        if entry.file_type().map_err(io(dir))?.is_file() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Copies the index's files to `to`, each fsynced, and the directory.
fn copy_durably(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::create_dir(to).map_err(io(to))?;
    for file in files(from)? {
        let dest = to.join(file.file_name().expect("a directory entry has a name"));
        std::fs::copy(&file, &dest).map_err(io(&file))?;
    }
    make_durable(to)
}

/// Fsyncs every file of `dir`, then `dir` itself.
fn make_durable(dir: &Path) -> Result<(), StoreError> {
    for file in files(dir)? {
        File::open(&file).and_then(|f| f.sync_all()).map_err(io(&file))?;
    }
    sync_dir(dir)
}

fn remove_dir_if_there(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::io(dir, e)),
        _ => Ok(()),
    }
}

/// Repairs a copy of `index` with `repair` and puts it in place of the
/// index. The caller holds the exclusive lock.
pub fn repair_on_a_copy(index: &Path, repair: impl FnOnce(&Path) -> Result<(), StoreError>) -> Result<(), StoreError> {
    finish_interrupted_repair(index)?;
    let work = repairing(index);
    copy_durably(index, &work)?;
    repair(&work)?;
    make_durable(&work)?;
    std::fs::rename(&work, repaired(index)).map_err(io(&work))?;
    sync_dir(parent(index))?;
    swap_in_repaired(index)
}

/// Puts a complete repaired copy in place of the index, and deletes the
/// damaged index only once the copy is there.
fn swap_in_repaired(index: &Path) -> Result<(), StoreError> {
    let done = repaired(index);
    let old = unrepaired(index);
    if index.exists() {
        // Left by a repair killed while deleting it: its replacement is
        // the index now.
        remove_dir_if_there(&old)?;
        std::fs::rename(index, &old).map_err(io(index))?;
        sync_dir(parent(index))?;
    }
    std::fs::rename(&done, index).map_err(io(&done))?;
    sync_dir(parent(index))?;
    remove_dir_if_there(&old)
}

/// Whether a repair was interrupted and left work for the next open.
pub fn repair_interrupted(index: &Path) -> bool {
    [repaired(index), repairing(index), unrepaired(index)]
        .iter()
        .any(|p| p.exists())
}

/// Finishes (or forgets) what a killed repair left, under the exclusive
/// lock: a complete repaired copy replaces the index; an incomplete one
/// is deleted (the index was not touched yet); a damaged index moved
/// aside is deleted once its replacement is in place, or put back.
pub fn finish_interrupted_repair(index: &Path) -> Result<(), StoreError> {
    if repaired(index).exists() {
        swap_in_repaired(index)?;
    }
    remove_dir_if_there(&repairing(index))?;
    let old = unrepaired(index);
    if old.exists() {
        if index.exists() {
            remove_dir_if_there(&old)?;
        } else {
            std::fs::rename(&old, index).map_err(io(&old))?;
            sync_dir(parent(index))?;
        }
    }
    Ok(())
}
