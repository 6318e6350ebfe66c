//! Benchmark (ignored in the normal suite; run by `scripts/bench-store.sh`):
//! the latency of one `kcache lookup` process against an index holding a
//! million build records. Prints the median and the 90th percentile, next to
//! the start-up time of a `kcache --version` process for comparison.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use kcache::key::{digest, BuildInputs};
use kcache::signature::KernelSignature;
use kcache::store::{BuildRecord, BuildStatus, Cache, BUILD_SCHEMA};

fn inputs(i: u64) -> BuildInputs {
    BuildInputs {
        tree: kcache::key::TreeId::from_git(&format!("{:040x}", i)),
        config_digest: digest(b"config"),
        toolchain: "gcc (GCC) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40".into(),
        arch: "x86_64".into(),
        recipe_digest: digest(b"make -j2 vmlinux"),
        patches: Vec::new(),
    }
}

fn median_ms(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10])
}

fn time_process(args: &[String]) -> f64 {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_kcache")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    start.elapsed().as_secs_f64() * 1000.0
}

#[test]
#[ignore]
fn lookup_latency_with_a_million_build_records() {
    let n: u64 = std::env::var("KCACHE_BENCH_RECORDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::var("KCACHE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("kcache-bench-lookup"));
    let cache = Cache::open(&dir).unwrap();
    let marker = dir.join(format!("filled-{n}"));
    if !marker.exists() {
        let start = Instant::now();
        cache
            .bulk_load_builds((0..n).map(|i| {
                let inp = inputs(i);
                BuildRecord {
                    schema: BUILD_SCHEMA.into(),
                    build_key: inp.key(),
                    status: BuildStatus::Ok,
                    signature: Some(KernelSignature::parse(&format!("{:064x}", i * 7919)).unwrap()),
                    artifacts: Vec::new(),
                    log_tail: None,
                    commit: format!("{:040x}", i + 1).into(),
                    tree: inp.tree.clone(),
                    config_digest: inp.config_digest,
                    toolchain: inp.toolchain.clone(),
                    arch: inp.arch.clone(),
                    recipe_digest: inp.recipe_digest,
                    build_seconds: 420.0,
                    host: "bench".into(),
                    time: 1_700_000_000 + i,
                    predicted_from: None,
                    writer: None,
                    patches: Vec::new(),
                    patched_tree: None,
                }
            }))
            .unwrap();
        std::fs::write(&marker, b"").unwrap();
        eprintln!("filled {n} build records in {:.1}s", start.elapsed().as_secs_f64());
    }
    let d = dir.display().to_string();
    let mut lookups = Vec::new();
    let mut baseline = Vec::new();
    for i in 0..101u64 {
        let key = inputs((i * 9973) % n).key().to_hex();
        let args = vec![
            "--cache-dir".into(),
            d.clone(),
            "lookup".into(),
            "--build-key".into(),
            key,
            "--json".into(),
        ];
        lookups.push(time_process(&args));
        baseline.push(time_process(&["--version".to_string()]));
    }
    let (lm, l90) = median_ms(lookups);
    let (bm, b90) = median_ms(baseline);
    println!("kcache lookup ({n} build records): median {lm:.1} ms, p90 {l90:.1} ms per process");
    println!("kcache --version (process start-up): median {bm:.1} ms, p90 {b90:.1} ms");
}
