//! The remote tier: an object store a team shares (S3 and compatible
//! servers, GCS, or a directory on a shared file system), behind the local
//! tier.
//!
//! Layout under the URL's prefix (see `cache-schema/README.md`):
//! `blobs/<hh>/<key>.zst` hold the local blob files byte for byte, and every
//! record is a small JSON object whose name ends in the BLAKE3 of its body
//! (`builds/<build key>/<signature|failed>.<h>.json`,
//! `signatures/<signature>/<build key>.<h>.json`,
//! `runs/<signature>/<test key>/<run id>.<h>.json`). Every byte read from the
//! remote is checked against the hash in its name before use; an object that
//! fails is reported and ignored. Objects are only ever created, never
//! rewritten, so correctness never depends on conditional writes (Garage
//! ignores `If-None-Match`).
//!
//! A remote that cannot be reached (refused, timeout, 5xx) is reported once;
//! kcache then works from the local tier for the rest of the process, and
//! the writes it could not upload stay queued in the index for `kcache sync`.
//! Timeouts suit a cache, not a download manager: 2 s to connect, and no
//! call (listing page, record, a blob's next bytes, upload) waits more than
//! [`NO_ANSWER`] for an answer, whatever the client's own retries; a request
//! without an answer after 2 s is said while it is being waited for. The
//! outage is remembered in the cache directory (`remote-down`) for
//! [`DOWN_MEMORY`], so the next processes (every step of `git bisect run
//! kcache exec`) do not pay the timeouts again; `kcache sync` tries
//! regardless, and forgets the outage when it succeeds. A remote that
//! refuses a write (read-only credentials) answered: it is not down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{BlobStore, StoreError};
use crate::key::Key;

/// Whether this client may write to the remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    #[default]
    ReadWrite,
    /// For untrusted clients (patch-testing jobs): reuse, never write.
    ReadOnly,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        crate::from_word(s).ok_or_else(|| {
            format!(
                "unknown remote mode {s:?}: use {}",
                crate::words_of(&[Mode::ReadWrite, Mode::ReadOnly])
            )
        })
    }
}

/// Per-process traffic counters (added to the index's counters at exit).
#[derive(Debug, Default)]
pub struct Traffic {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub bytes_down: AtomicU64,
    pub bytes_up: AtomicU64,
}

pub struct Remote {
    url: String,
    mode: Mode,
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// Always `Some` until dropped (see `Drop`).
    rt: Option<tokio::runtime::Runtime>,
    down: AtomicBool,
    /// The remote refused a write (read-only credentials): uploads stay
    /// queued, reads go on.
    writes_refused: AtomicBool,
    /// Where an outage is remembered across processes (set by the cache).
    down_marker: Mutex<Option<PathBuf>>,
    pub traffic: Traffic,
    /// Signs what this member uploads (no key: records go up unsigned).
    signer: Option<crate::trust::SigningKey>,
    policy: crate::trust::Policy,
    /// Records read, per writer: used, ignored.
    pub tally: crate::trust::Tally,
    /// The directory of a `file://` remote.
    local_dir: Option<PathBuf>,
}

/// A staged upload of a `file://` remote older than this was left by a
/// killed writer (a live one writes to it, or renames it, within seconds).
const STALE_STAGED: std::time::Duration = std::time::Duration::from_secs(600);

/// A record read from the remote, with who wrote it and how far to
/// believe it.
pub struct Fetched<T> {
    pub stem: String,
    pub record: T,
    pub writer: crate::trust::Writer,
    /// How far it is believed against records that disagree with it
    /// (`trust::Policy::rank`: 0 a trusted writer's, 1 anyone else's).
    pub rank: u8,
}

impl<T> Fetched<T> {
    /// The writer as local copies name it (`ed25519:<hex>` or `unsigned`).
    pub fn writer_label(&self) -> String {
        match &self.writer {
            crate::trust::Writer::Signed(k) => k.to_string(),
            _ => "unsigned".to_string(),
        }
    }
}

/// Record listings in flight at once (a team member's first look at a range).
const PARALLEL_LISTS: usize = 16;

/// How long an outage is remembered across processes.
pub const DOWN_MEMORY: Duration = Duration::from_secs(300);
/// When a request without an answer is said to be waited for.
const SLOW_AFTER: Duration = Duration::from_secs(2);
/// The longest kcache waits for any answer from the remote (a listing's
/// page, a record, a blob's next bytes, an upload's reply) before calling
/// it down. The HTTP client has the same read timeout, but retries on it;
/// this bounds every call, whatever the client does (issue 27: a silent
/// endpoint stalled the up-front listings for 81 s).
const NO_ANSWER: Duration = Duration::from_secs(5);

