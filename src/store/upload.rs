//! Uploads to the remote tier.
//!
//! A local write that the remote should see also writes a `pending_upload`
//! entry, in the same index batch, so nothing is lost if the process dies
//! or the remote is down. Entries are uploaded in the background with
//! bounded concurrency and retries with backoff (blobs first, then the
//! record that names them: a build's artifacts, a run's console) and
//! deleted once the remote has them. `kcache
//! sync` uploads whatever earlier processes left queued.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::index::{Read, CF_BUILDS, CF_PENDING, CF_RUNS};
use super::{BuildRecord, Cache, Remote, RunRecord};
use crate::key::Key;

/// Uploads in flight at once.
const CONCURRENCY: usize = 4;
const ATTEMPTS: u32 = 4;

pub fn pending_build(index_key: &str) -> String {
    format!("build/{index_key}")
}

pub fn pending_run(index_key: &str) -> String {
    format!("run/{index_key}")
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub uploaded: usize,
    pub failed: Vec<String>,
    /// Entries still queued after this process's uploads ended.
    pub still_pending: u64,
}

/// An upload in flight: the pending entry and its task.
type Task = (String, JoinHandle<Result<(), String>>);

pub struct Uploads {
    tasks: Mutex<Vec<Task>>,
    permits: Arc<Semaphore>,
}

impl Default for Uploads {
    fn default() -> Uploads {
        Uploads {
            tasks: Mutex::default(),
            permits: Arc::new(Semaphore::new(CONCURRENCY)),
        }
    }
}

impl Uploads {
    /// Starts uploading `pending` entries; returns at once.
    pub fn start(&self, remote: Arc<Remote>, local: Cache, pending: Vec<String>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        for entry in pending {
            let (remote2, local2, permits) = (remote.clone(), local.clone(), self.permits.clone());
            let name = entry.clone();
            let handle = remote.handle().spawn(async move {
                let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
                upload_with_retries(&remote2, &local2, &entry).await
            });
            tasks.push((name, handle));
        }
    }

    /// Waits for every upload started so far.
    pub fn wait(&self, remote: &Remote) -> SyncReport {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let mut report = SyncReport::default();
        for (name, handle) in tasks {
            match remote.block_on(handle) {
                Ok(Ok(())) => report.uploaded += 1,
                Ok(Err(e)) => report.failed.push(format!("{name}: {e}")),
                Err(e) => report.failed.push(format!("{name}: {e}")),
            }
        }
        report
    }
}

async fn upload_with_retries(remote: &Remote, local: &Cache, entry: &str) -> Result<(), String> {
    let mut delay = Duration::from_millis(200);
    let mut attempt = 1;
    loop {
        if remote.is_down() {
            return Err("remote unavailable; left queued".into());
        }
        if remote.writes_refused() {
            return Err("remote refused uploads (read-only credentials?); left queued".into());
        }
        match upload_one(remote, local, entry).await {
            Ok(()) => return forget_pending(local, entry).await,
            Err(e) if attempt >= ATTEMPTS || super::remote::final_upload_error(&e) => {
                remote.note_failure("upload", &e);
                return Err(e.to_string());
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 4;
                attempt += 1;
            }
        }
    }
}

/// Drops an uploaded entry from the queue (off the async workers).
async fn forget_pending(local: &Cache, entry: &str) -> Result<(), String> {
    let (local, entry) = (local.clone(), entry.to_string());
    tokio::task::spawn_blocking(move || {
        local.index.write(|w| {
            w.delete(CF_PENDING, &entry);
            Ok(())
        })
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())
}

/// Reads a queued record off the async workers. It was written in the same
/// batch as its queue entry and records are never deleted, so not finding
/// it is an error to retry, never a reason to drop the entry.
async fn local_record<T: serde::de::DeserializeOwned + Send + 'static>(
    local: &Cache,
    cf: &'static str,
    key: &str,
) -> Result<T, object_store::Error> {
    let (local, key) = (local.clone(), key.to_string());
    let missing = format!("queued record {cf}/{key} is not in the local index");
    tokio::task::spawn_blocking(move || local.index.read(|r| r.get(cf, &key)))
        .await
        .map_err(generic)?
        .map_err(generic)?
        .ok_or_else(|| generic(std::io::Error::other(missing)))
}

fn generic(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "kcache",
        source: Box::new(e),
    }
}

/// Uploads a local blob, a delta's chain first: a member who fetches it
/// needs every link (each push is a no-op when already there). A blob
/// evicted locally before it was uploaded cannot be sent; the record that
/// names it is still worth sharing.
async fn push_blob_and_chain(remote: &Remote, local: &Cache, key: &Key) -> Result<(), object_store::Error> {
    if !local.blobs.contains(key) {
        return Ok(());
    }
    let chain = local.blobs.chain_of(key).unwrap_or_default();
    for link in chain.iter().rev().filter(|k| local.blobs.contains(k)) {
        remote.push_blob(link, &local.blobs).await?;
    }
    remote.push_blob(key, &local.blobs).await
}

async fn upload_one(remote: &Remote, local: &Cache, entry: &str) -> Result<(), object_store::Error> {
    let Some((kind, key)) = entry.split_once('/') else {
        return Ok(());
    };
    match kind {
        "build" => {
            let record = local_record::<BuildRecord>(local, CF_BUILDS, key).await?;
            for a in &record.artifacts {
                push_blob_and_chain(remote, local, &a.blake3).await?;
            }
            let build_key = record.build_key.to_hex();
            let stem = record
                .signature
                .as_ref()
                .map_or_else(|| "failed".to_string(), |s| s.to_string());
            remote
                .push_record(&format!("builds/{build_key}"), &stem, &record)
                .await?;
            if let Some(sr) = record.signature_record() {
                remote
                    .push_record(&format!("signatures/{}", sr.signature), &build_key, &sr)
                    .await?;
            }
            Ok(())
        }
        "run" => {
            let run = local_record::<RunRecord>(local, CF_RUNS, key).await?;
            // The console before the record that names it, as artifacts
            // before builds: a member who pulls the run can fetch it.
            if let Some(console) = &run.log_blob {
                push_blob_and_chain(remote, local, console).await?;
            }
            let dir = format!("runs/{}/{}", run.signature, run.test_key.to_hex());
            remote.push_record(&dir, &run.run_id, &run).await
        }
        _ => Ok(()),
    }
}
