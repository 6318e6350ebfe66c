//! The user's directories: where the config file and the cache live by
//! default (XDG base directories, else under `$HOME`).
//!
//! A leaf: `config`, `trust` and `store` all ask it, so none of them needs
//! another to find a path (no import circle through `config`).
//!
//! Invariant: reads the environment only; creates and opens nothing.

use std::path::PathBuf;

/// `$XDG_CONFIG_HOME/kcache/config.toml`, else `~/.config/kcache/config.toml`.
pub fn config_file() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| home().join(".config"));
    base.join("kcache").join("config.toml")
}

/// Where the cache lives without `--cache-dir`: `KCACHE_DIR`, else
/// `$XDG_CACHE_HOME/kcache`, else `~/.cache/kcache`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("KCACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("kcache");
    }
    home().join(".cache").join("kcache")
}

/// `$HOME`, else the current directory.
fn home() -> PathBuf {
    std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from)
}
