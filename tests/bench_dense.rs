//! Dense storage per commit (the framing: every commit's build
//! kept), for a cache a prebuild filled: `scripts/bench-prebuild.sh` runs
//! it after the prebuild. Not in CI (it needs a prebuilt kernel history).
//!
//!   BENCH_CACHE=DIR cargo test --release --test bench_dense -- --ignored --nocapture
//!
//! Prints, over every build record with artifacts (one per commit, a
//! predicted commit's are its reference's): the raw bytes of all their
//! artifacts, what one zstd -1 blob per artifact per commit would take
//! (the store before content addressing and deltas), and the dense
//! store's bytes on disk.

use std::collections::HashMap;

use kcache::store::{index, BuildRecord, Cache};

#[test]
#[ignore]
fn dense_storage_per_commit() {
    let dir = std::env::var("BENCH_CACHE").expect("BENCH_CACHE: the cache a prebuild filled");
    let cache = Cache::open(std::path::Path::new(&dir)).unwrap();
    let builds: Vec<(String, BuildRecord)> = cache.raw_records(index::CF_BUILDS).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut zstd_of: HashMap<String, u64> = HashMap::new();
    let (mut commits, mut raw, mut one_blob_each) = (0u64, 0u64, 0u64);
    for (_, b) in builds.iter().filter(|(_, b)| !b.artifacts.is_empty()) {
        commits += 1;
        for a in &b.artifacts {
            raw += a.size;
            let hex = a.blake3.to_hex();
            let z = *zstd_of.entry(hex.clone()).or_insert_with(|| {
                let file = scratch.path().join(&hex);
                cache.restore_blob(&a.blake3, &file).unwrap();
                let bytes = std::fs::read(&file).unwrap();
                zstd::encode_all(&bytes[..], 1).unwrap().len() as u64
            });
            one_blob_each += z;
        }
    }
    let dense: u64 = cache.stats().unwrap().blob_bytes;
    println!(
        "per commit: {commits} commits with artifacts, raw {raw} B, one zstd -1 blob per artifact per commit \
         {one_blob_each} B, dense {dense} B ({:.2}% of raw, 1/{:.1} of one blob each)",
        100.0 * dense as f64 / raw.max(1) as f64,
        one_blob_each as f64 / dense.max(1) as f64
    );
}

/// Restore time per build from the team remote into an empty cache (each
/// delta chain fetched and verified), for a cache a prebuild with
/// `--remote` filled: BENCH_CACHE (its local tier, for the build keys) and
/// BENCH_REMOTE (the remote URL; credentials in the usual AWS_* variables).
#[test]
#[ignore]
fn restore_time_from_the_remote() {
    let dir = std::env::var("BENCH_CACHE").expect("BENCH_CACHE: the cache a prebuild filled");
    let remote = std::env::var("BENCH_REMOTE").expect("BENCH_REMOTE: the remote it uploaded to");
    let cache = Cache::open(std::path::Path::new(&dir)).unwrap();
    let builds: Vec<(String, BuildRecord)> = cache.raw_records(index::CF_BUILDS).unwrap();
    drop(cache);
    let scratch = tempfile::tempdir().unwrap();
    let mut seconds = Vec::new();
    for (i, (_, b)) in builds.iter().filter(|(_, b)| !b.artifacts.is_empty()).enumerate() {
        // A member with an empty cache each time: the whole chain comes from the remote.
        let member = scratch.path().join(format!("member-{i}"));
        let start = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kcache"))
            .arg("--cache-dir")
            .arg(&member)
            .args([
                "--remote",
                &remote,
                "get",
                "--build-key",
                &b.build_key.to_hex(),
                "--dest",
            ])
            .arg(member.join("out"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        seconds.push(start.elapsed().as_secs_f64());
    }
    seconds.sort_by(f64::total_cmp);
    println!(
        "restore from the remote into an empty cache: {} builds, p50 {:.3} s, max {:.3} s",
        seconds.len(),
        seconds[seconds.len() / 2],
        seconds.last().unwrap()
    );
}