/// `fut`, or a timeout error once it has had no answer for [`NO_ANSWER`].
async fn answered<T>(
    fut: impl std::future::Future<Output = Result<T, object_store::Error>>,
) -> Result<T, object_store::Error> {
    match tokio::time::timeout(NO_ANSWER, fut).await {
        Ok(out) => out,
        Err(_) => Err(object_store::Error::Generic {
            store: "kcache",
            source: Box::new(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer in {}s", NO_ANSWER.as_secs()),
            )),
        }),
    }
}

/// An upload error not worth retrying: the remote refused the
/// credentials, or did not answer within [`NO_ANSWER`] (the client
/// already retried inside it).
pub(crate) fn final_upload_error(e: &object_store::Error) -> bool {
    let silent = matches!(e, object_store::Error::Generic { store: "kcache", source }
        if source.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut));
    silent || is_refusal(e)
}

/// A refusal of the credentials (401/403): the remote answers, it only
/// will not take writes (a read-only key), so it is not down.
fn is_refusal(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    )
}

fn remote_err(url: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Remote {
        url: url.to_string(),
        problem: e.to_string(),
    }
}

/// How to reach a remote beyond its URL, resolved by `config` (command
/// line, environment, config file): the remote reads no settings itself.
/// Credentials stay where every S3/GCS client looks for them (`AWS_*`,
/// `GOOGLE_*` in the environment).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoteOptions {
    pub mode: Mode,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    pub s3_allow_http: bool,
    /// The member's signing key file: records it uploads are signed.
    pub signing_key: Option<std::path::PathBuf>,
    /// Whose records to believe (see `trust`).
    pub policy: crate::trust::Policy,
}

/// How long to wait on a remote before calling it down: a bisection must
/// not stall on an unreachable bucket.
fn client_options(allow_http: bool) -> ClientOptions {
    // No overall limit (a large blob takes what it takes), but a stall is
    // noticed: 5 s without a byte.
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_read_timeout(Duration::from_secs(5))
        .with_timeout_disabled()
        .with_allow_http(allow_http)
}

fn retry() -> RetryConfig {
    RetryConfig {
        max_retries: 1,
        retry_timeout: Duration::from_secs(8),
        ..RetryConfig::default()
    }
}

/// Makes ring the process's TLS crypto provider, which reqwest needs before
/// it builds any client (it panics without one). kcache builds reqwest
/// without its default provider, aws-lc-rs, whose C takes minutes to
/// compile; ring is what object_store signs with too. Idempotent; a provider
/// installed earlier (by a program embedding kcache) is kept.
pub fn use_ring_for_tls() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

