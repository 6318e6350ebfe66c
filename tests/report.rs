//! The bisection report and the bisection records behind it: a real
//! bisection of the gcc toy history writes its HTML report, which a real
//! headless Chromium (Debian's `chromium`) loads and renders to a PNG; the
//! same record is listed by `kcache bisections` and rendered again by
//! `kcache report`; a second bisection of the range says it resumes the
//! first.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A history whose classic bisection (deterministic: the toy test does not
/// depend on time) meets neighbours with the same kernel, which the report
/// draws as one block.
const HISTORY: &[(&str, &str)] = &[("DEMO_COMMITS", "40"), ("DEMO_REGRESSION", "24")];

fn bisect(cache: &Path, repo: &Path) -> Command {
    let mut c = bisect_cmd(cache, repo, &root_commit(repo), "HEAD", 3);
    // Classic checks the culprit when asked for a run count.
    c.args(["--policy", "classic", "--confirm-runs", "3"]);
    c
}

/// Chromium, headless, in a profile of its own (tests run concurrently).
fn chromium(profile: &Path) -> Command {
    let mut c = Command::new("chromium");
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(["--enable-logging=stderr", "--v=0"])
    .env("HOME", profile);
    c
}

#[test]
fn a_bisection_report_renders_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), HISTORY);
    let cache = dir.path().join("cache");
    let report = dir.path().join("report.html");
    let out = run_ok(bisect(&cache, &repo).arg("--report").arg(&report));
    let summary = json(&out);
    let culprit = summary["outcome"]["commit"].as_str().unwrap().to_string();
    let subject = summary["outcome"]["subject"].as_str().unwrap().to_string();
    let html = std::fs::read_to_string(&report).unwrap();

    // Self-contained: nothing to fetch (the SVG namespace is a name, not a fetch).
    for reference in ["src=", "href=", "@import", "url("] {
        assert!(
            !html.contains(reference),
            "the report refers to something outside it: {reference}"
        );
    }

    // The browser loads it without an error and finds the key elements.
    let profile = dir.path().join("chromium");
    let dom = chromium(&profile)
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .expect("chromium runs (scripts/setup.sh installs Debian's chromium)");
    assert!(dom.status.success(), "{}", String::from_utf8_lossy(&dom.stderr));
    let (dom_text, log) = (
        String::from_utf8_lossy(&dom.stdout),
        String::from_utf8_lossy(&dom.stderr),
    );
    for problem in ["CONSOLE", "Failed to load", "Uncaught", "net::ERR_"] {
        assert!(!log.contains(problem), "the page logged {problem}: {log}");
    }
    assert!(dom_text.contains(&subject), "culprit subject in the page");
    assert!(dom_text.contains(&culprit), "culprit commit in the page");
    assert!(
        dom_text.contains("id=\"kernel-diff\""),
        "the culprit's kernel diff table"
    );
    assert!(dom_text.contains("class=\"span\""), "a block of identical kernels");
    assert!(dom_text.contains("<svg"), "the range strip");
    // The revert check: its verdict, its runs and the reverted kernel's build.
    let check = &summary["confirmation"];
    let verdict = check["verdict"].as_str().expect("the check ran");
    assert!(dom_text.contains("id=\"confirmation\""), "the check's section");
    assert!(
        dom_text.contains(&format!("class=\"check {verdict}\""))
            && dom_text.contains(&format!("<strong>{verdict}</strong>")),
        "the check's verdict {verdict}"
    );
    let runs = &check["runs"];
    assert!(
        dom_text.contains(&format!(
            "{} with the bisected crash, {} other crash(es), {} ok",
            runs["matched"], runs["other"], runs["ok"]
        )),
        "the check's runs {runs}"
    );
    match check["build_key"].as_str() {
        Some(key) => assert!(dom_text.contains(key), "the revert build's key {key}"),
        None => assert!(dom_text.contains("not built"), "{check}"),
    }

    let png = dir.path().join("report.png");
    let shot = chromium(&profile)
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1100,1600")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    assert!(
        bytes.len() > 20_000,
        "a rendered page, not a blank one: {} bytes",
        bytes.len()
    );
    if let Ok(keep) = std::env::var("KCACHE_REPORT_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }

    // The record behind it: listed, valid, rendered again the same.
    let listed = json(&run_ok(kc(&cache).args(["bisections", "--json"])));
    assert_eq!(listed["schema"], "kcache/bisections/v1");
    let id = listed["bisections"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(listed["bisections"][0]["outcome"]["commit"], culprit.as_str());
    validate_all(&cache);
    let again = run_ok(kc(&cache).args(["report", &id[..12]]));
    assert_eq!(String::from_utf8_lossy(&again.stdout), html);

    // A second bisection of the range resumes the first, and says so.
    let second = run_ok(bisect(&cache, &repo).arg("-v"));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("resuming bisection {id}")), "{err}");
    let listed = json(&run_ok(kc(&cache).args(["bisections", "--json"])));
    assert_eq!(listed["bisections"].as_array().unwrap().len(), 2);
    assert_eq!(totals(&listed["bisections"][0], "builds_done"), 0);
}

