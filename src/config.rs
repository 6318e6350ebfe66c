//! Effective settings: command line, else environment, else the config file
//! (`$XDG_CONFIG_HOME/kcache/config.toml`, else `~/.config/kcache/config.toml`),
//! else defaults.
//!
//! ```toml
//! cache_dir = "/var/cache/kcache"
//! remote = "s3://team-kernels/kcache"
//! remote_mode = "read-write"          # or "read-only"
//! s3_endpoint = "https://s3.example.com"   # AWS_ENDPOINT wins when set
//! s3_region = "us-east-1"                  # AWS_REGION wins when set
//! s3_allow_http = false                    # AWS_ALLOW_HTTP wins when set
//! trust = "require"                        # or "warn", "off" (see `trust`)
//! trusted_keys = ["ed25519:<64 hex>"]      # whose team records are evidence
//! signing_key = "/etc/kcache/ci.key"     # default: signing.key beside this file
//! executor = "slurm"                       # or "kubernetes", "local" (the default); KCACHE_EXECUTOR, --executor win
//! build_env = "default"                    # or a table file (relative: to this file); --build-env wins,
//!                                          # --toolchain/--toolchain-cmd turn it off
//!
//! [engine]                                 # how a driver waits on an engine
//! retries = 2                              # resubmissions of a job the engine reports failed
//! poll_seconds = 1.0
//! runs_per_task = 1                        # test runs per array task
//! repository = "https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git"  # what workers fetch
//!
//! [slurm]
//! build_partition = "build"                # sbatch --partition of build steps
//! test_partition = "kvm"                   # ... of test steps
//! build_constraint = "build"               # sbatch --constraint (node features)
//! test_constraint = "kvm"
//! kcache = "/usr/local/bin/kcache"         # on the workers (default: this binary's path)
//! worker_cache_dir = "/scratch/kcache"     # the workers' caches (one per array index)
//! log_dir = "/shared/kcache-jobs"          # job output, read back for a failed job's reason
//! export = "ALL"                           # sbatch --export (NONE: the workers' own environment)
//! sbatch_args = ["--time=120"]
//!
//! [kubernetes]                             # `--executor kubernetes` (build with --features kubernetes)
//! namespace = "kcache"                     # default: the kubeconfig's
//! image = "registry.example.com/kcache-worker:1"   # kcache, the toolchain, QEMU, git
//! store_credentials = "kcache-store"       # Secret: AWS_* for the team store
//! worker_config = "kcache-worker"          # Secret: config.toml + signing.key
//! reference_clone = { node_path = "/srv/linux.git", mount_path = "/srv/linux.git" }
//! kvm = "host-path"                        # default: the device plugin's devices.kubevirt.io/kvm
//! ```
//! Credentials are never read from the file: they come from the usual
//! environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, GCS's
//! `GOOGLE_SERVICE_ACCOUNT`, ...).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::RemoteMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {}: {problem}", path.display())]
    File { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    cache_dir: Option<PathBuf>,
    remote: Option<String>,
    remote_mode: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_allow_http: Option<bool>,
    trust: Option<String>,
    trusted_keys: Option<Vec<String>>,
    signing_key: Option<PathBuf>,
    executor: Option<String>,
    engine: Option<crate::engine::EngineSettings>,
    slurm: Option<crate::engine::slurm::SlurmSettings>,
    kubernetes: Option<crate::engine::kubernetes::JobTemplate>,
    build_env: Option<PathBuf>,
}

/// Where a setting came from.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    CommandLine,
    Environment,
    ConfigFile,
    Default,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub config_file: PathBuf,
    pub config_file_exists: bool,
    pub cache_dir: PathBuf,
    pub cache_dir_from: Source,
    pub remote: Option<String>,
    pub remote_from: Source,
    pub remote_mode: RemoteMode,
    /// Mode, endpoint, region, plain HTTP: what `Remote::open` takes.
    pub remote_options: crate::store::remote::RemoteOptions,
    /// Endpoint, region and the like, with secrets masked.
    #[serde(serialize_with = "crate::serde_pairs::map")]
    pub remote_environment: Vec<(String, String)>,
    /// This member's public key, when it has a signing key.
    pub public_key: Option<crate::trust::PublicKey>,
    /// Where builds and test runs happen (`--executor` wins).
    pub executor: crate::engine::ExecutorKind,
    pub executor_from: Source,
    pub engine: crate::engine::EngineSettings,
    pub slurm: crate::engine::slurm::SlurmSettings,
    /// `[kubernetes]`: every Job's settings (`--executor kubernetes`).
    pub kubernetes: crate::engine::kubernetes::JobTemplate,
    /// `build_env`: the build environment table builds use when the
    /// command line names none (`default`, `none` or a file).
    pub build_env: Option<PathBuf>,
}

impl Settings {
    /// Whether builds and runs go to Kubernetes (its settings are then shown).
    pub fn uses_kubernetes(&self) -> bool {
        self.executor == crate::engine::ExecutorKind::Kubernetes
    }
}

fn read_file(path: &Path) -> Result<FileSettings, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_path_buf(),
            problem: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FileSettings::default()),
        Err(e) => Err(ConfigError::File {
            path: path.to_path_buf(),
            problem: e.to_string(),
        }),
    }
}

