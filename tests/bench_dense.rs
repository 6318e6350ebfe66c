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
