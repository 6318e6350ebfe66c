//! The `kcache` command line: dispatch, printing and exit statuses; the
//! raw arguments are in `cli/args.rs`, their conversion to library inputs
//! in `cli/resolve.rs`, and the work is done by the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use kcache::bisect::{self, CommitEvaluator, Verdict};
use kcache::git::Repo;
use kcache::key::{Key, TestInputs, TestKey};
use kcache::signature::KernelSignature;
use kcache::store::{self, Cache};
use kcache::{signature, syzlog};

// The raw arguments and their conversion to library inputs: binary-only
// modules under src/cli/, outside the library's module tree.
#[path = "cli/args.rs"]
mod args;
#[path = "cli/resolve.rs"]
mod resolve;

use args::*;
use resolve::*;

// Exit statuses, the same for every subcommand (README "Exit status"); 0 is
// success, the positive answer (a culprit, equal signatures, a hit, healthy).

/// A negative answer: signatures differ, a cache miss, a cache with
/// problems, a log whose result is rejected.
const EXIT_NEGATIVE: u8 = 1;
/// An error: bad input, an unreadable file, a cache that cannot be opened.
const EXIT_ERROR: u8 = 2;
/// A bisection that ended without naming a culprit (inconclusive, or no
/// commit in the range changed the kernel).
const EXIT_NO_CULPRIT: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kcache: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Completions(args) => return Ok(completions(args.shell)),
        Command::KeyGen(args) => return key_gen(args.path.as_deref()),
        Command::Man(args) => return man(&args.dir),
        _ => {}
    }
    let quiet = cli.quiet || (cli.command.json() && !cli.verbose);
    kcache::set_quiet(quiet);
    let settings = kcache::config::load(cli.cache_dir.clone(), cli.remote.clone(), cli.remote_mode, &cli.trust)?;
    match cli.command {
        Command::Config(args) => config_cmd(&settings, args),
        Command::Sync(args) => sync_cmd(&settings, args),
        Command::Bisect(args) => bisect_cmd(&settings, args, quiet),
        Command::Prebuild(args) => prebuild_cmd(&settings, args, quiet),
        Command::Bisections(args) => bisections_cmd(&settings, args),
        Command::Completions(_) | Command::Man(_) | Command::KeyGen(_) => {
            unreachable!("answered before the settings are read")
        }
        Command::Report(args) => report_cmd(&settings, args),
        Command::Exec(args) => exec_cmd(&settings, args, quiet),
        Command::Key(args) => key_cmd(args),
        Command::Put(args) => put_cmd(&settings, args),
        Command::Get(args) => get_cmd(&settings, args),
        Command::Forget(args) => forget_cmd(&settings, args),
        Command::Predict(args) => predict_cmd(&settings, args),
        Command::Lookup(args) => lookup_cmd(&settings, args),
        Command::RecordRun(args) => record_run_cmd(&settings, args),
        Command::Stats(args) => stats_cmd(&settings, args),
        Command::Gc(args) => gc_cmd(&settings, args),
        Command::Verify(args) => verify_cmd(&settings, args),
        Command::Repro(args) => repro_cmd(&settings, args),
        Command::Sign(SignArgs { json, files }) => Ok(sign(&files, json)),
        Command::Title(TitleArgs { json, files }) => Ok(title(&files, json)),
        Command::Diff(DiffArgs { a, b, all, json }) => diff(&a, &b, all, json),
        Command::Log(LogCommand::Analyze { json, files }) => Ok(log_analyze(&files, json)),
        Command::Log(LogCommand::Replay { json, dirs }) => log_replay(&dirs, json),
        Command::Log(LogCommand::Import { json, files }) => log_import_cmd(&settings, &files, json),
    }
}

fn log_import_cmd(settings: &kcache::config::Settings, files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let code = log_import(&cache, files, json);
    finish_uploads(&cache);
    Ok(code)
}