/// A table the config file names: `default` and `none` as they are, a
/// relative path from the file's directory.
fn build_env_path(config_file: &Path, named: &Path) -> PathBuf {
    match named.to_str() {
        Some("default" | "none") => named.to_path_buf(),
        _ => config_file.parent().unwrap_or(Path::new(".")).join(named),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Resolves the settings. Nothing is written to the process environment:
/// the remote gets its options as [`RemoteOptions`](crate::store::remote::RemoteOptions).
pub fn load(
    cli_cache_dir: Option<PathBuf>,
    cli_remote: Option<String>,
    cli_mode: Option<RemoteMode>,
    cli_trust: &[String],
) -> Result<Settings, ConfigError> {
    let path = crate::dirs::config_file();
    let file = read_file(&path)?;
    let (signing_key, public_key, policy) = trust_settings(&path, &file, cli_trust)?;
    let (cache_dir, cache_dir_from) = match (cli_cache_dir, env("KCACHE_DIR"), &file.cache_dir) {
        (Some(d), _, _) => (d, Source::CommandLine),
        (None, Some(_), _) => (crate::dirs::default_cache_dir(), Source::Environment),
        (None, None, Some(d)) => (d.clone(), Source::ConfigFile),
        (None, None, None) => (crate::dirs::default_cache_dir(), Source::Default),
    };
    let (remote, remote_from) = match (cli_remote, env("KCACHE_REMOTE"), &file.remote) {
        (Some(r), _, _) => (Some(r), Source::CommandLine),
        (None, Some(r), _) => (Some(r), Source::Environment),
        (None, None, Some(r)) => (Some(r.clone()), Source::ConfigFile),
        (None, None, None) => (None, Source::Default),
    };
    let mode_text = env("KCACHE_REMOTE_MODE").or(file.remote_mode.clone());
    let remote_mode = match (cli_mode, mode_text) {
        (Some(m), _) => m,
        (None, Some(t)) => t.parse().map_err(ConfigError::Invalid)?,
        (None, None) => RemoteMode::ReadWrite,
    };
    // The environment wins over the file, as for every S3 client.
    let remote_options = crate::store::remote::RemoteOptions {
        mode: remote_mode,
        s3_endpoint: env("AWS_ENDPOINT_URL")
            .or_else(|| env("AWS_ENDPOINT"))
            .or(file.s3_endpoint.clone()),
        s3_region: env("AWS_REGION").or(file.s3_region.clone()),
        s3_allow_http: match env("AWS_ALLOW_HTTP") {
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
            None => file.s3_allow_http.unwrap_or(false),
        },
        signing_key,
        policy,
    };
    let (executor, executor_from) = match (env("KCACHE_EXECUTOR"), &file.executor) {
        (Some(e), _) => (e.parse().map_err(ConfigError::Invalid)?, Source::Environment),
        (None, Some(e)) => (
            e.parse().map_err(|problem| ConfigError::File {
                path: path.clone(),
                problem,
            })?,
            Source::ConfigFile,
        ),
        (None, None) => (crate::engine::ExecutorKind::Local, Source::Default),
    };
    Ok(Settings {
        executor,
        executor_from,
        engine: file.engine.clone().unwrap_or_default(),
        slurm: file.slurm.clone().unwrap_or_default(),
        kubernetes: file.kubernetes.clone().unwrap_or_default(),
        build_env: file.build_env.as_ref().map(|p| build_env_path(&path, p)),
        config_file_exists: path.exists(),
        config_file: path,
        cache_dir,
        cache_dir_from,
        remote,
        remote_from,
        remote_mode,
        remote_options,
        remote_environment: remote_environment(),
        public_key,
    })
}

/// The signing key (when there is one), its public half, and the trust
/// policy: `trusted_keys` and `--trust` plus the member's own key; the
/// mode as configured, else `warn` once any key is configured, else `off`.
fn trust_settings(
    config: &Path,
    file: &FileSettings,
    cli_trust: &[String],
) -> Result<(Option<PathBuf>, Option<crate::trust::PublicKey>, crate::trust::Policy), ConfigError> {
    use crate::trust::{Policy, PublicKey, SigningKey, TrustMode};
    let invalid = |problem: String| ConfigError::File {
        path: config.to_path_buf(),
        problem,
    };
    let key_path = file
        .signing_key
        .clone()
        .unwrap_or_else(|| config.with_file_name("signing.key"));
    let own = SigningKey::load(&key_path).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let mut trusted = std::collections::BTreeSet::new();
    for k in file.trusted_keys.iter().flatten() {
        trusted.insert(
            k.parse::<PublicKey>()
                .map_err(|e| invalid(format!("trusted_keys: {e}")))?,
        );
    }
    for k in cli_trust {
        trusted.insert(
            k.parse::<PublicKey>()
                .map_err(|e| ConfigError::Invalid(format!("--trust: {e}")))?,
        );
    }
    let public = own.as_ref().map(SigningKey::public);
    trusted.extend(public);
    let mode = match &file.trust {
        Some(m) => m.parse::<TrustMode>().map_err(invalid)?,
        None if trusted.is_empty() => TrustMode::Off,
        None => TrustMode::Warn,
    };
    Ok((own.map(|_| key_path), public, Policy { mode, trusted }))
}

/// The remote-related environment, secrets shown only as set or not.
fn remote_environment() -> Vec<(String, String)> {
    const PLAIN: &[&str] = &[
        "AWS_ENDPOINT",
        "AWS_ENDPOINT_URL",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ALLOW_HTTP",
    ];
    const SECRET: &[&str] = &[
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "GOOGLE_SERVICE_ACCOUNT",
        "GOOGLE_SERVICE_ACCOUNT_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ];
    let mut out = Vec::new();
    for name in PLAIN {
        if let Some(v) = env(name) {
            out.push((name.to_string(), v));
        }
    }
    for name in SECRET {
        if env(name).is_some() {
            out.push((name.to_string(), "(set)".to_string()));
        }
    }
    out
}
