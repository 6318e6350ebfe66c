//! The `kcache` command line: dispatch, printing and exit statuses; the
//! raw arguments are in `cli/args.rs`, their conversion to library inputs
//! in `cli/resolve.rs`, and the work is done by the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use kcache::bisect;
use kcache::exec::{CommitEvaluator, Verdict};
use kcache::git::Repo;
use kcache::key::Key;
use kcache::report as text;
use kcache::signature::KernelSignature;
use kcache::store::{self, Cache};
use kcache::{signature, syzlog};

// The raw arguments and their conversion to library inputs: binary-only
// modules under src/cli/, outside the library's module tree.
#[path = "cli/args.rs"]
mod args;
#[path = "cli/output.rs"]
mod output;
#[path = "cli/resolve.rs"]
mod resolve;

use args::*;
use output::*;
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
/// A bisection that named a culprit the revert check did not confirm: the
/// reverted kernel still crashes.
const EXIT_NOT_CONFIRMED: u8 = 4;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kcache: {}", error_text(&e));
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
        Command::Step(StepCommand::Run(args)) => step_run_cmd(&settings, args),
        Command::Bisect(args) => bisect_cmd(&settings, args, quiet),
        Command::TestPatch(args) => test_patch_cmd(&settings, args, quiet),
        Command::Prebuild(args) => prebuild_cmd(&settings, args, quiet),
        Command::Bisections(args) => bisections_cmd(&settings, args),
        Command::Completions(_) | Command::Man(_) | Command::KeyGen(_) => {
            unreachable!("answered before the settings are read")
        }
        Command::Report(args) => report_cmd(&settings, args),
        Command::Exec(args) => exec_cmd(&settings, args, quiet),
        Command::Key(args) => key_cmd(&settings, args),
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
        Command::Log(LogCommand::Replay { json, labels, dirs }) => log_replay(&dirs, labels.as_deref(), json),
        Command::Log(LogCommand::Import { json, files }) => log_import_cmd(&settings, &files, json),
    }
}

fn log_import_cmd(settings: &kcache::config::Settings, files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let code = each_file(files, |path| {
        let r = kcache::import::import_log(&cache, &parse_log(path)?, path)?;
        let doc = kcache::import::FileImport { path, import: &r };
        Out(json).line("kcache/log-import/v1", &doc, || text::import_text(path, &r))
    });
    finish_uploads(&cache);
    Ok(code)
}

fn log_analyze(files: &[PathBuf], json: bool) -> ExitCode {
    let mut rejected = false;
    let code = each_file(files, |path| {
        let analysis = kcache::judge::analyze(&parse_log(path)?);
        rejected |= analysis.verdict == syzlog::ResultVerdict::Reject;
        let doc = syzlog::FileAnalysis {
            path,
            analysis: &analysis,
        };
        Out(json).line("kcache/log-analysis/v2", &doc, || text::analysis_text(path, &analysis))
    });
    match code == ExitCode::SUCCESS && rejected {
        true => ExitCode::from(EXIT_NEGATIVE),
        false => code,
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

fn log_replay(dirs: &[PathBuf], labels: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let files = syzlog::corpus_files(dirs)?;
    let report = match labels {
        Some(path) => kcache::judge::replay_labelled(&files, &syzlog::Labels::read(path)?),
        None => kcache::judge::replay(&files),
    };
    report
        .warnings
        .iter()
        .for_each(|w| kcache::warn(&format!("warning: {w}")));
    report.unreadable.iter().for_each(|e| eprintln!("kcache: {e}"));
    Out(json).pretty("kcache/log-replay/v2", &report, || text::replay_text(&report))?;
    Ok(match report.unreadable.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_ERROR),
    })
}