fn log_analyze(files: &[PathBuf], json: bool) -> ExitCode {
    let mut rejected = false;
    let code = each_file(files, |path| {
        let log = parse_log(path)?;
        let analysis = kcache::judge::analyze(&log);
        rejected |= analysis.verdict == syzlog::ResultVerdict::Reject;
        if json {
            println!(
                "{}",
                versioned(
                    "kcache/log-analysis/v1",
                    &syzlog::FileAnalysis {
                        path,
                        analysis: &analysis
                    }
                )?
            );
        } else {
            print!("{}", kcache::report::analysis_text(path, &analysis));
        }
        Ok(())
    });
    if code == ExitCode::SUCCESS && rejected {
        ExitCode::from(EXIT_NEGATIVE)
    } else {
        code
    }
}

/// Parses a log, warning once if console output held binary bytes.
fn parse_log(path: &Path) -> Result<syzlog::Log, syzlog::LogFileError> {
    let log = syzlog::parse_file(path)?;
    if let Some(w) = syzlog::garbled_warning(path, &log) {
        kcache::warn(&format!("warning: {w}"));
    }
    Ok(log)
}

fn log_import(cache: &Cache, files: &[PathBuf], json: bool) -> ExitCode {
    each_file(files, |path| {
        let r = kcache::import::import_log(cache, &parse_log(path)?, path)?;
        if json {
            println!(
                "{}",
                versioned("kcache/log-import/v1", &kcache::import::FileImport { path, import: &r })?
            );
        } else {
            println!(
                "{}: {} known signature(s), {} run(s){}",
                path.display(),
                r.known_signatures,
                r.runs,
                r.test_key.map(|k| format!(" under test key {k}")).unwrap_or_default()
            );
        }
        Ok(())
    })
}

fn log_replay(dirs: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let files = syzlog::corpus_files(dirs)?;
    let report = kcache::judge::replay(&files);
    for w in &report.warnings {
        kcache::warn(&format!("warning: {w}"));
    }
    for e in &report.unreadable {
        eprintln!("kcache: {e}");
    }
    if json {
        println!("{}", versioned_pretty("kcache/log-replay/v1", &report)?);
    } else {
        print!("{}", kcache::report::replay_text(&report));
    }
    Ok(if report.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ERROR)
    })
}

/// Runs `f` on every file; a failure is reported and the rest still done.
/// Exit 2 if any file failed.
fn each_file(files: &[PathBuf], mut f: impl FnMut(&PathBuf) -> anyhow::Result<()>) -> ExitCode {
    let mut failed = false;
    for path in files {
        if let Err(e) = f(path) {
            eprintln!("kcache: {e:#}");
            failed = true;
        }
    }
    if failed {
        ExitCode::from(EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    }
}

fn sign(files: &[PathBuf], json: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    each_file(files, |path| {
        let report = signature::ElfFile::open(path).and_then(|f| f.report())?;
        if json {
            writeln!(out, "{}", versioned("kcache/sign/v1", &report)?)?;
        } else {
            writeln!(out, "{}  {}", report.signature, path.display())?;
        }
        Ok(())
    })
}

fn title(files: &[PathBuf], json: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    each_file(files, |path| {
        let t = kcache::title::title_file(path)?;
        if json {
            writeln!(out, "{}", versioned("kcache/title/v1", &t)?)?;
        } else {
            writeln!(out, "{}: {}", t.file, t.title.as_deref().unwrap_or("no crash"))?;
        }
        Ok(())
    })
}

fn diff(a: &Path, b: &Path, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let report = signature::diff_files(a, b, if all { None } else { Some(20) })?;
    if json {
        println!("{}", versioned_pretty("kcache/diff/v1", &report)?);
    } else {
        print!("{}", kcache::report::diff_text(&report, a, b));
    }
    Ok(if report.equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NEGATIVE)
    })
}