#[test]
fn a_report_id_must_be_unique_and_well_formed() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    drop(kcache::store::Cache::open(&cache).unwrap());
    let missing = kc(&cache).args(["report", "12345"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("kcache bisections"));
    let bad = kc(&cache).args(["report", "not-an-id"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a bisection id"));
}

/// Completions and man pages come from the clap definitions: every shell
/// gets a script that names the subcommands, and every subcommand a page.
#[test]
fn completions_and_man_pages_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_ok(kcache().args(["completions", shell]));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("bisections") && script.contains("prebuild"), "{shell}");
    }
    let dir = tempfile::tempdir().unwrap();
    run_ok(kcache().arg("man").arg(dir.path()));
    for page in ["kcache.1", "kcache-bisect.1", "kcache-report.1", "kcache-log-analyze.1"] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page} is a man page");
    }
}

/// `kcache key-gen` makes a private key once and prints the public key
/// last; `kcache config` shows it with the trust mode it implies.
#[test]
fn key_gen_and_config_show_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("config");
    let out = run_ok(kcache().env("XDG_CONFIG_HOME", &xdg).arg("key-gen"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let public = text.split_whitespace().last().unwrap().to_string();
    assert!(public.starts_with("ed25519:") && public.len() == 8 + 64, "{text}");
    let again = kcache().env("XDG_CONFIG_HOME", &xdg).arg("key-gen").output().unwrap();
    assert_eq!(again.status.code(), Some(2), "a key is never replaced");
    let config = run_ok(kcache().env("XDG_CONFIG_HOME", &xdg).arg("config"));
    let shown = String::from_utf8_lossy(&config.stdout);
    assert!(shown.contains(&format!("public key: {public}")), "{shown}");
    assert!(shown.contains("trust: warn (1 trusted key(s))"), "{shown}");
    let json = json(&run_ok(
        kcache().env("XDG_CONFIG_HOME", &xdg).args(["config", "--json"]),
    ));
    assert_eq!(json["schema"], "kcache/config/v1");
    assert_eq!(json["public_key"], public.as_str());
    // A bad key in the config file is an error that names the file.
    std::fs::write(xdg.join("kcache/config.toml"), "trusted_keys = [\"ed25519:zz\"]\n").unwrap();
    let bad = kcache().env("XDG_CONFIG_HOME", &xdg).arg("config").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("config.toml"), "{bad:?}");
}

/// A non-obvious event of the run (here: the team remote is down) is a
/// note in the report, not only a line on stderr.
#[test]
fn the_report_lists_what_went_wrong_on_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), HISTORY);
    let report = dir.path().join("report.html");
    let mut c = bisect(&dir.path().join("cache"), &repo);
    c.args(["--remote", "s3://kcache/down", "--report"])
        .arg(&report)
        .env("AWS_ENDPOINT", "http://127.0.0.1:1")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "test");
    let out = run_ok(&mut c);
    assert!(String::from_utf8_lossy(&out.stderr).contains("unavailable"), "{out:?}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("class=\"note\"") && html.contains("unavailable"),
        "the outage is a note"
    );
}

/// `-q` keeps stderr for warnings and errors: a bisection that goes well
/// prints its result and nothing else.
#[test]
fn quiet_holds_back_progress_and_notices() {
    let dir = tempfile::tempdir().unwrap();
    let repo = demo_repo(dir.path(), HISTORY);
    let mut c = bisect_with(
        &dir.path().join("cache"),
        &repo,
        &root_commit(&repo),
        "HEAD",
        "make -s vmlinux",
        &demo_test_script(),
    );
    let out = run_ok(c.args(["--runs", "3", "--policy", "classic", "-q"]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("grow the pool"));
    let both = kcache().args(["-q", "-v", "stats"]).output().unwrap();
    assert_eq!(both.status.code(), Some(2), "-q and -v exclude each other");
}