/// Runs `f` on every file; a failure is reported and the rest still done.
/// Exit 2 if any file failed.
fn each_file(files: &[PathBuf], mut f: impl FnMut(&PathBuf) -> anyhow::Result<()>) -> ExitCode {
    let failed = files
        .iter()
        .filter_map(|path| f(path).err())
        .inspect(|e| eprintln!("kcache: {}", error_text(e)))
        .count();
    match failed {
        0 => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_ERROR),
    }
}

fn sign(files: &[PathBuf], json: bool) -> ExitCode {
    each_file(files, |path| {
        let report = signature::ElfFile::open(path).and_then(|f| f.report())?;
        Out(json).line("kcache/sign/v1", &report, || text::sign_text(path, &report))
    })
}

fn title(files: &[PathBuf], json: bool) -> ExitCode {
    each_file(files, |path| {
        let t = kcache::title::title_file(path)?;
        Out(json).line("kcache/title/v1", &t, || text::title_text(&t))
    })
}

fn diff(a: &Path, b: &Path, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let report = signature::diff_files(a, b, if all { None } else { Some(20) })?;
    Out(json).pretty("kcache/diff/v1", &report, || text::diff_text(&report, a, b))?;
    Ok(answer(report.equal))
}

fn config_cmd(settings: &kcache::config::Settings, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    Out(args.json).pretty("kcache/config/v1", settings, || text::settings_text(settings))?;
    Ok(ExitCode::SUCCESS)
}

fn sync_cmd(settings: &kcache::config::Settings, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    if cache.remote().is_none() {
        let file = settings.config_file.display();
        bail!("no remote configured: give --remote, KCACHE_REMOTE or `remote` in {file}");
    }
    let r = cache.sync()?;
    Out(args.json).line("kcache/sync/v1", &r, || {
        r.failed.iter().for_each(|f| eprintln!("kcache: upload failed: {f}"));
        text::sync_text(&r)
    })?;
    Ok(answer(r.still_pending == 0))
}

/// `kcache step run`: one step against the team store; exit 0 when a
/// result was recorded, 2 (an error) for the machine's failures.
fn step_run_cmd(settings: &kcache::config::Settings, args: StepRunArgs) -> anyhow::Result<ExitCode> {
    let spec = kcache::engine::StepSpec::read(&args.spec)?;
    let cache = open_cache(settings)?;
    let reference = args
        .reference
        .clone()
        .or_else(|| std::env::var_os("KCACHE_REFERENCE_CLONE").map(PathBuf::from));
    let report = kcache::exec::step::run_step(&spec, args.task, &cache, reference.as_deref(), &mut |line| {
        kcache::notice(line.trim_start())
    })
    .with_context(|| format!("step {} ({})", spec.name().job_name(), spec.describe()))?;
    Out(args.json).line("kcache/step-run/v1", &report, || text::step_text(&report))?;
    Ok(ExitCode::SUCCESS)
}

fn bisect_cmd(settings: &kcache::config::Settings, args: BisectArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let (_throwaway, cache) = bisect_cache(settings, args.no_cache)?;
    let repo = Repo::open(&args.repo)?;
    refuse_one_commit_range(&repo, &args)?;
    let engine = engine_for(settings, args.recipe.executor, &repo, &cache)?;
    let on_engine = engine.is_some();
    let mut evaluator = evaluator_in(
        &repo,
        &cache,
        bisect_recipe(args.recipe.clone(), &cache, settings)?,
        engine,
    )?;
    let mut opts = bisect_options(&args);
    if on_engine && opts.confirm {
        // A step spec carries no patch layer yet: the revert check would
        // build and test on the driver, outside the engine the user chose.
        opts.confirm = false;
        kcache::notice("the revert check does not run through an executor yet: off (run it with --executor local)");
    }
    let finished = search_with_progress(&repo, &cache, &mut evaluator, &opts, &args.search, quiet);
    finish_uploads(&cache);
    let bisect::entry::Finished { summary, record } = finished?;
    if let Some(path) = &args.report {
        write_report(path, &record)?;
    }
    print_summary(args.json, &summary)
}

