//! The team cache against a real S3 server: a 3-node Garage cluster on
//! loopback (replication factor 3), started by `scripts/garage.sh` for each
//! test and stopped afterwards.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

impl Garage {
    fn script(&self, args: &[&str]) {
        let out = Command::new(root().join("scripts/garage.sh"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "garage.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn kill_node(&self, n: u32) {
        self.script(&["kill-node", self.dir.path().to_str().unwrap(), &n.to_string()]);
    }

    fn stop_all(&self) {
        self.script(&["stop", self.dir.path().to_str().unwrap()]);
    }

    fn restart(&self) {
        self.script(&["restart", self.dir.path().to_str().unwrap()]);
    }

    /// kcache with this cluster's credentials and a cache dir.
    fn kcache(&self, cache: &Path, prefix: &str) -> Command {
        let mut c = kcache();
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("--cache-dir")
            .arg(cache)
            .arg("--remote")
            .arg(format!("s3://kcache/{prefix}"));
        c
    }

    /// A client for the cluster's bucket, for looking behind kcache's back.
    fn bucket(&self) -> object_store::aws::AmazonS3 {
        let get = |k: &str| self.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
        kcache::store::remote::use_ring_for_tls();
        object_store::aws::AmazonS3Builder::new()
            .with_bucket_name("kcache")
            .with_access_key_id(get("AWS_ACCESS_KEY_ID"))
            .with_secret_access_key(get("AWS_SECRET_ACCESS_KEY"))
            .with_endpoint(get("AWS_ENDPOINT"))
            .with_region(get("AWS_REGION"))
            .with_allow_http(true)
            .build()
            .unwrap()
    }

    /// Every object name under `prefix` in the bucket.
    fn objects(&self, prefix: &str) -> Vec<String> {
        use futures::StreamExt;
        use object_store::ObjectStore;
        let store = self.bucket();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let p = object_store::path::Path::from(prefix);
            let mut out = Vec::new();
            let mut list = store.list(Some(&p));
            while let Some(meta) = list.next().await {
                out.push(meta.unwrap().location.to_string());
            }
            out.sort();
            out
        })
    }

    /// A record object's JSON (the record inside a signed envelope).
    fn record(&self, name: &str) -> serde_json::Value {
        use object_store::ObjectStoreExt;
        let store = self.bucket();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let bytes = rt.block_on(async {
            let got = store.get(&object_store::path::Path::from(name)).await.unwrap();
            got.bytes().await.unwrap()
        });
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        v.get("record").cloned().unwrap_or(v)
    }

    /// Overwrites one object with other bytes.
    fn tamper(&self, name: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        let store = self.bucket();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(store.put(&object_store::path::Path::from(name), bytes.to_vec().into()))
            .unwrap();
    }
}

const REPO: &[(&str, &str)] = &[
    ("DEMO_COMMITS", "40"),
    ("DEMO_REGRESSION", "27"),
    ("DEMO_BREAK_FROM", "10"),
    ("DEMO_BREAK_TO", "13"),
];

/// `kcache bisect` of the whole demo history through this cluster.
fn bisect_cmd(garage: &Garage, cache: &Path, prefix: &str, repo: &Path, test: &str, runs: &str) -> Command {
    let mut c = garage.kcache(cache, prefix);
    c.args(["bisect", "--repo"]).arg(repo).args([
        "--good",
        &root_commit(repo),
        "--bad",
        "HEAD",
        "--build",
        "make -s vmlinux",
        "--test",
        test,
        "--runs",
        runs,
        "--json",
    ]);
    c
}