/// Waits for uploads to the remote and says what could not be uploaded.
fn finish_uploads(cache: &Cache) {
    match cache.finish() {
        Ok(r) if !r.failed.is_empty() || r.still_pending > 0 => eprintln!(
            "kcache: {} upload(s) done, {} failed, {} still queued: run `kcache sync` when the remote is back",
            r.uploaded,
            r.failed.len(),
            r.still_pending
        ),
        Ok(_) => {}
        Err(e) => eprintln!("kcache: {e}"),
    }
}

fn config_cmd(settings: &kcache::config::Settings, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let ConfigArgs { json } = args;
    if json {
        println!("{}", versioned_pretty("kcache/config/v1", settings)?);
    } else {
        print!("{}", kcache::report::settings_text(settings));
    }
    Ok(ExitCode::SUCCESS)
}

fn sync_cmd(settings: &kcache::config::Settings, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let SyncArgs { json } = args;
    let cache = open_cache(settings)?;
    if cache.remote().is_none() {
        bail!(
            "no remote configured: give --remote, KCACHE_REMOTE or `remote` in {}",
            settings.config_file.display()
        );
    }
    let r = cache.sync()?;
    if json {
        println!("{}", versioned("kcache/sync/v1", &r)?);
    } else {
        println!(
            "uploaded {}, failed {}, still queued {}",
            r.uploaded,
            r.failed.len(),
            r.still_pending
        );
        for f in &r.failed {
            eprintln!("kcache: upload failed: {f}");
        }
    }
    Ok(if r.still_pending == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NEGATIVE)
    })
}

fn bisect_cmd(settings: &kcache::config::Settings, args: BisectArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let BisectArgs {
        repo,
        good,
        bad,
        fix,
        good_tags,
        recipe,
        first_parent,
        log,
        no_predict,
        no_cache,
        search,
        report,
        json,
    } = args;
    let (_throwaway, cache) = bisect_cache(settings, no_cache)?;
    let repo = Repo::open(&repo)?;
    let mut evaluator = evaluator_in(&repo, &cache, bisect_recipe(recipe, &cache)?)?;
    let opts = bisect::Options {
        goods: good,
        bad,
        direction: if fix {
            bisect::Direction::Fix
        } else {
            bisect::Direction::Cause
        },
        good_tags,
        first_parent,
        log,
        predict: !no_predict,
    };
    let finished = search_with_progress(&repo, &cache, &mut evaluator, &opts, &search, quiet);
    finish_uploads(&cache);
    let bisect::session::Finished { summary, record } = finished?;
    if let Some(path) = &report {
        write_report(path, &record)?;
    }
    print_summary(json, &summary)
}

fn print_summary(json: bool, summary: &bisect::Summary) -> anyhow::Result<ExitCode> {
    match json {
        true => println!("{}", versioned_pretty("kcache/bisect/v1", summary)?),
        false => print!("{}", kcache::report::bisect_text(summary)),
    }
    Ok(match summary.outcome {
        bisect::Outcome::Culprit { .. } => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_NO_CULPRIT),
    })
}

fn write_report(path: &Path, record: &bisect::record::BisectionRecord) -> anyhow::Result<()> {
    std::fs::write(path, kcache::report::html::bisection_html(record))
        .with_context(|| format!("writing the report {}", path.display()))
}

/// A `--json` document: the body with a `schema` field naming its shape
/// and version (`kcache/<command>/v1`, see the README).
fn versioned<T: serde::Serialize>(schema: &'static str, body: &T) -> serde_json::Result<String> {
    serde_json::to_string(&kcache::Versioned { schema, body })
}

fn versioned_pretty<T: serde::Serialize>(schema: &'static str, body: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(&kcache::Versioned { schema, body })
}

/// Generated from the clap definitions, so they never drift from `--help`.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "kcache", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// The public key is the last token of the output, in the form
/// `trusted_keys` and `--trust` take.
fn key_gen(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let path = path.map_or_else(kcache::trust::SigningKey::default_path, Path::to_path_buf);
    let key = kcache::trust::SigningKey::generate(&path)?;
    println!(
        "signing key written to {} (keep it private); public key: {}",
        path.display(),
        key.public()
    );
    Ok(ExitCode::SUCCESS)
}