/// `--good` naming the `--bad` commit leaves nothing to bisect either way
/// (the library would otherwise suggest a `--fix` run that fails too).
fn refuse_one_commit_range(repo: &Repo, args: &BisectArgs) -> anyhow::Result<()> {
    let bad = repo.commit_id(&args.bad)?;
    for good in &args.good {
        if repo.commit_id(good)? == bad {
            bail!(
                "--good {good} and --bad {} are the same commit ({}): nothing to bisect; give as --good an older \
                 commit where the crash does not reproduce (or, with --fix, a newer one where it is gone)",
                args.bad,
                bad.short()
            );
        }
    }
    Ok(())
}

fn test_patch_cmd(settings: &kcache::config::Settings, args: TestPatchArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    use kcache::exec::patch_test::{self, BaseFrom, PatchVerdict};
    let (_none, cache) = bisect_cache(settings, false)?;
    let repo = Repo::open(&args.repo)?;
    let bytes = std::fs::read(&args.patch).with_context(|| format!("reading the patch {}", args.patch.display()))?;
    let text_of_patch = String::from_utf8_lossy(&bytes).into_owned();
    let base = match args.base.as_str() {
        "auto" => patch_test::find_base(&repo, &repo.commit_id(&args.tip)?, &text_of_patch)
            .with_context(|| format!("finding the base of {}", args.patch.display()))?,
        rev => (repo.commit_id(rev)?, BaseFrom::Given),
    };
    let patch = kcache::exec::Patch {
        name: args.patch.display().to_string(),
        diff: bytes,
    };
    let mut evaluator = evaluator_in(
        &repo,
        &cache,
        bisect_recipe(args.recipe.clone(), &cache, settings)?,
        None,
    )?;
    let mut progress = |l: &str| {
        if !quiet {
            eprintln!("{l}");
        }
    };
    let result = patch_test::test_patch(
        &repo,
        &cache,
        &mut evaluator,
        base,
        &patch,
        &args.crash_titles,
        &mut progress,
    );
    finish_uploads(&cache);
    let result = result?;
    Out(args.json).pretty("kcache/test-patch/v1", &result, || text::patch_test_text(&result))?;
    Ok(match result.verdict {
        PatchVerdict::Fixed => ExitCode::SUCCESS,
        PatchVerdict::NotFixed => ExitCode::from(EXIT_NEGATIVE),
        PatchVerdict::BaseDoesNotCrash | PatchVerdict::Untested => ExitCode::from(EXIT_NO_CULPRIT),
    })
}

fn print_summary(json: bool, summary: &bisect::Summary) -> anyhow::Result<ExitCode> {
    Out(json).pretty("kcache/bisect/v1", summary, || text::bisect_text(summary))?;
    let not_confirmed = summary
        .confirmation
        .as_ref()
        .is_some_and(|c| c.verdict == bisect::ConfirmVerdict::NotConfirmed);
    Ok(match summary.outcome {
        bisect::Outcome::Culprit { .. } if not_confirmed => ExitCode::from(EXIT_NOT_CONFIRMED),
        bisect::Outcome::Culprit { .. } => ExitCode::SUCCESS,
        _ => ExitCode::from(EXIT_NO_CULPRIT),
    })
}

fn write_report(path: &Path, record: &bisect::record::BisectionRecord) -> anyhow::Result<()> {
    std::fs::write(path, text::html::bisection_html(record))
        .with_context(|| format!("writing the report {}", path.display()))
}

/// 0 for the positive answer, else [`EXIT_NEGATIVE`].
fn answer(positive: bool) -> ExitCode {
    match positive {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(EXIT_NEGATIVE),
    }
}

/// Generated from the clap definitions, so they never drift from `--help`.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    use clap::CommandFactory;
    clap_complete::generate(shell, &mut Cli::command(), "kcache", &mut std::io::stdout());
    ExitCode::SUCCESS
}

