//! The cache on real files: put/get/lookup, schemas, corruption, gc,
//! concurrent processes and SIGKILL at random moments.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use kcache::store::Cache;

/// A git repo with one commit and a real gcc-built ELF in it.
fn built_repo(dir: &Path) -> (PathBuf, PathBuf) {
    let repo = one_commit_repo(&dir.join("src"));
    std::fs::write(repo.join("main.c"), "int main(void) { return 42; }\n").unwrap();
    let vmlinux = repo.join("vmlinux");
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-g", "-o"])
            .arg(&vmlinux)
            .arg(repo.join("main.c")),
    );
    (repo, vmlinux)
}

#[test]
fn put_get_lookup_round_trip_and_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (repo, vmlinux) = built_repo(dir.path());
    let extra = repo.join("System.map");
    std::fs::write(&extra, "ffffffff81000000 T _stext\n").unwrap();
    let inputs = [
        "--repo",
        repo.to_str().unwrap(),
        "--toolchain",
        "gcc (test) 1, GNU ld (test) 1",
    ];

    let put = json(&run_ok(
        kc(&cache)
            .arg("put")
            .args(inputs)
            .arg(&vmlinux)
            .arg(&extra)
            .arg("--json"),
    ));
    let sig = put["signature"].as_str().unwrap().to_string();
    let signed = run_ok(kcache().arg("sign").arg(&vmlinux));
    assert!(String::from_utf8_lossy(&signed.stdout).starts_with(&sig));
    assert_eq!(put["artifacts"][0]["name"], "vmlinux");
    assert_eq!(put["artifacts"][1]["name"], "System.map");

    // The same artifacts again: no new blob bytes.
    let before = json(&run_ok(kc(&cache).args(["stats", "--json"])))["blob_bytes"]
        .as_u64()
        .unwrap();
    run_ok(kc(&cache).arg("put").args(inputs).arg(&vmlinux).arg(&extra));
    let after = json(&run_ok(kc(&cache).args(["stats", "--json"])))["blob_bytes"]
        .as_u64()
        .unwrap();
    assert_eq!(before, after);

    // get restores identical bytes; key prints the same build key.
    let key = String::from_utf8(run_ok(kc(&cache).arg("key").args(inputs)).stdout)
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(put["build_key"], key.as_str());
    let dest = dir.path().join("restored");
    run_ok(kc(&cache).arg("get").args(inputs).arg("--dest").arg(&dest));
    assert_eq!(
        std::fs::read(dest.join("vmlinux")).unwrap(),
        std::fs::read(&vmlinux).unwrap()
    );
    assert_eq!(
        std::fs::read(dest.join("System.map")).unwrap(),
        std::fs::read(&extra).unwrap()
    );

    // A miss exits 1.
    let miss = kc(&cache)
        .arg("get")
        .args(["--build-key", &"0".repeat(64), "--dest"])
        .arg(&dest)
        .output()
        .unwrap();
    assert_eq!(miss.status.code(), Some(1));

    // Runs on the signature show up in lookup with a verdict.
    for outcome in ["ok", "ok", "crash"] {
        let mut c = kc(&cache);
        c.args([
            "record-run",
            "--signature",
            &sig,
            "--test-cmd",
            "repro",
            "--outcome",
            outcome,
        ]);
        if outcome == "crash" {
            c.args(["--title", "KASAN: use-after-free in foo"]);
        }
        run_ok(&mut c);
    }
    let l = json(&run_ok(kc(&cache).args(["lookup", "--signature", &sig, "--json"])));
    assert_eq!(l["tests"][0]["runs"], 3);
    assert_eq!(l["tests"][0]["verdict"], "bad");
    assert_eq!(l["tests"][0]["evidence"]["titles"][0], "KASAN: use-after-free in foo");
    let l = json(&run_ok(kc(&cache).args(["lookup", "--build-key", &key, "--json"])));
    assert_eq!(l["artifacts"][0]["available"], true);

    // Unique prefixes, as git takes commits; a bad or unknown one says so.
    let l = json(&run_ok(kc(&cache).args([
        "lookup",
        "--signature",
        &sig[..10],
        "--json",
    ])));
    assert_eq!(l["tests"][0]["runs"], 3);
    let l = json(&run_ok(kc(&cache).args(["lookup", "--build-key", &key[..8], "--json"])));
    assert_eq!(l["artifacts"][0]["available"], true);
    run_ok(
        kc(&cache)
            .args(["get", "--build-key", &key[..8], "--dest"])
            .arg(dir.path().join("by-prefix")),
    );
    for (given, says) in [
        ("zz12", "is not one"),
        ("ab", "at least 4 hex digits"),
        ("0000000", "no kernel signature"),
    ] {
        let out = kc(&cache).args(["lookup", "--signature", given]).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{given}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(says), "{given}: {out:?}");
    }
    // A lookup by commit without the build inputs says which it lacks.
    let out = kc(&cache).args(["lookup", "--repo"]).arg(&repo).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not given: --build-cmd") && err.contains("--config"),
        "{err}"
    );

    let bad = kc(&cache)
        .args([
            "record-run",
            "--signature",
            &sig,
            "--test-cmd",
            "x",
            "--outcome",
            "maybe",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown outcome"));

    assert!(validate_all(&cache) >= 5);
    assert!(kc(&cache).arg("verify").output().unwrap().status.success());
}

#[test]
fn build_failures_are_recorded_and_schema_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().join("cache");
    let cache = Cache::open(&cache_dir).unwrap();
    let inputs = kcache::key::BuildInputs {
        tree: kcache::key::TreeId::from_git("4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
        config_digest: kcache::key::digest(b"CONFIG_KASAN=y"),
        toolchain: "gcc 12".into(),
        arch: "x86_64".into(),
        recipe_digest: kcache::key::digest(b"make"),
        patches: Vec::new(),
    };
    let commit = "e4b8954074f6d0db01c8c97d338a67f9389c042f";
    cache
        .put_build_failure(&commit.into(), &inputs, "net/x.c:1:2: error: oops", 12.5)
        .unwrap();
    let r = cache.build(&inputs.key()).unwrap().unwrap();
    assert_eq!(r.status, kcache::store::BuildStatus::Failed);
    assert!(r.log_tail.unwrap().contains("error: oops"));
    validate_all(&cache_dir);
}

fn blob_files(cache: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for shard in std::fs::read_dir(cache.join("blobs")).unwrap() {
        for f in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out
}

#[test]
fn corrupt_truncated_and_deleted_blobs_are_detected_never_returned() {
    for damage in ["garbage", "truncate", "delete"] {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let (repo, vmlinux) = built_repo(dir.path());
        let inputs = ["--repo", repo.to_str().unwrap(), "--toolchain", "t"];
        run_ok(kc(&cache).arg("put").args(inputs).arg(&vmlinux));
        let blob = blob_files(&cache).pop().unwrap();
        match damage {
            "garbage" => std::fs::write(&blob, b"this is not zstd at all").unwrap(),
            "truncate" => {
                let bytes = std::fs::read(&blob).unwrap();
                std::fs::write(&blob, &bytes[..bytes.len() / 2]).unwrap();
            }
            _ => std::fs::remove_file(&blob).unwrap(),
        }
        let verify = kc(&cache).arg("verify").output().unwrap();
        assert_eq!(verify.status.code(), Some(1), "{damage}: verify must fail");
        let report = String::from_utf8_lossy(&verify.stdout);
        assert!(
            report.contains(blob.file_stem().unwrap().to_str().unwrap().trim_end_matches(".zst")),
            "{report}"
        );

        let dest = dir.path().join("out");
        let get = kc(&cache)
            .arg("get")
            .args(inputs)
            .arg("--dest")
            .arg(&dest)
            .output()
            .unwrap();
        assert_ne!(get.status.code(), Some(0), "{damage}: a damaged blob is never returned");
        assert!(!dest.join("vmlinux").exists(), "{damage}: nothing half-written is left");

        // --repair quarantines and marks the artifact evicted; exits 1 (it found a problem).
        let repair = kc(&cache).args(["verify", "--repair"]).output().unwrap();
        assert_eq!(repair.status.code(), Some(1));
        let healthy = kc(&cache).arg("verify").output().unwrap();
        assert!(
            healthy.status.success(),
            "{damage}: {}",
            String::from_utf8_lossy(&healthy.stdout)
        );
        let l = json(&run_ok(kc(&cache).arg("lookup").args(inputs).arg("--json")));
        assert_eq!(l["artifacts"][0]["available"], false);
        assert_eq!(l["build"]["status"], "ok", "the record (signature) stays");
    }
}

#[test]
fn gc_evicts_least_recently_used_artifacts_and_keeps_records() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (repo, vmlinux) = built_repo(dir.path());
    let mut keys = Vec::new();
    for i in 0..3 {
        let art = dir.path().join(format!("big{i}"));
        let data: Vec<u8> = (0..300_000u32).flat_map(|x| (x ^ (i * 7919)).to_le_bytes()).collect();
        std::fs::write(&art, data).unwrap();
        let put = json(&run_ok(
            kc(&cache)
                .arg("put")
                .args(["--repo", repo.to_str().unwrap(), "--toolchain", &format!("t{i}")])
                .arg(&vmlinux)
                .arg(&art)
                .arg("--json"),
        ));
        keys.push(put["build_key"].as_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Use the first build again: it becomes the most recently used.
    run_ok(
        kc(&cache)
            .args(["get", "--build-key", &keys[0], "--dest"])
            .arg(dir.path().join("g")),
    );
    let total = json(&run_ok(kc(&cache).args(["stats", "--json"])))["blob_bytes"]
        .as_u64()
        .unwrap();
    let r = json(&run_ok(kc(&cache).args([
        "gc",
        "--max-size",
        &(total / 2).to_string(),
        "--json",
    ])));
    assert!(r["evicted"].as_u64().unwrap() >= 1);
    assert!(r["bytes_after"].as_u64().unwrap() <= total / 2);
    let first = json(&run_ok(kc(&cache).args(["lookup", "--build-key", &keys[0], "--json"])));
    assert!(
        first["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["available"] == true),
        "{first}"
    );
    let second = json(&run_ok(kc(&cache).args(["lookup", "--build-key", &keys[1], "--json"])));
    assert!(
        second["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["evicted"] == true),
        "{second}"
    );
    assert!(second["signature"].is_string(), "the signature is kept after eviction");
    assert!(
        kc(&cache).arg("verify").output().unwrap().status.success(),
        "evicted is not corrupt"
    );
    let get = kc(&cache)
        .args(["get", "--build-key", &keys[1], "--dest"])
        .arg(dir.path().join("h"))
        .output()
        .unwrap();
    assert_eq!(get.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&get.stderr).contains("evicted"));
    assert!(
        kc(&cache)
            .args(["gc", "--max-size", "12Q"])
            .output()
            .unwrap()
            .status
            .code()
            == Some(2)
    );
}

#[test]
fn four_writers_and_a_reader_share_one_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (repo, vmlinux) = built_repo(dir.path());
    let mut children = Vec::new();
    for w in 0..4 {
        let script = format!(
            "for i in $(seq 15); do {k} --cache-dir {c} put --repo {r} --toolchain w{w}-$i {v} >/dev/null || exit 1; \
             {k} --cache-dir {c} record-run --signature {s} --test-key {t} --outcome ok >/dev/null || exit 1; done",
            k = env!("CARGO_BIN_EXE_kcache"),
            c = cache.display(),
            r = repo.display(),
            v = vmlinux.display(),
            s = "ab".repeat(32),
            t = "cd".repeat(32),
        );
        children.push(
            Command::new("sh")
                .arg("-c")
                .arg(script)
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    // Reading commands never create a cache: start reading once a writer made it.
    let start = std::time::Instant::now();
    while !cache.join("index").is_dir() && start.elapsed() < std::time::Duration::from_secs(30) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for _ in 0..20 {
        run_ok(kc(&cache).args(["stats", "--json"]));
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let stats = json(&run_ok(kc(&cache).args(["stats", "--json"])));
    assert_eq!(stats["records"]["builds"], 60);
    assert_eq!(stats["records"]["runs"], 60);
}

#[test]
fn sigkill_at_random_moments_never_corrupts_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (repo, vmlinux) = built_repo(dir.path());
    let art = dir.path().join("artifact");
    let mut succeeded = Vec::new();
    let mut state: u64 = 0x9e3779b97f4a7c15;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // A distinct ~2 MB artifact each time, so every put writes a blob.
    let artifact = |i: u64| -> Vec<u8> {
        (0..500_000u64)
            .flat_map(|x| ((x * 2654435761) ^ i).to_le_bytes()[..4].to_vec())
            .collect()
    };
    // Kill within 1.5x the time of an uninterrupted put, whatever the load:
    // about a third complete, the rest die at every stage of a put.
    std::fs::write(&art, artifact(u64::MAX)).unwrap();
    let start = std::time::Instant::now();
    run_ok(
        kc(&cache)
            .arg("put")
            .args(["--repo", repo.to_str().unwrap(), "--toolchain", "warm-up"])
            .arg(&vmlinux)
            .arg(&art),
    );
    let window = (start.elapsed().as_micros() as u64 * 3 / 2).max(1000);
    for i in 0..200u64 {
        let data = artifact(i);
        std::fs::write(&art, &data).unwrap();
        let toolchain = format!("kill-{i}");
        let mut child = kc(&cache)
            .arg("put")
            .args(["--repo", repo.to_str().unwrap(), "--toolchain", &toolchain])
            .arg(&vmlinux)
            .arg(&art)
            .args(["--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rand() % window));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            succeeded.push((v["build_key"].as_str().unwrap().to_string(), data));
        }
    }
    let verify = kc(&cache).arg("verify").output().unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
    assert!(!succeeded.is_empty(), "some puts completed");
    assert!(succeeded.len() < 200, "some puts were killed");
    for (key, data) in &succeeded {
        let dest = dir.path().join("check");
        run_ok(kc(&cache).args(["get", "--build-key", key, "--dest"]).arg(&dest));
        assert_eq!(&std::fs::read(dest.join("artifact")).unwrap(), data);
    }
    validate_all(&cache);
}

/// A build whose kernel signature the cache knows already (another
/// process stored it) is stored as a delta against that build's artifact:
/// here the same program with a different `.comment`-style note (outside
/// the signature), put by a second process.
#[test]
fn a_known_kernel_is_stored_as_a_delta_against_its_twin() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (repo, vmlinux) = built_repo(dir.path());
    let put = |toolchain: &str, file: &Path| {
        json(&run_ok(
            kc(&cache)
                .arg("put")
                .args(["--repo", repo.to_str().unwrap(), "--toolchain", toolchain, "--json"])
                .arg(file),
        ))
    };
    let first = put("gcc (test) 1", &vmlinux);
    let note = dir.path().join("note");
    std::fs::write(&note, "built elsewhere\n".repeat(64)).unwrap();
    // Same name, another place: artifacts pair by name.
    std::fs::create_dir(dir.path().join("twin")).unwrap();
    let twin = dir.path().join("twin/vmlinux");
    run_ok(
        Command::new("objcopy")
            .arg("--add-section")
            .arg(format!(".kcache_test_note={}", note.display()))
            .arg(&vmlinux)
            .arg(&twin),
    );
    let second = put("gcc (test) 2", &twin);
    assert_eq!(
        first["signature"], second["signature"],
        "the note is outside the signature"
    );
    assert_ne!(first["artifacts"][0]["blake3"], second["artifacts"][0]["blake3"]);
    let twin_blob = blob_files(&cache)
        .into_iter()
        .find(|p| {
            p.to_string_lossy()
                .contains(second["artifacts"][0]["blake3"].as_str().unwrap())
        })
        .unwrap();
    let bytes = std::fs::read(&twin_blob).unwrap();
    assert!(bytes.starts_with(&[0x5B, 0x2A, 0x4D, 0x18]), "stored as a delta");
    let dest = dir.path().join("restored");
    let key = second["build_key"].as_str().unwrap();
    run_ok(kc(&cache).args(["get", "--build-key", key, "--dest"]).arg(&dest));
    assert_eq!(
        std::fs::read(dest.join("vmlinux")).unwrap(),
        std::fs::read(&twin).unwrap()
    );
}

/// A build record whose vmlinux does not have the signature it claims
/// (its bytes are intact: the record lies) is caught when the artifact is
/// restored: re-signed, the record dropped, nothing restored.
#[test]
fn a_restored_vmlinux_is_re_signed_before_its_signature_is_believed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let (repo, vmlinux) = built_repo(dir.path());
    let put = json(&run_ok(
        kc(&cache)
            .args([
                "put",
                "--repo",
                repo.to_str().unwrap(),
                "--toolchain",
                "gcc (test) 1",
                "--json",
            ])
            .arg(&vmlinux),
    ));
    let key = put["build_key"].as_str().unwrap().to_string();
    let store = kcache::store::Cache::open(&cache).unwrap();
    let mut lying = store
        .build(&kcache::key::BuildKey(kcache::key::Key::from_hex(&key).unwrap()))
        .unwrap()
        .unwrap();
    lying.signature = Some(kcache::signature::KernelSignature::parse(&"ab".repeat(32)).unwrap());
    store.bulk_load_builds([lying]).unwrap();
    drop(store);
    let out = kc(&cache)
        .args(["get", "--build-key", &key, "--dest"])
        .arg(dir.path().join("restored"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("does not have it"),
        "{out:?}"
    );
    let miss = kc(&cache).args(["lookup", "--build-key", &key]).output().unwrap();
    assert_eq!(miss.status.code(), Some(1), "the lying record is gone");
}