fn bisect(garage: &Garage, cache: &Path, prefix: &str, repo: &Path) -> (serde_json::Value, String) {
    let out = run_ok(&mut bisect_cmd(garage, cache, prefix, repo, &demo_test_script(), "5"));
    (json(&out), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn culprit_build_key(summary: &serde_json::Value) -> String {
    let culprit = summary["outcome"]["commit"].as_str().unwrap();
    summary["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["commit"] == culprit)
        .unwrap()["build_key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn output_of(c: &mut Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

/// Puts `record`, sealed with M's signing key, on the remote as a build
/// record of `key` with `signature`: a forged record in M's own name.
fn plant_sealed_by_m(garage: &Garage, m: &Member, key: &str, signature: &str, record: &serde_json::Value) {
    let m_key = kcache::trust::SigningKey::load(&m.xdg.join("kcache/signing.key"))
        .unwrap()
        .unwrap();
    let body = m_key.seal(&serde_json::to_vec(record).unwrap());
    let hash = &blake3::hash(&body).to_hex()[..32];
    garage.tamper(&format!("team/builds/{key}/{signature}.{hash}.json"), &body);
}

/// A fresh Garage (port slot `slot`), a scratch directory and the demo
/// repository in it: every team test's start.
fn team_repo(slot: u16) -> (Garage, tempfile::TempDir, PathBuf) {
    let garage = Garage::start(slot);
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), REPO);
    (garage, dir, repo)
}

#[test]
fn team_members_share_builds_tests_and_artifacts() {
    let (garage, dir, repo) = team_repo(0);
    let (a_cache, b_cache) = (dir.path().join("a"), dir.path().join("b"));

    let (a, _) = bisect(&garage, &a_cache, "team", &repo);
    assert!(totals(&a, "builds_done") > 0);
    // One record per build (identical kernels share a blob).
    assert_eq!(garage.objects("team/builds").len(), totals(&a, "builds_done") as usize);
    assert!(!garage.objects("team/blobs").is_empty());

    // Every run went up with its console, before the record naming it.
    let blobs = garage.objects("team/blobs");
    let consoles: Vec<String> = garage
        .objects("team/runs")
        .iter()
        .filter_map(|r| garage.record(r)["log_blob"].as_str().map(String::from))
        .collect();
    assert!(!consoles.is_empty(), "the demo test's runs keep their output");
    for c in &consoles {
        assert!(
            blobs.iter().any(|b| b.ends_with(&format!("/{c}.zst"))),
            "console {c} not uploaded"
        );
    }

    let report = dir.path().join("b.html");
    let out = run_ok(
        bisect_cmd(&garage, &b_cache, "team", &repo, &demo_test_script(), "5")
            .arg("--report")
            .arg(&report),
    );
    let b = json(&out);
    assert_eq!(b["outcome"]["commit"], a["outcome"]["commit"]);
    assert_eq!(totals(&b, "builds_done"), 0, "{b}");
    assert_eq!(totals(&b, "runs_done"), 0, "{b}");
    // B's report shows the oops of the culprit's kernel from A's pulled runs.
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("The crash on the culprit") && html.contains("KASAN: slab-out-of-bounds"),
        "no oops in B's report"
    );

    // B restores A's artifacts from the remote, verified, byte for byte.
    let key = culprit_build_key(&a);
    let (from_a, from_b) = (dir.path().join("from-a"), dir.path().join("from-b"));
    run_ok(
        kcache()
            .arg("--cache-dir")
            .arg(&a_cache)
            .args(["get", "--build-key", &key, "--dest"])
            .arg(&from_a),
    );
    run_ok(
        garage
            .kcache(&b_cache, "team")
            .args(["get", "--build-key", &key, "--dest"])
            .arg(&from_b),
    );
    assert_eq!(
        std::fs::read(from_a.join("vmlinux")).unwrap(),
        std::fs::read(from_b.join("vmlinux")).unwrap()
    );
    let stats = json(&run_ok(garage.kcache(&b_cache, "team").args(["stats", "--json"])));
    assert!(stats["counters"]["remote_hits"].as_i64().unwrap() > 0, "{stats}");
    assert!(stats["counters"]["remote_bytes_down"].as_i64().unwrap() > 0, "{stats}");
    assert!(output_of(kcache().arg("--cache-dir").arg(&b_cache).arg("verify"))
        .status
        .success());
}

#[test]
fn a_read_only_member_reuses_and_writes_nothing() {
    let (garage, dir, repo) = team_repo(1);
    bisect(&garage, &dir.path().join("a"), "ro", &repo);
    let before = garage.objects("ro");

    let ro = dir.path().join("ro");
    let read_only = |test: &str, runs: &str| {
        let mut c = bisect_cmd(&garage, &ro, "ro", &repo, test, runs);
        c.env("KCACHE_REMOTE_MODE", "read-only");
        json(&run_ok(&mut c))
    };
    let reused = read_only(&demo_test_script(), "5");
    assert_eq!(totals(&reused, "builds_done"), 0);
    assert_eq!(totals(&reused, "runs_done"), 0);

    // New work (a different test: new runs) stays local.
    let fresh = read_only(&format!("{} ", demo_test_script()), "2");
    assert!(totals(&fresh, "runs_done") > 0);
    assert_eq!(garage.objects("ro"), before, "a read-only member wrote to the remote");
    let stats = json(&run_ok(kcache().arg("--cache-dir").arg(&ro).args(["stats", "--json"])));
    assert_eq!(stats["records"]["pending_upload"], 0);
}

#[test]
fn corrupted_remote_objects_are_detected_and_ignored() {
    let (garage, dir, repo) = team_repo(2);
    let (a, _) = bisect(&garage, &dir.path().join("a"), "bad", &repo);
    let key = culprit_build_key(&a);
    let blobs = garage.objects("bad/blobs");
    let runs = garage.objects("bad/runs");
    for b in &blobs {
        garage.tamper(b, b"not the blob you are looking for");
    }
    garage.tamper(&runs[0], br#"{"schema":"kcache/run/v1","outcome":"crash"}"#);

    let b_cache = dir.path().join("b");
    let out = output_of(
        garage
            .kcache(&b_cache, "bad")
            .args(["get", "--build-key", &key, "--dest"])
            .arg(dir.path().join("out")),
    );
    assert_eq!(out.status.code(), Some(1), "a corrupt blob is never returned");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ignored") && stderr.contains("does not verify"),
        "{stderr}"
    );
    assert!(!dir.path().join("out/vmlinux").exists());
    let (_, stderr) = bisect(&garage, &b_cache, "bad", &repo);
    assert!(stderr.contains("does not match the hash in its name"), "{stderr}");
    // The pulled runs' consoles were tampered with too: not kept, and
    // verify (which checks pulled runs' consoles) finds nothing missing.
    let stats = json(&run_ok(
        kcache().arg("--cache-dir").arg(&b_cache).args(["stats", "--json"]),
    ));
    let by_writer = stats["by_writer"].as_object().unwrap();
    assert!(by_writer.keys().any(|w| w != "here"), "B pulled no run: {stats}");
    let verify = output_of(kcache().arg("--cache-dir").arg(&b_cache).arg("verify"));
    assert!(
        verify.status.success(),
        "the local tier is not poisoned: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[test]
fn a_killed_node_does_not_stop_reads_or_writes() {
    let (garage, dir, repo) = team_repo(3);
    garage.kill_node(3);
    let (a, stderr) = bisect(&garage, &dir.path().join("a"), "node", &repo);
    assert!(!stderr.contains("unavailable"), "{stderr}");
    let (b, _) = bisect(&garage, &dir.path().join("b"), "node", &repo);
    assert_eq!(b["outcome"]["commit"], a["outcome"]["commit"]);
    assert_eq!(totals(&b, "builds_done"), 0);
    assert_eq!(totals(&b, "runs_done"), 0);
}

#[test]
fn a_bisection_outlives_the_remote_and_syncs_when_it_returns() {
    let (garage, dir, repo) = team_repo(4);
    let a_cache = dir.path().join("a");
    let mut c = bisect_cmd(&garage, &a_cache, "down", &repo, &demo_test_script(), "5");
    // -v: the progress this test watches shows live under --json.
    c.arg("-v");
    let mut child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // Stop the whole cluster once the bisection has built two kernels.
    let stderr = child.stderr.take().unwrap();
    let (built_two, wait_for_it) = std::sync::mpsc::channel();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all: Vec<String> = Vec::new();
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("built in") && all.iter().filter(|l| l.contains("built in")).count() == 1 {
                let _ = built_two.send(());
            }
            all.push(line);
        }
        all
    });
    let _ = wait_for_it.recv_timeout(Duration::from_secs(120));
    garage.stop_all();
    let out = child.wait_with_output().unwrap();
    let stderr = lines.join().unwrap().join("\n");
    assert!(out.status.success(), "{stderr}");
    let a: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        a["outcome"]["commit"],
        commit_by_subject(&repo, "grow the pool").as_str()
    );
    assert!(stderr.contains("unavailable"), "the outage is reported: {stderr}");
    assert!(stderr.contains("still queued"), "{stderr}");

    garage.restart();
    // The restarted nodes take a moment to find each other again.
    let deadline = Instant::now() + Duration::from_secs(60);
    let synced = loop {
        let out = output_of(garage.kcache(&a_cache, "down").args(["sync", "--json"]));
        if out.status.success() || Instant::now() > deadline {
            break json(&out);
        }
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(synced["still_pending"], 0, "{synced}");
    // Everything A recorded is on the remote now.
    let stats = json(&run_ok(
        kcache().arg("--cache-dir").arg(&a_cache).args(["stats", "--json"]),
    ));
    assert_eq!(
        garage.objects("down/runs").len() as u64,
        stats["records"]["runs"].as_u64().unwrap()
    );
    assert_eq!(
        garage.objects("down/builds").len() as u64,
        stats["records"]["builds"].as_u64().unwrap()
    );
    // And B, with an empty cache, builds and tests nothing.
    let (b, _) = bisect(&garage, &dir.path().join("b"), "down", &repo);
    assert_eq!(totals(&b, "runs_done"), 0, "{b}");
    assert_eq!(totals(&b, "builds_done"), 0, "{b}");
}

#[test]
fn a_non_reproducible_build_is_kept_twice_and_reported() {
    let garage = Garage::start(5);
    let dir = tempfile::tempdir().unwrap();
    let repo = one_commit_repo(&dir.path().join("src"));
    // The same inputs built twice with different code: as if a timestamp or
    // a random seed leaked into the kernel.
    let build = |name: &str, value: u32| {
        let src = dir.path().join(format!("{name}.c"));
        std::fs::write(
            &src,
            format!("int stamp(void) {{ return {value}; }}\nint main(void) {{ return stamp(); }}\n"),
        )
        .unwrap();
        let out = dir.path().join(name);
        run_ok(Command::new("gcc").args(["-O1", "-o"]).arg(&out).arg(&src));
        out
    };
    let (one, two) = (build("one", 1), build("two", 2));
    let put = |cache: &str, elf: &Path| {
        let mut c = garage.kcache(&dir.path().join(cache), "det");
        c.args([
            "put",
            "--repo",
            repo.to_str().unwrap(),
            "--toolchain",
            "gcc (same) 1",
            "--json",
        ])
        .arg(elf);
        run_ok(&mut c)
    };
    let a = json(&put("a", &one));
    let b_out = put("b", &two);
    let b = json(&b_out);
    assert_eq!(a["build_key"], b["build_key"]);
    assert_ne!(a["signature"], b["signature"]);
    let warning = String::from_utf8_lossy(&b_out.stderr);
    assert!(warning.contains("NON-REPRODUCIBLE BUILD"), "{warning}");
    assert!(
        warning.contains(a["signature"].as_str().unwrap()) && warning.contains(b["signature"].as_str().unwrap()),
        "{warning}"
    );
    assert!(warning.contains(".text"), "the differing section is named: {warning}");
    let stats = json(&run_ok(
        kcache()
            .arg("--cache-dir")
            .arg(dir.path().join("b"))
            .args(["stats", "--json"]),
    ));
    assert_eq!(stats["counters"]["determinism_conflicts"], 1, "{stats}");
    let key = a["build_key"].as_str().unwrap();
    assert_eq!(
        garage.objects(&format!("det/builds/{key}")).len(),
        2,
        "both results are kept"
    );
}

/// The delta chains a member prebuilt reach a member with an empty cache:
/// every artifact restores from the bucket bit for bit (each link fetched
/// and verified), and a bisection of the range builds nothing.
#[test]
fn prebuilt_delta_chains_restore_from_the_remote_bit_for_bit() {
    let (garage, dir, repo) = team_repo(6);
    let (a_cache, b_cache) = (dir.path().join("a"), dir.path().join("b"));
    let range = format!("{}..HEAD", root_commit(&repo));
    run_ok(
        garage
            .kcache(&a_cache, "team")
            .args(["prebuild", "--repo"])
            .arg(&repo)
            .args([range.as_str(), "--build", "make -s vmlinux", "--json"]),
    );
    let deltas = std::fs::read_dir(a_cache.join("blobs"))
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .filter(|f| std::fs::read(f.path()).unwrap().starts_with(&[0x5B, 0x2A, 0x4D, 0x18]))
        .count();
    assert!(deltas > 3, "the prebuild stored delta blobs ({deltas})");

    let store = kcache::store::Cache::open(&a_cache).unwrap();
    let builds: Vec<(String, kcache::store::BuildRecord)> = store.raw_records(kcache::store::index::CF_BUILDS).unwrap();
    drop(store);
    let mut restored = 0;
    for (_, b) in builds.iter().filter(|(_, b)| !b.artifacts.is_empty()) {
        let dest = dir.path().join("r").join(b.build_key.to_hex());
        run_ok(
            garage
                .kcache(&b_cache, "team")
                .args(["get", "--build-key", &b.build_key.to_hex(), "--dest"])
                .arg(&dest),
        );
        let hash = blake3::hash(&std::fs::read(dest.join("vmlinux")).unwrap());
        assert_eq!(
            hash.to_hex().as_str(),
            b.artifacts[0].blake3.to_hex(),
            "{}",
            b.build_key
        );
        restored += 1;
    }
    assert!(restored > deltas, "{restored} builds restored");
    run_ok(kcache().arg("--cache-dir").arg(&b_cache).arg("verify"));

    let c_cache = dir.path().join("c");
    let (c, _) = bisect(&garage, &c_cache, "team", &repo);
    assert_eq!(totals(&c, "builds_done"), 0, "{c}");
}

/// A team member: its own config directory (signing key, config.toml).
struct Member {
    xdg: std::path::PathBuf,
    cache: std::path::PathBuf,
    public_key: String,
}

impl Member {
    /// A member with a fresh key (`kcache key-gen`) and this config file.
    fn new(dir: &Path, name: &str, config: &str) -> Member {
        let xdg = dir.join(format!("{name}-config"));
        let out = run_ok(kcache().env("XDG_CONFIG_HOME", &xdg).arg("key-gen"));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let public_key = text.split_whitespace().last().unwrap().to_string();
        assert!(public_key.starts_with("ed25519:"), "{text}");
        std::fs::write(xdg.join("kcache/config.toml"), config).unwrap();
        Member {
            xdg,
            cache: dir.join(format!("{name}-cache")),
            public_key,
        }
    }

    fn kcache(&self, garage: &Garage) -> Command {
        let mut c = garage.kcache(&self.cache, "team");
        c.env("XDG_CONFIG_HOME", &self.xdg);
        c
    }

    /// Bisects again after replacing the config file.
    fn bisect_with_config(&self, garage: &Garage, repo: &Path, config: &str) -> serde_json::Value {
        std::fs::write(self.xdg.join("kcache/config.toml"), config).unwrap();
        self.bisect(garage, repo).0
    }

    fn bisect(&self, garage: &Garage, repo: &Path) -> (serde_json::Value, String) {
        let mut c = bisect_cmd(garage, &self.cache, "team", repo, &demo_test_script(), "3");
        c.env("XDG_CONFIG_HOME", &self.xdg).args(["--policy", "classic"]);
        let out = run_ended(&mut c);
        (json(&out), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Member M holds the bucket's credentials but not the team's trust: its
/// crash runs on A's good kernels and a build record that gives the
/// culprit's parent the culprit's kernel turn a member who trusts
/// everyone (`trust = "off"`) to a wrong culprit; a member who requires
/// A's signature gets the right culprit, takes nothing from M (its build
/// record is not even fetched), and says how many of M's records it ignored.
#[test]
fn a_member_requiring_signatures_is_not_poisoned_by_an_untrusted_writer() {
    let (garage, dir, repo) = team_repo(7);
    let a = Member::new(dir.path(), "a", "");
    let m = Member::new(dir.path(), "m", "");
    let (truth, _) = a.bisect(&garage, &repo);
    let culprit = truth["outcome"]["commit"].as_str().unwrap().to_string();
    assert!(garage.objects("team/runs").len() > 3);

    // M: crash runs on every kernel A found good.
    let steps = truth["steps"].as_array().unwrap();
    for s in steps.iter().filter(|s| s["verdict"] == "good") {
        for _ in 0..3 {
            run_ok(m.kcache(&garage).args([
                "record-run",
                "--signature",
                s["signature"].as_str().unwrap(),
                "--test-cmd",
                &demo_test_script(),
                "--outcome",
                "crash",
                "--title",
                "BUG: KASAN: slab-out-of-bounds in mm_init",
            ]));
        }
    }
    // M: the culprit's parent's build record, rewritten to claim the
    // culprit's kernel (its vmlinux does not have that signature), signed by M.
    let parent = &truth["outcome"]["parents"][0];
    let parent_step = steps.iter().find(|s| s["commit"] == parent["commit"]).unwrap();
    let key = parent_step["build_key"].as_str().unwrap();
    let store = kcache::store::Cache::open(&a.cache).unwrap();
    let mut forged: serde_json::Value = store
        .raw_records::<serde_json::Value>(kcache::store::index::CF_BUILDS)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap()
        .1;
    drop(store);
    let claimed = truth["outcome"]["signature"].as_str().unwrap();
    forged["signature"] = claimed.into();
    forged["time"] = 1.into();
    plant_sealed_by_m(&garage, &m, key, claimed, &forged);

    // In A's name: one of A's run records with other bytes under A's
    // signature, and one with its signature itself altered.
    let a_key = kcache::trust::SigningKey::load(&a.xdg.join("kcache/signing.key"))
        .unwrap()
        .unwrap();
    let store = kcache::store::Cache::open(&a.cache).unwrap();
    let (_, run): (String, serde_json::Value) = store
        .raw_records::<serde_json::Value>(kcache::store::index::CF_RUNS)
        .unwrap()
        .into_iter()
        .find(|(_, r)| r["outcome"] == "crash")
        .unwrap();
    drop(store);
    let sealed = String::from_utf8(a_key.seal(&serde_json::to_vec(&run).unwrap())).unwrap();
    let other_bytes = sealed.replace("\"outcome\":\"crash\"", "\"outcome\":\"ok\"");
    let sig_start = sealed.find("\"sig\":\"").unwrap() + 7;
    let flipped = if &sealed[sig_start..sig_start + 1] == "0" {
        "1"
    } else {
        "0"
    };
    let bad_sig = format!("{}{flipped}{}", &sealed[..sig_start], &sealed[sig_start + 1..]);
    let dir_of = format!(
        "team/runs/{}/{}",
        run["signature"].as_str().unwrap(),
        run["test_key"].as_str().unwrap()
    );
    for (n, body) in [other_bytes, bad_sig].iter().enumerate() {
        let hash = &blake3::hash(body.as_bytes()).to_hex()[..32];
        garage.tamper(&format!("{dir_of}/forged-{n}.{hash}.json"), body.as_bytes());
    }

    // B requires A's signature: the right culprit, nothing from M.
    let config = format!("trust = \"require\"\ntrusted_keys = [\"{}\"]\n", a.public_key);
    let b = Member::new(dir.path(), "b", &config);
    let (found, err) = b.bisect(&garage, &repo);
    assert_eq!(found["outcome"]["commit"], culprit.as_str(), "{found}\n{err}");
    assert!(err.contains("ignored") && err.contains(&m.public_key), "{err}");
    // M's forged build record is ignored with its runs: never fetched,
    // never re-signed (an untrusted build record decides nothing).
    assert!(!err.contains("claims kernel signature"), "{err}");
    assert!(
        err.contains(&format!(
            "ignored 2 record(s) from writer forged signature claiming {}",
            a.public_key
        )) && err.contains("(the signature does not verify)"),
        "A's tampered records: {err}"
    );
    let stats = json(&run_ok(b.kcache(&garage).args(["stats", "--json"])));
    let writers = &stats["by_writer"];
    assert!(writers[&a.public_key].as_u64().unwrap_or(0) > 0, "{stats}");
    assert!(writers.get(&m.public_key).is_none(), "nothing of M's was kept: {stats}");

    // Revocation: the same member, A no longer trusted: A's runs copied
    // before are no evidence at once (B tests for itself).
    let revoked = b.bisect_with_config(&garage, &repo, "trust = \"require\"\ntrusted_keys = []\n");
    assert_eq!(revoked["outcome"]["commit"], culprit.as_str());
    assert!(totals(&revoked, "runs_done") > 0, "{revoked}");

    // C trusts everyone (today's behaviour): M's records decide its answer.
    let c = Member::new(dir.path(), "c", "trust = \"off\"\n");
    let (poisoned, err) = c.bisect(&garage, &repo);
    assert_ne!(poisoned["outcome"]["commit"], culprit.as_str(), "{poisoned}\n{err}");
}

/// Issue 27's two attacks on build records, both with an artifact that
/// really has the signature it claims (so re-signing it proves nothing):
/// M `put`s the culprit's vmlinux under the culprit's parent commit. (1) A
/// member with `require` never lets that record decide what the parent
/// builds to (it builds the parent itself). (2) When A's genuine record and
/// M's disagree, the trusted writer's is used, also when M re-signs its
/// record with an earlier `time` and also under `warn` (where M's records
/// are otherwise evidence); M's claim is said, not used.
#[test]
fn an_untrusted_build_record_never_decides_what_a_commit_builds_to() {
    let (garage, dir, repo) = team_repo(8);
    let a = Member::new(dir.path(), "a", "trust = \"require\"\n");
    let m = Member::new(dir.path(), "m", "");

    // M bisects on its own (no remote) to learn the culprit and keep its vmlinux.
    let m_local = dir.path().join("m-local");
    let mut local = common::bisect_cmd(&m_local, &repo, &root_commit(&repo), "HEAD", 3);
    local.env("XDG_CONFIG_HOME", &m.xdg).args(["--policy", "classic"]);
    let truth = json(&run_ok(&mut local));
    let culprit = truth["outcome"]["commit"].as_str().unwrap().to_string();
    let parent = truth["outcome"]["parents"][0]["commit"].as_str().unwrap().to_string();
    let steps = truth["steps"].as_array().unwrap();
    let parent_key = steps.iter().find(|s| s["commit"] == parent.as_str()).unwrap()["build_key"]
        .as_str()
        .unwrap()
        .to_string();
    let vmlinux_dir = dir.path().join("culprit-kernel");
    run_ok(
        kcache()
            .arg("--cache-dir")
            .arg(&m_local)
            .args(["get", "--build-key", &culprit_build_key(&truth), "--dest"])
            .arg(&vmlinux_dir),
    );
    // M's put: the parent's build key, the culprit's (genuine) kernel.
    let put = json(&run_ok(
        m.kcache(&garage)
            .args(["put", "--repo"])
            .arg(&repo)
            .args(["--commit", &parent, "--build-cmd", "make -s vmlinux", "--json"])
            .arg(vmlinux_dir.join("vmlinux")),
    ));
    assert_eq!(put["build_key"], parent_key.as_str(), "{put}");
    let claimed = put["signature"].as_str().unwrap().to_string();
    assert_eq!(claimed, truth["outcome"]["signature"].as_str().unwrap());

    // (1) B requires A's signature; A has shared nothing yet: B builds the
    // parent itself and blames the culprit, not the parent.
    let trusts_a = format!("trust = \"require\"\ntrusted_keys = [\"{}\"]\n", a.public_key);
    let b = Member::new(dir.path(), "b", &trusts_a);
    let (found, err) = b.bisect(&garage, &repo);
    assert_eq!(found["outcome"]["commit"], culprit.as_str(), "{found}\n{err}");
    assert!(err.contains("ignored") && err.contains(&m.public_key), "{err}");

    // A bisects (trusting only itself) and shares the genuine parent build.
    let (a_found, err) = a.bisect(&garage, &repo);
    assert_eq!(a_found["outcome"]["commit"], culprit.as_str(), "{a_found}\n{err}");

    // (2) M re-signs its record with an earlier time than A's.
    let mut forged = put.clone();
    forged["time"] = 1.into();
    plant_sealed_by_m(&garage, &m, &parent_key.to_string(), &claimed, &forged);
    for (name, config) in [("b2", trusts_a.clone()), ("b3", trusts_a.replace("require", "warn"))] {
        let member = Member::new(dir.path(), name, &config);
        let (found, err) = member.bisect(&garage, &repo);
        assert_eq!(found["outcome"]["commit"], culprit.as_str(), "{name}: {found}\n{err}");
        if config.contains("warn") {
            assert!(
                err.contains("not trusted") && err.contains(&claimed[..12]) && err.contains("not used"),
                "{name}: M's claim is said: {err}"
            );
            assert!(!err.contains("NON-REPRODUCIBLE"), "{name}: {err}");
        }
    }
}

/// Issue 27: a remote found down is remembered for the next processes
/// until a `kcache sync` that succeeds (then forgotten at once); a key that
/// may only read is refused its uploads, which is said as such and is no
/// outage: nothing is remembered, and the next command reads as usual.
#[test]
fn a_successful_sync_forgets_the_outage_and_read_only_credentials_are_no_outage() {
    let garage = Garage::start(9);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let record_run = |c: &mut Command| -> Output { output_of(c.args(ok_run_args())) };
    let ask = |cache: &Path| {
        output_of(
            garage
                .kcache(cache, "team")
                .args(["lookup", "--signature", &"c".repeat(64)]),
        )
    };
    let out = record_run(garage.kcache(&cache, "team").env("AWS_ENDPOINT", &silent));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is unavailable"));
    assert!(cache.join("remote-down").exists());
    let err = String::from_utf8_lossy(&ask(&cache).stderr).into_owned();
    assert!(err.contains("did not answer"), "remembered: {err}");

    run_ok(garage.kcache(&cache, "team").arg("sync"));
    assert!(
        !cache.join("remote-down").exists(),
        "a successful sync forgets the outage"
    );
    assert!(!garage.objects("team/runs").is_empty(), "the queued run went up");
    let err = String::from_utf8_lossy(&ask(&cache).stderr).into_owned();
    assert!(!err.contains("did not answer"), "{err}");

    // A key allowed to read the bucket, not to write it.
    let garage_bin = std::env::var("KCACHE_TOOLS").map_or_else(
        |_| Path::new(&std::env::var("HOME").unwrap()).join(".cache/kcache-tools"),
        std::path::PathBuf::from,
    );
    let cli = |args: &[&str]| {
        run_ok(
            Command::new(garage_bin.join("bin/garage"))
                .arg("-c")
                .arg(garage.dir.path().join("node1.toml"))
                .args(args),
        )
    };
    let created = String::from_utf8_lossy(&cli(&["key", "create", "reader"]).stdout).into_owned();
    let field = |name: &str| {
        created
            .lines()
            .find(|l| l.to_lowercase().contains(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .to_string()
    };
    let (id, secret) = (field("key id"), field("secret key"));
    cli(&["bucket", "allow", "--read", "kcache", "--key", "reader"]);
    let reader = dir.path().join("reader");
    let read_only = || {
        let mut c = garage.kcache(&reader, "team");
        c.env("AWS_ACCESS_KEY_ID", &id).env("AWS_SECRET_ACCESS_KEY", &secret);
        c
    };
    let out = record_run(&mut read_only());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("refused an upload"), "{err}");
    assert!(!err.contains("is unavailable"), "a refusal is no outage: {err}");
    assert!(!reader.join("remote-down").exists(), "nothing remembered");
    let out = output_of(read_only().args(["lookup", "--signature", &"c".repeat(64)]));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !err.contains("did not answer") && !err.contains("is unavailable"),
        "{err}"
    );
}