fn key_gen(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let path = path.map_or_else(kcache::trust::SigningKey::default_path, Path::to_path_buf);
    let key = kcache::trust::SigningKey::generate(&path)?;
    print!("{}", text::key_gen_text(&path, &key.public()));
    Ok(ExitCode::SUCCESS)
}

fn man(dir: &Path) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
    Ok(ExitCode::SUCCESS)
}

fn bisections_cmd(settings: &kcache::config::Settings, args: BisectionsArgs) -> anyhow::Result<ExitCode> {
    let all: Vec<(store::BisectionId, bisect::record::BisectionRecord)> = open_cache(settings)?.bisections()?;
    let records: Vec<_> = all.into_iter().map(|(_, r)| r).collect();
    let listing = bisect::record::Listing::of(&records);
    Out(args.json).record_pretty(&listing, || text::bisections_text(&records))?;
    Ok(ExitCode::SUCCESS)
}

fn report_cmd(settings: &kcache::config::Settings, args: ReportArgs) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let record = bisect::record::find(&cache, &args.id)?;
    match &args.output {
        Some(path) => write_report(path, &record)?,
        None => print!("{}", text::html::bisection_html(&record)),
    }
    Ok(ExitCode::SUCCESS)
}

fn prebuild_cmd(settings: &kcache::config::Settings, args: PrebuildArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let repo = Repo::open(&args.repo)?;
    let range = kcache::prebuild::Range::resolve(&repo, &args.range, args.first_parent)?;
    let engine = engine_for(settings, args.recipe.executor, &repo, &cache)?;
    let mut evaluator = evaluator_in(
        &repo,
        &cache,
        build_recipe(args.recipe, &cache, String::new(), settings)?,
        engine,
    )?;
    let bar = prebuild_bar(quiet);
    let every = args.every as usize;
    let record = kcache::prebuild::prebuild(&repo, &cache, &mut evaluator, &range, every, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        let (commit, source) = (kcache::short_id(p.commit), p.source.as_str());
        bar.set_message(format!("{commit} {source}, ~{:.0}s left", p.eta_seconds));
    });
    bar.finish_and_clear();
    finish_uploads(&cache);
    let record = record?;
    Out(args.json).record(&record, || text::prebuild_text(&record))?;
    Ok(answer(record.transient == 0))
}

fn exec_cmd(settings: &kcache::config::Settings, args: ExecArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let repo = Repo::discover(&std::env::current_dir()?)?;
    let state = bisect::state_dir(&cache, repo.dir());
    let mut evaluator = CommitEvaluator::new(
        bisect_recipe(args.recipe, &cache, settings)?,
        repo.dir().into(),
        state,
        true,
    )?;
    let head = repo.commit_id("HEAD")?;
    let eval = evaluator.evaluate(&repo, &cache, &head, &mut |line| {
        if !quiet {
            eprintln!("{line}")
        }
    });
    finish_uploads(&cache);
    let eval = eval?;
    Out(args.json).line("kcache/exec/v1", &eval, String::new)?;
    Ok(ExitCode::from(match eval.verdict {
        Verdict::Good => 0,
        Verdict::Bad => 1,
        Verdict::Skip => 125,
    }))
}