impl Remote {
    /// Connects to `url`: `s3://bucket/prefix`, `gs://bucket/prefix` or
    /// `file:///dir`. Credentials and endpoints come from the usual
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ENDPOINT`/`AWS_ENDPOINT_URL`, `AWS_REGION`, `AWS_ALLOW_HTTP`,
    /// `GOOGLE_SERVICE_ACCOUNT`, ...).
    pub fn open(url: &str, options: &RemoteOptions) -> Result<Remote, StoreError> {
        let mode = options.mode;
        use_ring_for_tls();
        let parsed = url::Url::parse(url).map_err(|e| remote_err(url, format!("not a URL: {e}")))?;
        let mut local_dir = None;
        let (store, prefix): (Arc<dyn ObjectStore>, ObjectPath) = match parsed.scheme() {
            "s3" => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .with_client_options(client_options(options.s3_allow_http))
                    .with_retry(retry());
                if let Some(endpoint) = &options.s3_endpoint {
                    b = b.with_endpoint(endpoint);
                }
                if let Some(region) = &options.s3_region {
                    b = b.with_region(region);
                }
                (
                    Arc::new(b.build().map_err(|e| remote_err(url, e))?),
                    ObjectPath::from(parsed.path()),
                )
            }
            "gs" => {
                let b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(url)
                    .with_client_options(client_options(false))
                    .with_retry(retry());
                (
                    Arc::new(b.build().map_err(|e| remote_err(url, e))?),
                    ObjectPath::from(parsed.path()),
                )
            }
            "file" => {
                let dir = parsed.to_file_path().map_err(|_| remote_err(url, "not a local path"))?;
                if dir.exists() && !dir.is_dir() {
                    return Err(remote_err(
                        url,
                        format!("{} is a file: a file:// remote is a directory", dir.display()),
                    ));
                }
                std::fs::create_dir_all(&dir)
                    .map_err(|e| remote_err(url, format!("cannot create {}: {e}", dir.display())))?;
                local_dir = Some(dir.clone());
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&dir).map_err(|e| remote_err(url, e))?;
                (Arc::new(fs), ObjectPath::default())
            }
            other => {
                return Err(remote_err(
                    url,
                    format!("unsupported scheme {other}: use s3://, gs:// or file://"),
                ))
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| remote_err(url, e))?;
        let signer = match &options.signing_key {
            Some(path) => crate::trust::SigningKey::load(path).map_err(|e| remote_err(url, e))?,
            None => None,
        };
        Ok(Remote {
            url: url.to_string(),
            mode,
            store,
            prefix,
            rt: Some(rt),
            down: AtomicBool::new(false),
            writes_refused: AtomicBool::new(false),
            down_marker: Mutex::new(None),
            traffic: Traffic::default(),
            signer,
            policy: options.policy.clone(),
            tally: crate::trust::Tally::default(),
            local_dir,
        })
    }

    /// Removes the staged uploads (`NAME#N`) that writers killed before
    /// their rename left in a `file://` remote; how many.
    pub fn clean_staged(&self) -> usize {
        let Some(dir) = &self.local_dir else { return 0 };
        let mut removed = 0;
        let mut dirs = vec![dir.clone()];
        while let Some(d) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let Ok(kind) = e.file_type() else { continue };
                if kind.is_dir() {
                    dirs.push(e.path());
                } else if is_staged(&e.file_name().to_string_lossy())
                    && is_stale(&e)
                    && std::fs::remove_file(e.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Remembers outages in `marker` and honours one remembered there: a
    /// remote found down less than [`DOWN_MEMORY`] ago is not asked again
    /// (`kcache sync` asks regardless: [`Remote::reset_down`]).
    pub fn remember_outages_in(&self, marker: PathBuf) {
        if let Some(age) = outage_age(&marker, &self.url) {
            self.down.store(true, Ordering::Relaxed);
            crate::warn(&format!(
                "remote {} did not answer {}s ago: working from the local cache for another {}s \
                 (`kcache sync` tries it now)",
                self.url,
                age.as_secs(),
                DOWN_MEMORY.saturating_sub(age).as_secs()
            ));
        }
        *self.down_marker.lock().unwrap_or_else(|e| e.into_inner()) = Some(marker);
    }

    /// Runs a request, saying so when it has no answer after [`SLOW_AFTER`].
    fn wait<F: std::future::Future>(&self, what: &str, fut: F) -> F::Output {
        self.runtime().block_on(async {
            let fut = std::pin::pin!(fut);
            let slow = std::pin::pin!(tokio::time::sleep(SLOW_AFTER));
            match futures::future::select(fut, slow).await {
                futures::future::Either::Left((out, _)) => out,
                futures::future::Either::Right((_, fut)) => {
                    crate::notice(&format!(
                        "waiting for remote {} ({what}): no answer after {}s",
                        self.url,
                        SLOW_AFTER.as_secs()
                    ));
                    fut.await
                }
            }
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime lives as long as the remote")
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime().handle().clone()
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn writable(&self) -> bool {
        self.mode == Mode::ReadWrite
    }

    /// Forgets an outage (an explicit retry).
    pub fn reset_down(&self) {
        self.down.store(false, Ordering::Relaxed);
        self.writes_refused.store(false, Ordering::Relaxed);
    }

    /// Whether the remote refused a write in this process (uploads wait).
    pub fn writes_refused(&self) -> bool {
        self.writes_refused.load(Ordering::Relaxed)
    }

    /// Asks the remote for one listing page under the prefix: whether it
    /// answers (a failure is said and marks it down, as any call).
    pub fn probe(&self) -> bool {
        let got = self.wait("list", answered(self.store.list_with_delimiter(Some(&self.prefix))));
        match got {
            Ok(_) => true,
            Err(e) => {
                self.failed("list", &e);
                false
            }
        }
    }

    /// Forgets an outage remembered for the next processes (the remote
    /// answered: `kcache sync` succeeded).
    pub fn clear_outage(&self) {
        if let Some(marker) = &*self.down_marker.lock().unwrap_or_else(|e| e.into_inner()) {
            let ours = std::fs::read_to_string(marker)
                .is_ok_and(|t| t.trim().rsplit_once(' ').is_some_and(|(url, _)| url == self.url));
            if ours {
                let _ = std::fs::remove_file(marker);
            }
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    fn path(&self, rel: &str) -> ObjectPath {
        rel.split('/').fold(self.prefix.clone(), |p, part| p.clone().join(part))
    }

    /// Records a failure; the first one that looks like an outage is said
    /// once and turns the remote off for this process.
    fn failed(&self, what: &str, e: &object_store::Error) {
        self.traffic.errors.fetch_add(1, Ordering::Relaxed);
        if matches!(e, object_store::Error::NotFound { .. }) {
            return;
        }
        if is_refusal(e) && what == "upload" {
            // It answered: not an outage, and nothing to remember.
            if !self.writes_refused.swap(true, Ordering::Relaxed) {
                crate::warn(&format!(
                    "remote {} refused an upload ({e}): the credentials may be read-only \
                     (`--remote-mode read-only` says so); reads go on, uploads stay queued for `kcache sync`",
                    self.url
                ));
            }
            return;
        }
        if !self.down.swap(true, Ordering::Relaxed) {
            crate::warn(&format!(
                "remote {} is unavailable ({what}: {e}); working from the local cache, \
                 uploads stay queued for `kcache sync`",
                self.url
            ));
            if let Some(marker) = &*self.down_marker.lock().unwrap_or_else(|e| e.into_inner()) {
                remember_outage(marker, &self.url);
            }
        }
    }

    /// Says that a record under `dir` is not of the key its directory
    /// names (a record replayed under another key): it is ignored.
    pub(crate) fn misfiled(&self, dir: &str, stem: &str, holds: &str) {
        self.traffic.errors.fetch_add(1, Ordering::Relaxed);
        crate::warn(&format!(
            "remote {}: object {stem} under {dir}/ ignored: it holds {holds}, not a record of {dir} \
             (a record copied under another key)",
            self.url
        ));
    }

    fn bad_object(&self, path: &ObjectPath, problem: &str) {
        self.traffic.errors.fetch_add(1, Ordering::Relaxed);
        crate::warn(&format!("remote object {}/{path} ignored: {problem}", self.url));
    }

    /// Downloads blob `key` into the local store after verifying it; a
    /// delta comes with the links of its chain the local store lacks, all
    /// fetched at once (its header names the whole chain), installed from
    /// the full blob at the chain's end towards `key`, each verified by
    /// decoding it. `Ok(false)`: the remote does not have it (or is down).
    pub fn fetch_blob(&self, key: &Key, local: &BlobStore) -> Result<bool, StoreError> {
        if self.is_down() {
            return Ok(false);
        }
        let Some(file) = self.download_each(std::slice::from_ref(key), local)?.pop().flatten() else {
            return Ok(false);
        };
        let chain = match BlobStore::chain_in(file.path()) {
            Ok(chain) => chain,
            Err(problem) => {
                self.bad_object(&self.path(&blob_rel(key)), &format!("blob does not verify: {problem}"));
                return Ok(false);
            }
        };
        if chain.len() > super::blob::MAX_CHAIN || chain.contains(key) {
            let problem = "blob does not verify: its delta chain is too long or loops";
            self.bad_object(&self.path(&blob_rel(key)), problem);
            return Ok(false);
        }
        let missing: Vec<Key> = chain.into_iter().filter(|l| !local.contains(l)).collect();
        let Some(links) = self
            .download_each(&missing, local)?
            .into_iter()
            .collect::<Option<Vec<_>>>()
        else {
            return Ok(false);
        };
        for (link, file) in missing.iter().zip(links).rev().chain([(key, file)]) {
            if let Err(problem) = local.install_verified(link, file) {
                self.bad_object(&self.path(&blob_rel(link)), &format!("blob does not verify: {problem}"));
                return Ok(false);
            }
            self.traffic.hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// Each blob of `keys` into a temporary file, concurrently; `None` for
    /// one the remote does not have or could not send (said and counted).
    fn download_each(
        &self,
        keys: &[Key],
        local: &BlobStore,
    ) -> Result<Vec<Option<tempfile::NamedTempFile>>, StoreError> {
        let files = keys.iter().map(|_| local.incoming()).collect::<Result<Vec<_>, _>>()?;
        let fetches = keys.iter().zip(files).map(|(key, mut file)| async move {
            let got = self.get_into(&self.path(&blob_rel(key)), file.as_file_mut()).await;
            (got, file)
        });
        let results = self.wait("download", futures::future::join_all(fetches));
        Ok(results
            .into_iter()
            .map(|(got, file)| match got {
                Ok(n) => {
                    self.traffic.bytes_down.fetch_add(n, Ordering::Relaxed);
                    Some(file)
                }
                Err(object_store::Error::NotFound { .. }) => {
                    self.traffic.misses.fetch_add(1, Ordering::Relaxed);
                    None
                }
                Err(e) => {
                    self.failed("download", &e);
                    None
                }
            })
            .collect())
    }

    /// Streams one object into `file`; the bytes written.
    async fn get_into(&self, path: &ObjectPath, file: &mut std::fs::File) -> Result<u64, object_store::Error> {
        let mut stream = answered(self.store.get(path)).await?.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = answered(async { Ok(stream.next().await) }).await? {
            let chunk = chunk?;
            std::io::Write::write_all(file, &chunk).map_err(|e| object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })?;
            n += chunk.len() as u64;
        }
        Ok(n)
    }

    /// Uploads a local blob unless the remote has it already.
    pub async fn push_blob(&self, key: &Key, local: &BlobStore) -> Result<(), object_store::Error> {
        let path = self.path(&blob_rel(key));
        match answered(self.store.head(&path)).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let bytes = tokio::fs::read(local.path_of(key))
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "local",
                source: Box::new(e),
            })?;
        let n = bytes.len() as u64;
        if n <= MULTIPART_ABOVE {
            answered(self.store.put(&path, bytes.into())).await?;
        } else {
            // Large blobs go up in parts: progress, and no single-PUT size limit.
            let bar = progress_bar(n, &format!("uploading {}", key.short()));
            let mut upload = object_store::WriteMultipart::new(self.store.put_multipart(&path).await?);
            for part in bytes.chunks(PART) {
                upload.wait_for_capacity(4).await?;
                upload.write(part);
                bar.inc(part.len() as u64);
            }
            upload.finish().await?;
            bar.finish_and_clear();
        }
        self.traffic.bytes_up.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Uploads a record as `<dir>/<stem>.<hash>.json`.
    pub async fn push_record<T: Serialize>(
        &self,
        dir: &str,
        stem: &str,
        record: &T,
    ) -> Result<(), object_store::Error> {
        let mut body = serde_json::to_vec(record).expect("records serialize");
        if let Some(signer) = &self.signer {
            body = signer.seal(&body);
        }
        let name = format!("{dir}/{stem}.{}.json", body_hash(&body));
        let n = body.len() as u64;
        answered(self.store.put(&self.path(&name), body.into())).await?;
        self.traffic.bytes_up.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// The trust policy records are read under.
    pub fn policy(&self) -> &crate::trust::Policy {
        &self.policy
    }

    /// Every record under `dir` that verifies, parses and the trust policy
    /// does not drop, with its stem (object name without `.<hash>.json`)
    /// and writer. Bad objects are reported and skipped; an unreachable
    /// remote gives nothing.
    pub fn records<T: DeserializeOwned>(&self, dir: &str) -> Vec<Fetched<T>> {
        if self.is_down() {
            return Vec::new();
        }
        self.wait("list", self.fetch_records(dir))
    }

    /// [`Remote::records`] of many directories, fetched [`PARALLEL_LISTS`]
    /// at a time; one answer per directory, in order.
    pub fn records_many<T: DeserializeOwned>(&self, dirs: &[String]) -> Vec<Vec<Fetched<T>>> {
        if self.is_down() {
            return dirs.iter().map(|_| Vec::new()).collect();
        }
        self.wait(
            "list",
            futures::stream::iter(dirs)
                .map(|d| self.fetch_records(d))
                .buffered(PARALLEL_LISTS)
                .collect::<Vec<_>>(),
        )
    }

    async fn fetch_records<T: DeserializeOwned>(&self, dir: &str) -> Vec<Fetched<T>> {
        // Listings queued behind one that found the remote down ask nothing.
        if self.is_down() {
            return Vec::new();
        }
        let prefix = self.path(dir);
        let listed: Result<Vec<ObjectPath>, object_store::Error> = async {
            let mut out = Vec::new();
            let mut list = self.store.list(Some(&prefix));
            while let Some(meta) = answered(async { Ok(list.next().await) }).await? {
                out.push(meta?.location);
            }
            Ok(out)
        }
        .await;
        let paths = match listed {
            Ok(p) => p,
            Err(e) => {
                self.failed("list", &e);
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for path in paths {
            let Some((stem, hash)) = split_name(path.filename().unwrap_or("")) else {
                continue;
            };
            if self.is_down() {
                break;
            }
            let body = match answered(async { self.store.get(&path).await?.bytes().await }).await {
                Ok(b) => b,
                Err(e) => {
                    self.failed("download", &e);
                    continue;
                }
            };
            self.traffic.bytes_down.fetch_add(body.len() as u64, Ordering::Relaxed);
            if body_hash(&body) != hash {
                self.bad_object(&path, "content does not match the hash in its name");
                continue;
            }
            let (writer, bytes) = crate::trust::open(&body);
            let kind = match dir.starts_with("runs") {
                true => crate::trust::Kind::Run,
                false => crate::trust::Kind::Build,
            };
            let judged = self.policy.judge(&writer, kind);
            self.tally.count(path.as_ref(), &writer, judged);
            if judged == crate::trust::Use::Ignore {
                continue;
            }
            match serde_json::from_slice(&bytes) {
                Ok(record) => out.push(Fetched {
                    stem: stem.to_string(),
                    record,
                    rank: self.policy.rank(&writer),
                    writer,
                }),
                Err(e) => self.bad_object(&path, &format!("not a valid record: {e}")),
            }
        }
        if out.is_empty() {
            self.traffic.misses.fetch_add(1, Ordering::Relaxed);
        } else {
            self.traffic.hits.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Runs an upload future on this remote's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime().block_on(f)
    }

    pub(crate) fn note_failure(&self, what: &str, e: &object_store::Error) {
        self.failed(what, e);
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // Said once per writer whose records were not all believed.
        for line in self.tally.lines(&self.policy) {
            crate::warn(&line);
        }
        // The last reference may go away inside an upload task, where a
        // blocking runtime drop would panic.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Blobs above this size are uploaded in parts of `PART` bytes.
const MULTIPART_ABOVE: u64 = 32 << 20;
const PART: usize = 8 << 20;

/// A transfer progress bar on stderr; hidden when stderr is not a terminal
/// or the transfer is small.
fn progress_bar(len: u64, what: &str) -> indicatif::ProgressBar {
    if len < 16 << 20 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `<url> <unix seconds>`: written atomically, best effort (a read-only
/// cache just does not remember).
fn remember_outage(marker: &std::path::Path, url: &str) {
    let tmp = marker.with_extension("tmp");
    if std::fs::write(&tmp, format!("{url} {}\n", unix_now())).is_ok() {
        let _ = std::fs::rename(&tmp, marker);
    }
}

/// How long ago `url` was found down, if within [`DOWN_MEMORY`].
fn outage_age(marker: &std::path::Path, url: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(marker).ok()?;
    let (marked_url, since) = text.trim().rsplit_once(' ')?;
    let age = Duration::from_secs(unix_now().checked_sub(since.parse().ok()?)?);
    (marked_url == url && age < DOWN_MEMORY).then_some(age)
}

pub fn blob_rel(key: &Key) -> String {
    let hex = key.to_hex();
    format!("blobs/{}/{hex}.zst", &hex[..2])
}

/// The first 32 hex digits of BLAKE3 of a record body.
fn body_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex()[..32].to_string()
}

/// `<stem>.<32 hex>.json` → (stem, hash).
/// `object_store`'s name for an upload being written to a local
/// directory: the object's name, `#` and a number.
fn is_staged(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn is_stale(e: &std::fs::DirEntry) -> bool {
    e.metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_STAGED)
}

fn split_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_suffix(".json")?;
    let (stem, hash) = rest.rsplit_once('.')?;
    (hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit())).then_some((stem, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_carry_their_hash() {
        let h = body_hash(b"{}");
        assert_eq!(split_name(&format!("abc.{h}.json")), Some(("abc", h.as_str())));
        assert_eq!(split_name("abc.json"), None);
        assert_eq!(split_name("abc.zz.json"), None);
    }
}