fn man(dir: &Path) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn bisections_cmd(settings: &kcache::config::Settings, args: BisectionsArgs) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let all: Vec<(kcache::store::BisectionId, bisect::record::BisectionRecord)> = cache.bisections()?;
    let records: Vec<_> = all.into_iter().map(|(_, r)| r).collect();
    if args.json {
        let listing = bisect::record::Listing::of(&records);
        println!("{}", serde_json::to_string_pretty(&listing)?);
    } else {
        print!("{}", kcache::report::bisections_text(&records));
    }
    Ok(ExitCode::SUCCESS)
}

fn report_cmd(settings: &kcache::config::Settings, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let record = bisect::record::find(&cache, &args.id)?;
    match &args.output {
        Some(path) => write_report(path, &record)?,
        None => print!("{}", kcache::report::html::bisection_html(&record)),
    }
    Ok(ExitCode::SUCCESS)
}

fn prebuild_cmd(settings: &kcache::config::Settings, args: PrebuildArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let PrebuildArgs {
        repo,
        range,
        first_parent,
        every,
        recipe,
        json,
    } = args;
    let cache = open_cache(settings)?;
    let repo = Repo::open(&repo)?;
    let range = kcache::prebuild::Range::resolve(&repo, &range, first_parent)?;
    let mut evaluator = evaluator_in(&repo, &cache, build_recipe(recipe, &cache, String::new())?)?;
    let bar = prebuild_bar(quiet);
    let record = kcache::prebuild::prebuild(&repo, &cache, &mut evaluator, &range, every as usize, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!(
            "{} {}, ~{:.0}s left",
            kcache::short_id(p.commit),
            p.source.as_str(),
            p.eta_seconds
        ));
    });
    bar.finish_and_clear();
    finish_uploads(&cache);
    let record = record?;
    if json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        print!("{}", kcache::report::prebuild_text(&record));
    }
    Ok(if record.transient > 0 {
        ExitCode::from(EXIT_NEGATIVE)
    } else {
        ExitCode::SUCCESS
    })
}

