//! `kcache prebuild` and dense (delta) artifacts on the gcc toy history:
//! a prebuilt range bisects with 0 builds; every stored artifact restores
//! bit for bit; gc never breaks a delta chain. Real git, gcc, RocksDB.

mod common;

use std::path::Path;

use common::*;

const HISTORY: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "40"),
    ("DEMO_REGRESSION", "25"),
    ("DEMO_BREAK_FROM", "5"),
    ("DEMO_BREAK_TO", "7"),
];

fn prebuild(cache: &Path, repo: &Path, range: &str) -> serde_json::Value {
    json(&run_ok(kc(cache).args(["prebuild", "--repo"]).arg(repo).args([
        range,
        "--build",
        "make -s vmlinux",
        "--json",
    ])))
}

/// Every build record's artifacts, restored through `kcache get`.
fn restore_every_build(cache: &Path, scratch: &Path) -> usize {
    let store = kcache::store::Cache::open(cache).unwrap();
    let builds: Vec<(String, kcache::store::BuildRecord)> = store.raw_records(kcache::store::index::CF_BUILDS).unwrap();
    drop(store);
    let mut n = 0;
    for (_, b) in builds.iter().filter(|(_, b)| !b.artifacts.is_empty()) {
        let dest = scratch.join(b.build_key.to_hex());
        let out = json(&run_ok(
            kc(cache)
                .args(["get", "--build-key", &b.build_key.to_hex(), "--dest"])
                .arg(&dest)
                .arg("--json"),
        ));
        let vmlinux = out["restored"][0].as_str().unwrap();
        let hash = blake3::hash(&std::fs::read(vmlinux).unwrap());
        assert_eq!(
            hash.to_hex().as_str(),
            b.artifacts[0].blake3.to_hex(),
            "{}",
            b.build_key
        );
        n += 1;
    }
    n
}

#[test]
fn a_prebuilt_range_bisects_with_no_build_and_every_artifact_restores() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), HISTORY);
    let cache = dir.path().join("cache");
    let good = root_commit(&repo);
    let p = prebuild(&cache, &repo, &format!("{good}..HEAD"));
    assert_eq!(p["schema"], "kcache/prebuild/v1");
    assert_eq!(p["commits"], 40, "{p}");
    assert_eq!(p["selected"], 41, "the base too: {p}");
    let (built, predicted) = (p["built"].as_u64().unwrap(), p["predicted"].as_u64().unwrap());
    // (No-op prediction needs kbuild's input sets: `make` here builds all.)
    assert_eq!(built + predicted + p["failed"].as_u64().unwrap(), 41, "{p}");

    // Resumable: a second run finds everything.
    let again = prebuild(&cache, &repo, &format!("{good}..HEAD"));
    assert_eq!(
        again["cached"].as_u64().unwrap() + again["failed"].as_u64().unwrap(),
        41,
        "{again}"
    );
    assert_eq!(again["built"], 0);
    let stats = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    assert_eq!(stats["prebuilt"].as_array().unwrap().len(), 1, "{stats}");
    validate_all(&cache);

    // Dense: most artifacts are deltas, and every one restores bit for bit.
    let blobs = stats["blobs"].as_u64().unwrap();
    let restored = restore_every_build(&cache, &dir.path().join("restored"));
    assert!(restored as u64 >= built, "{restored} restored of {built} built");
    assert!(blobs < built * 2, "{blobs} blobs for {built} builds");

    let out = run_ok(bisect_cmd(&cache, &repo, &good, "HEAD", 4).args(["--policy", "classic", "-v"]));
    let summary = json(&out);
    assert_eq!(totals(&summary, "builds_done"), 0, "{summary}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("commits of the range are in the cache"), "{err}");
}

#[test]
fn gc_never_breaks_a_delta_chain() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), HISTORY);
    let cache = dir.path().join("cache");
    prebuild(&cache, &repo, &format!("{}..HEAD", root_commit(&repo)));
    let before = json(&run_ok(kc(&cache).args(["stats", "--json"])))["blob_bytes"]
        .as_u64()
        .unwrap();
    // Evict about half: whatever stays must still restore (its bases stay).
    let gc = json(&run_ok(kc(&cache).args([
        "gc",
        "--max-size",
        &(before / 2).to_string(),
        "--json",
    ])));
    assert!(gc["evicted"].as_u64().unwrap() > 0, "{gc}");
    run_ok(kc(&cache).args(["verify"]));
    let store = kcache::store::Cache::open(&cache).unwrap();
    let builds: Vec<(String, kcache::store::BuildRecord)> = store.raw_records(kcache::store::index::CF_BUILDS).unwrap();
    drop(store);
    let mut kept = 0;
    for (_, b) in builds.iter().filter(|(_, b)| !b.artifacts.is_empty()) {
        let dest = dir.path().join("r").join(b.build_key.to_hex());
        let out = kc(&cache)
            .args(["get", "--build-key", &b.build_key.to_hex(), "--dest"])
            .arg(&dest)
            .output()
            .unwrap();
        match out.status.code() {
            Some(0) => kept += 1,
            // Evicted (said so), never corrupt.
            Some(1) => assert!(String::from_utf8_lossy(&out.stderr).contains("evicted"), "{out:?}"),
            _ => panic!("{}", String::from_utf8_lossy(&out.stderr)),
        }
    }
    assert!(kept > 0, "something stayed restorable");
}