fn key_cmd(settings: &kcache::config::Settings, args: KeyArgs) -> anyhow::Result<ExitCode> {
    let (_, resolved, recipe, build_env) = resolve_recipe(&args.inputs, settings)?;
    let build_key = resolved.key();
    let keyed = KeyShown {
        keyed: kcache::key::KeyedInputs {
            build_key,
            inputs: &resolved,
            recipe: &recipe.recipe,
        },
        build_env: build_env.as_ref(),
    };
    Out(args.json).line("kcache/key/v1", &keyed, || format!("{build_key}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `kcache key --json`: the key, its inputs and recipe, and the commit's
/// build environment when a table gave one.
#[derive(serde::Serialize)]
struct KeyShown<'a> {
    #[serde(flatten)]
    keyed: kcache::key::KeyedInputs<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    build_env: Option<&'a kcache::exec::environment::Shown>,
}

fn put_cmd(settings: &kcache::config::Settings, args: PutArgs) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let (commit, resolved) = resolve_inputs(&args.inputs, settings)?;
    let artifacts: Vec<(String, PathBuf)> = args
        .files
        .iter()
        .map(|f| (artifact_name(&args.inputs.repo, f), f.clone()))
        .collect();
    let vmlinux = artifacts.first().map(|(_, p)| p).context("give the vmlinux first")?;
    let signature = KernelSignature::from(signature::sign_file(vmlinux)?);
    let record = cache.put_build(&commit, &resolved, None, &signature, &artifacts, args.build_seconds);
    finish_uploads(&cache);
    let record = record?;
    Out(args.json).record(&record, || text::put_text(&record))?;
    Ok(ExitCode::SUCCESS)
}

fn get_cmd(settings: &kcache::config::Settings, args: GetArgs) -> anyhow::Result<ExitCode> {
    let cache = open_existing_cache(settings)?;
    if let Some(blob) = &args.blob {
        return get_blob(&cache, blob, &args.dest);
    }
    let key = build_key_of(&cache, args.build_key.as_deref(), &args.inputs, settings)?;
    let record = match cache.restorable(&key)? {
        Ok(record) => record,
        Err(miss) => return miss_of(&miss),
    };
    // Re-signed before its signature is believed.
    let restored = cache.restore_build(&record, &args.dest);
    finish_uploads(&cache);
    let restored = match store::Unrestorable::of(&key, restored)? {
        Ok(restored) => restored,
        Err(miss) => return miss_of(&miss),
    };
    let r = store::Restored {
        build_key: key,
        signature: record.signature,
        restored,
    };
    Out(args.json).line("kcache/get/v1", &r, || text::restored_text(&r))?;
    Ok(ExitCode::SUCCESS)
}

/// A cache miss said on stderr: the negative answer, not an error.
fn miss_of(miss: &impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("kcache: {miss}");
    Ok(ExitCode::from(EXIT_NEGATIVE))
}

/// `get --blob`: one blob (its delta chain fetched as needed) to a file.
fn get_blob(cache: &Cache, blob: &str, dest: &Path) -> anyhow::Result<ExitCode> {
    let key = Key::from_hex(blob).with_context(|| format!("--blob {blob}: give 64 hex digits"))?;
    let size = cache.restore_blob(&key, dest);
    finish_uploads(cache);
    print!("{}", text::blob_text(dest, size?));
    Ok(ExitCode::SUCCESS)
}

fn forget_cmd(settings: &kcache::config::Settings, args: ForgetArgs) -> anyhow::Result<ExitCode> {
    let cache = open_existing_cache(settings)?;
    let build_key = build_key_of(&cache, args.build_key.as_deref(), &args.inputs, settings)?;
    let forgotten = cache.forget_build(&build_key)?;
    let doc = store::Forgotten { build_key, forgotten };
    Out(args.json).line("kcache/forget/v1", &doc, || text::forgotten_text(&build_key, forgotten))?;
    Ok(answer(forgotten > 0))
}

fn predict_cmd(settings: &kcache::config::Settings, args: PredictArgs) -> anyhow::Result<ExitCode> {
    let cache = open_existing_cache(settings)?;
    let repo = Repo::open(&args.repo)?;
    let references = kcache::exec::predict::references_in_cache(&cache)?;
    for rev in &args.commits {
        let commit = repo.commit_id(rev)?;
        let judged = kcache::exec::predict::judge_all(&repo, &references, &commit)?;
        let prediction = kcache::exec::predict::CommitPrediction::new(&commit, &judged);
        Out(args.json).line("kcache/predict/v1", &prediction, || {
            text::prediction_text(&commit, &judged)
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

fn lookup_cmd(settings: &kcache::config::Settings, args: LookupArgs) -> anyhow::Result<ExitCode> {
    let cache = open_existing_cache(settings)?;
    let target = (!args.crash_titles.is_empty()).then(|| kcache::crash::Target::new(&args.crash_titles));
    let found = match (&args.build_key, &args.signature) {
        (_, Some(sig)) => kcache::exec::lookup::by_signature(&cache, &cache.resolve_signature(sig)?, target.as_ref())?,
        (k, None) => {
            let key = build_key_of(&cache, k.as_deref(), &args.inputs, settings)?;
            kcache::exec::lookup::by_build_key(&cache, &key, target.as_ref())?
        }
    };
    Out(args.json).pretty("kcache/lookup/v1", &found, || text::lookup_text(&found))?;
    if !found.found() && args.build_key.is_none() && args.signature.is_none() {
        kcache::notice(&missing_inputs_hint(&args.inputs));
    }
    Ok(answer(found.found()))
}

fn record_run_cmd(settings: &kcache::config::Settings, args: RecordRunArgs) -> anyhow::Result<ExitCode> {
    let cache = open_cache(settings)?;
    let test_key = test_key_of(&args)?;
    let outcome: store::Outcome = args.outcome.parse().map_err(anyhow::Error::msg)?;
    let (title, seconds, commit) = (args.title, args.seconds, args.commit.as_ref());
    let mut run = store::RunRecord::new(&args.signature, test_key, outcome, title, seconds, commit);
    run.log_blob = args.log.map(|p| cache.put_blob(&p)).transpose()?;
    let recorded = cache.record_run(&run);
    finish_uploads(&cache);
    recorded?;
    Out(args.json).record(&run, || format!("{}\n", run.run_id))?;
    Ok(ExitCode::SUCCESS)
}

fn stats_cmd(settings: &kcache::config::Settings, args: StatsArgs) -> anyhow::Result<ExitCode> {
    let stats = open_existing_cache(settings)?.stats()?;
    Out(args.json).pretty("kcache/stats/v1", &stats, || text::stats_text(&stats))?;
    Ok(ExitCode::SUCCESS)
}

fn gc_cmd(settings: &kcache::config::Settings, args: GcArgs) -> anyhow::Result<ExitCode> {
    let max = parse_size(&args.max_size)?;
    let r = open_existing_cache(settings)?.gc(max)?;
    Out(args.json).line("kcache/gc/v1", &r, || text::gc_text(&r, max))?;
    Ok(ExitCode::SUCCESS)
}

fn verify_cmd(settings: &kcache::config::Settings, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let r = open_existing_cache(settings)?.verify(args.repair)?;
    Out(args.json).pretty("kcache/verify/v1", &r, || text::verify_text(&r))?;
    Ok(answer(r.healthy()))
}

fn repro_cmd(settings: &kcache::config::Settings, args: ReproArgs) -> anyhow::Result<ExitCode> {
    use kcache::vm::{self, Harness};
    let harness = Harness::prepare(
        &settings.cache_dir.join("vm"),
        &args.repro,
        args.vm.settings(args.timeout),
    )?;
    let (kernel, repro, cmdline) = (&args.kernel, &args.repro, harness.cmdline());
    kcache::notice(&text::repro_plan(args.runs, repro, kernel, args.jobs, &cmdline));
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
    let doc = text::ReproDocument {
        kernel,
        repro,
        cmdline,
        runs: &runs,
        summary: &summary,
    };
    Out(args.json).pretty("kcache/repro/v1", &doc, || text::repro_text(&runs, &summary))?;
    Ok(ExitCode::from(if summary.crashed > 0 {
        EXIT_NEGATIVE
    } else if summary.ok == 0 {
        EXIT_NO_CULPRIT
    } else {
        0
    }))
}