/// Commits done and left with an ETA on stderr (hidden under --json).
fn prebuild_bar(quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("prebuild [{bar:30}] {pos}/{len} commits  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar
}

/// Runs the chosen search, printing timestamped progress to stderr; when
/// `quiet` (`--json` without `-v`) the progress is held back and printed
/// only if the bisection fails, as the story of the error.
fn search_with_progress(
    repo: &Repo,
    cache: &Cache,
    evaluator: &mut CommitEvaluator,
    opts: &bisect::Options,
    search: &SearchArgs,
    quiet: bool,
) -> anyhow::Result<bisect::session::Finished> {
    let start = std::time::Instant::now();
    let mut held = Vec::new();
    let mut progress = |line: &str| {
        let line = format!("[{:>8.1}s] {line}", start.elapsed().as_secs_f64());
        if quiet {
            held.push(line);
        } else {
            eprintln!("{line}");
        }
    };
    let finished = bisect::session::run(
        repo,
        cache,
        evaluator,
        opts,
        search.policy.into(),
        &search.noisy()?,
        &mut progress,
    );
    if finished.is_err() {
        held.iter().for_each(|line| eprintln!("{line}"));
    }
    Ok(finished?)
}

fn exec_cmd(settings: &kcache::config::Settings, args: ExecArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let ExecArgs { recipe, json } = args;
    let cache = open_cache(settings)?;
    let repo = Repo::discover(&std::env::current_dir()?)?;
    let state = bisect::state_dir(&cache, repo.dir());
    let mut evaluator = CommitEvaluator::new(bisect_recipe(recipe, &cache)?, repo.dir().into(), state, true)?;
    let head = repo.commit_id("HEAD")?;
    let eval = evaluator.evaluate(&repo, &cache, &head, &mut |line| {
        if !quiet {
            eprintln!("{line}")
        }
    });
    finish_uploads(&cache);
    let eval = eval?;
    if json {
        println!("{}", versioned("kcache/exec/v1", &eval)?);
    }
    Ok(ExitCode::from(match eval.verdict {
        Verdict::Good => 0,
        Verdict::Bad => 1,
        Verdict::Skip => 125,
    }))
}

fn key_cmd(args: KeyArgs) -> anyhow::Result<ExitCode> {
    let KeyArgs { inputs, json } = args;
    let (_, resolved, recipe) = resolve_recipe(&inputs)?;
    if json {
        println!(
            "{}",
            versioned(
                "kcache/key/v1",
                &kcache::key::KeyedInputs {
                    build_key: resolved.key(),
                    inputs: &resolved,
                    recipe: &recipe.recipe,
                }
            )?
        );
    } else {
        println!("{}", resolved.key());
    }
    Ok(ExitCode::SUCCESS)
}

fn put_cmd(settings: &kcache::config::Settings, args: PutArgs) -> anyhow::Result<ExitCode> {
    let PutArgs {
        inputs,
        files,
        build_seconds,
        json,
    } = args;
    let cache = open_cache(settings)?;
    let (commit, resolved) = resolve_inputs(&inputs)?;
    let artifacts: Vec<(String, PathBuf)> = files
        .iter()
        .map(|f| (artifact_name(&inputs.repo, f), f.clone()))
        .collect();
    let vmlinux = artifacts.first().map(|(_, p)| p).context("give the vmlinux first")?;
    let signature = KernelSignature::from(signature::sign_file(vmlinux)?);
    let record = cache.put_build(&commit, &resolved, &signature, &artifacts, build_seconds);
    finish_uploads(&cache);
    let record = record?;
    if json {
        println!("{}", serde_json::to_string(&record)?);
    } else {
        println!(
            "{}  {}  {} artifact(s)",
            record.build_key,
            record.signature.as_deref().unwrap_or(""),
            record.artifacts.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn get_cmd(settings: &kcache::config::Settings, args: GetArgs) -> anyhow::Result<ExitCode> {
    let GetArgs {
        inputs,
        build_key,
        blob,
        dest,
        json,
    } = args;
    let cache = open_existing_cache(settings)?;
    if let Some(blob) = blob {
        return get_blob(&cache, &blob, &dest);
    }
    let key = build_key_of(&cache, build_key.as_deref(), &inputs)?;
    let Some(record) = cache.build(&key)? else {
        eprintln!("kcache: no build with key {key}");
        return Ok(ExitCode::from(EXIT_NEGATIVE));
    };
    if record.status != store::BuildStatus::Ok {
        eprintln!("kcache: build {key} is a recorded build failure: nothing to restore");
        return Ok(ExitCode::from(EXIT_NEGATIVE));
    }
    // Re-signed before its signature is believed.
    let restored = cache.restore_build(&record, &dest);
    finish_uploads(&cache);
    let restored = match restored {
        Err(store::StoreError::Evicted(name)) => {
            eprintln!("kcache: artifact {name} of build {key} is not in the cache (evicted, or dropped as false)");
            return Ok(ExitCode::from(EXIT_NEGATIVE));
        }
        Err(e @ store::StoreError::Quarantined { .. }) => {
            eprintln!("kcache: build {key}: {e}");
            return Ok(ExitCode::from(EXIT_NEGATIVE));
        }
        other => other?,
    };
    print_restored(
        json,
        &store::Restored {
            build_key: key,
            signature: record.signature,
            restored,
        },
    )
}

fn print_restored(json: bool, r: &store::Restored) -> anyhow::Result<ExitCode> {
    match json {
        true => println!("{}", versioned("kcache/get/v1", r)?),
        false => r.restored.iter().for_each(|p| println!("{}", p.display())),
    }
    Ok(ExitCode::SUCCESS)
}

/// `get --blob`: one blob (its delta chain fetched as needed) to a file.
fn get_blob(cache: &Cache, blob: &str, dest: &Path) -> anyhow::Result<ExitCode> {
    let key = Key::from_hex(blob).with_context(|| format!("--blob {blob}: give 64 hex digits"))?;
    let size = cache.restore_blob(&key, dest);
    finish_uploads(cache);
    println!("{}  {}", dest.display(), size?);
    Ok(ExitCode::SUCCESS)
}

fn forget_cmd(settings: &kcache::config::Settings, args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let ForgetArgs {
        inputs,
        build_key,
        json,
    } = args;
    let cache = open_existing_cache(settings)?;
    let key = build_key_of(&cache, build_key.as_deref(), &inputs)?;
    let forgotten = cache.forget_build(&key)?;
    if json {
        println!(
            "{}",
            versioned(
                "kcache/forget/v1",
                &store::Forgotten {
                    build_key: key,
                    forgotten
                }
            )?
        );
    } else {
        println!("{key}: forgot {forgotten} build record(s)");
    }
    Ok(if forgotten > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NEGATIVE)
    })
}

fn predict_cmd(settings: &kcache::config::Settings, args: PredictArgs) -> anyhow::Result<ExitCode> {
    let PredictArgs { repo, commits, json } = args;
    let cache = open_existing_cache(settings)?;
    let repo = Repo::open(&repo)?;
    let references = bisect::predict::references_in_cache(&cache)?;
    for rev in commits {
        let commit = repo.commit_id(&rev)?;
        let judged = bisect::predict::judge_all(&repo, &references, &commit)?;
        if json {
            let prediction = bisect::predict::CommitPrediction::new(&commit, &judged);
            println!("{}", versioned("kcache/predict/v1", &prediction)?);
        } else {
            print!("{}", kcache::report::prediction_text(&commit, &judged));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn lookup_cmd(settings: &kcache::config::Settings, args: LookupArgs) -> anyhow::Result<ExitCode> {
    let LookupArgs {
        inputs,
        build_key,
        signature,
        crash_titles,
        json,
    } = args;
    let cache = open_existing_cache(settings)?;
    let target = (!crash_titles.is_empty()).then(|| kcache::crash::Target::new(&crash_titles));
    let found = match (&build_key, &signature) {
        (_, Some(sig)) => bisect::lookup::by_signature(&cache, &cache.resolve_signature(sig)?, target.as_ref())?,
        (k, None) => {
            let key = build_key_of(&cache, k.as_deref(), &inputs)?;
            bisect::lookup::by_build_key(&cache, &key, target.as_ref())?
        }
    };
    if json {
        println!("{}", versioned_pretty("kcache/lookup/v1", &found)?);
    } else {
        print!("{}", kcache::report::lookup_text(&found));
    }
    if !found.found() && build_key.is_none() && signature.is_none() {
        kcache::notice(&missing_inputs_hint(&inputs));
    }
    Ok(if found.found() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NEGATIVE)
    })
}

fn record_run_cmd(settings: &kcache::config::Settings, args: RecordRunArgs) -> anyhow::Result<ExitCode> {
    let RecordRunArgs {
        signature,
        test_key,
        test_cmd,
        test_key_files,
        outcome,
        title,
        seconds,
        commit,
        log,
        json,
    } = args;
    let cache = open_cache(settings)?;
    let test_key = match (test_key, test_cmd) {
        (Some(k), _) => TestKey(parse_key(&k)?),
        (None, Some(cmd)) => TestInputs::from_files(cmd, &test_key_files, Vec::new())?.key(),
        (None, None) => bail!("give --test-key or --test-cmd"),
    };
    let outcome: store::Outcome = outcome.parse().map_err(anyhow::Error::msg)?;
    let mut run = store::RunRecord::new(&signature, test_key, outcome, title, seconds, commit.as_ref());
    run.log_blob = log.map(|p| cache.put_blob(&p)).transpose()?;
    let recorded = cache.record_run(&run);
    finish_uploads(&cache);
    recorded?;
    if json {
        println!("{}", serde_json::to_string(&run)?);
    } else {
        println!("{}", run.run_id);
    }
    Ok(ExitCode::SUCCESS)
}

fn stats_cmd(settings: &kcache::config::Settings, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let StatsArgs { json } = args;
    let stats = open_existing_cache(settings)?.stats()?;
    if json {
        println!("{}", versioned_pretty("kcache/stats/v1", &stats)?);
    } else {
        print!("{}", kcache::report::stats_text(&stats));
    }
    Ok(ExitCode::SUCCESS)
}

fn gc_cmd(settings: &kcache::config::Settings, args: GcArgs) -> anyhow::Result<ExitCode> {
    let GcArgs { max_size, json } = args;
    let max = parse_size(&max_size)?;
    let r = open_existing_cache(settings)?.gc(max)?;
    if json {
        println!("{}", versioned("kcache/gc/v1", &r)?);
    } else {
        println!(
            "evicted {} blob(s): {} -> {} bytes (limit {max}); removed {} stale temp file(s)",
            r.evicted, r.bytes_before, r.bytes_after, r.tmp_removed
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(settings: &kcache::config::Settings, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let VerifyArgs { repair, json } = args;
    let r = open_existing_cache(settings)?.verify(repair)?;
    if json {
        println!("{}", versioned_pretty("kcache/verify/v1", &r)?);
    } else {
        for p in &r.problems {
            println!("problem: {p}");
        }
        println!(
            "{} record(s), {} blob(s): {}{}",
            r.records,
            r.blobs,
            if r.healthy() {
                "healthy".to_string()
            } else {
                format!("{} problem(s)", r.problems.len())
            },
            if r.repaired { " (repaired)" } else { "" }
        );
    }
    Ok(if r.healthy() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NEGATIVE)
    })
}

fn repro_cmd(settings: &kcache::config::Settings, args: ReproArgs) -> anyhow::Result<ExitCode> {
    use kcache::vm::{self, Harness};
    let harness = Harness::prepare(
        &settings.cache_dir.join("vm"),
        &args.repro,
        args.vm.settings(args.timeout),
    )?;
    kcache::notice(&format!(
        "{} run(s) of {} on {}, {} at once; kernel command line (plus the accelerator's stall timeouts): {}",
        args.runs,
        args.repro.display(),
        args.kernel.display(),
        args.jobs,
        harness.cmdline()
    ));
    if let Some(dir) = &args.console_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("--console-dir {}", dir.display()))?;
    }
    let mut kept = Ok(());
    let runs = harness.run_many(&args.kernel, args.runs, args.jobs, &mut |run| {
        if !args.json {
            println!("{}", vm::text::run_line(run));
        }
        if let (Some(dir), Ok(())) = (&args.console_dir, &kept) {
            let path = dir.join(format!("run-{}.log", run.run));
            kept = std::fs::write(&path, &run.console).with_context(|| path.display().to_string());
        }
    })?;
    kept?;
    let summary = vm::Summary::of(&runs);
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            kernel: &'a Path,
            repro: &'a Path,
            cmdline: String,
            runs: &'a [vm::Run],
            summary: &'a vm::Summary,
        }
        let out = Out {
            kernel: &args.kernel,
            repro: &args.repro,
            cmdline: harness.cmdline(),
            runs: &runs,
            summary: &summary,
        };
        println!("{}", versioned_pretty("kcache/repro/v1", &out)?);
    } else {
        print!("{}", vm::text::summary(&summary));
        if let Some(report) = vm::text::first_report(&runs, 40) {
            print!("{report}");
        }
    }
    Ok(ExitCode::from(if summary.crashed > 0 {
        EXIT_NEGATIVE
    } else if summary.ok == 0 {
        EXIT_NO_CULPRIT
    } else {
        0
    }))
}
