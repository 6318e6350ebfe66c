//! From parsed arguments to the library's inputs: recipes, build inputs,
//! keys, sizes and VM settings, and the cache the settings name.

use anyhow::{bail, Context};
use kcache::bisect;
use kcache::buildenv::Table;
use kcache::config::Settings;
use kcache::exec::environment::{Environments, Shown};
use kcache::exec::{CommitEvaluator, Recipe as BisectRecipe};
use kcache::git::Repo;
use kcache::kernel::KbuildRecipe;
use kcache::key::{BuildInputs, BuildKey, CommitId, Key, TestInputs, TestKey};
use kcache::store::{self, Cache};
use std::sync::Arc;

use crate::args::{AccelArg, BisectArgs, InputArgs, Policy, RecipeArgs, RecordRunArgs, SearchArgs, TargetArgs, VmArgs};

impl TargetArgs {
    pub fn toolchain_source(&self) -> kcache::kernel::ToolchainSource {
        kcache::kernel::ToolchainSource::from_options(self.toolchain.as_deref(), self.toolchain_cmd.as_deref())
    }

    /// `--toolchain`, else what `--toolchain-cmd` prints, else `$CC`/`$LD` versions.
    pub fn toolchain(&self) -> anyhow::Result<String> {
        self.toolchain_source().resolve().context("--toolchain-cmd")
    }

    pub fn arch(&self) -> String {
        self.arch.clone().unwrap_or_else(kcache::kernel::host_arch)
    }

    /// The build environment table: `--build-env`, else the config file's
    /// unless `--toolchain`/`--toolchain-cmd` pins one compiler; `none`: no table.
    pub fn build_env(&self, settings: &Settings) -> anyhow::Result<Option<Arc<Table>>> {
        let pinned = self.toolchain.is_some() || self.toolchain_cmd.is_some();
        let named = match (&self.build_env, &settings.build_env) {
            (Some(p), _) => Some(p),
            (None, Some(p)) if !pinned => Some(p),
            _ => None,
        };
        match named {
            Some(p) if p.as_os_str() == "none" => Ok(None),
            Some(p) => Ok(Some(Arc::new(Table::load(p)?))),
            None => Ok(None),
        }
    }
}

impl From<Policy> for bisect::Policy {
    fn from(p: Policy) -> bisect::Policy {
        match p {
            Policy::Bayes => bisect::Policy::Bayes,
            Policy::Classic => bisect::Policy::Classic,
        }
    }
}

impl SearchArgs {
    pub fn noisy(&self) -> anyhow::Result<bisect::noisy::NoisyOptions> {
        if !(self.confidence > 0.5 && self.confidence < 1.0) {
            bail!("--confidence {}: give a probability between 0.5 and 1", self.confidence);
        }
        Ok(bisect::noisy::NoisyOptions {
            crash_titles: self.crash_titles.clone(),
            confidence: self.confidence,
            max_runs: self.max_runs,
            max_builds: self.max_builds,
            build_cost: self.build_cost,
            run_cost: self.run_cost,
        })
    }
}

impl VmArgs {
    pub fn settings(&self, budget: u64) -> kcache::vm::Settings {
        kcache::vm::Settings {
            budget: std::time::Duration::from_secs(budget),
            extra_cmdline: self
                .cmdline
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(String::from)
                .collect(),
            memory_mb: self.memory,
            cpus: self.cpus,
            accel: match self.accel {
                AccelArg::Auto => kcache::vm::AccelChoice::Auto,
                AccelArg::Kvm => kcache::vm::AccelChoice::Kvm,
                AccelArg::Tcg => kcache::vm::AccelChoice::Tcg,
            },
            boot_timeout: std::time::Duration::from_secs(self.boot_timeout),
        }
    }
}

/// What `kcache bisect` was asked, as the library's options.
pub fn bisect_options(a: &BisectArgs) -> bisect::Options {
    bisect::Options {
        goods: a.good.clone(),
        bad: a.bad.clone(),
        direction: match a.fix {
            true => kcache::search::graph::Direction::Fix,
            false => kcache::search::graph::Direction::Cause,
        },
        good_tags: a.good_tags.clone(),
        first_parent: a.first_parent,
        log: a.log.clone(),
        predict: !a.no_predict,
        confirm: !a.no_confirm && (matches!(a.search.policy, Policy::Bayes) || a.confirm_runs.is_some()),
        confirm_runs: a.confirm_runs,
    }
}

pub fn bisect_recipe(r: RecipeArgs, cache: &Cache, settings: &Settings) -> anyhow::Result<BisectRecipe> {
    let test = match (&r.test, &r.repro) {
        (Some(test), _) => test.clone(),
        (None, Some(repro)) => format!("kcache repro --repro {} --timeout {}", repro.display(), r.repro_timeout),
        (None, None) => bail!("--test or --repro is required: how to test a kernel"),
    };
    build_recipe(r, cache, test, settings)
}

/// The recipe with `test` as its test command (empty for `prebuild`).
pub fn build_recipe(r: RecipeArgs, cache: &Cache, test: String, settings: &Settings) -> anyhow::Result<BisectRecipe> {
    let (build, toolchain, artifacts, identity_command) = match r.build.clone() {
        Some(build) => (build, r.target.toolchain()?, r.artifacts.clone(), None),
        None => {
            let k = KbuildRecipe::install(cache.dir(), &r.target.toolchain_source(), &r.artifacts)
                .with_context(|| format!("installing the kbuild recipe in {}", cache.dir().display()))?;
            (k.build_command, k.toolchain, k.artifacts, Some(k.identity_command))
        }
    };
    let build_env = r.target.build_env(settings)?;
    let repro = repro_test(&r, cache, &artifacts)?;
    let vm_memory = r.repro.is_some().then_some(r.vm.memory);
    let jobs = r
        .jobs
        .unwrap_or_else(|| kcache::exec::parallel::default_jobs(vm_memory));
    Ok(BisectRecipe {
        repro,
        build,
        test,
        config: r.config,
        artifacts,
        runs: r.runs,
        test_key_files: r.test_key_files,
        key_files: r.key_files,
        toolchain,
        arch: r.target.arch(),
        build_timeout: seconds(r.build_timeout, "--build-timeout")?,
        test_timeout: seconds(r.test_timeout, "--test-timeout")?,
        retry_failed: r.retry_failed,
        jobs,
        build_jobs: r.build_jobs,
        build_env,
        identity_command,
    })
}

pub fn seconds(s: Option<f64>, what: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(std::time::Duration::from_secs_f64(s))),
        Some(s) => bail!("{what} {s}: give a positive number of seconds"),
    }
}

/// The commit id and build inputs named on the command line.
pub fn resolve_inputs(a: &InputArgs, settings: &Settings) -> anyhow::Result<(CommitId, BuildInputs)> {
    let (commit, inputs, _, _) = resolve_recipe(a, settings)?;
    Ok((commit, inputs))
}

/// [`resolve_inputs`], the recipe they share with every commit and the
/// commit's build environment (with a table).
pub fn resolve_recipe(
    a: &InputArgs,
    settings: &Settings,
) -> anyhow::Result<(CommitId, BuildInputs, kcache::key::RecipeInputs, Option<Shown>)> {
    let repo = Repo::open(&a.repo)?;
    let commit = repo.commit_id(&a.commit)?;
    let recipe = kcache::key::RecipeInputs::resolve(
        &a.build_cmd,
        a.config.as_deref(),
        &a.key_files,
        a.target.toolchain()?,
        a.target.arch(),
    )?;
    let inputs = recipe.for_tree(&repo.tree_id(&commit)?);
    match a.target.build_env(settings)? {
        Some(table) => {
            let env = Environments::new(table, None, a.config.as_deref())?.of(&repo, &commit)?;
            Ok((
                commit,
                Environments::inputs(inputs, &env),
                recipe,
                Some(env.shown.clone()),
            ))
        }
        None => Ok((commit, inputs, recipe, None)),
    }
}

/// An artifact's name: its path inside the repository, else its file name.
pub fn artifact_name(repo: &std::path::Path, file: &std::path::Path) -> String {
    let (Ok(repo), Ok(file)) = (repo.canonicalize(), file.canonicalize()) else {
        return file
            .file_name()
            .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
    };
    match file.strip_prefix(&repo) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    }
}

/// `--build-key` (all of it, or a unique prefix), else the key of the
/// commit and build inputs given.
pub fn build_key_of(
    cache: &Cache,
    build_key: Option<&str>,
    inputs: &InputArgs,
    settings: &Settings,
) -> anyhow::Result<BuildKey> {
    match build_key {
        Some(k) => Ok(cache.resolve_build_key(k)?),
        None => Ok(resolve_inputs(inputs, settings)?.1.key()),
    }
}

/// Why a lookup by commit may have missed: the build key covers the
/// build command, config, toolchain, architecture and key files, and a
/// lookup that leaves one out asks about a build nobody made.
pub fn missing_inputs_hint(inputs: &InputArgs) -> String {
    let mut missing = Vec::new();
    if inputs.build_cmd.is_empty() {
        missing.push("--build-cmd (the bisection's --build)");
    }
    if inputs.config.is_none() {
        missing.push("--config");
    }
    if inputs.key_files.is_empty() {
        missing.push("--key-file (if the bisection gave any)");
    }
    if inputs.target.toolchain.is_none() && inputs.target.toolchain_cmd.is_none() {
        missing.push("--toolchain or --toolchain-cmd (if the bisection's differed from this machine's $CC/$LD)");
    }
    let given = if missing.is_empty() {
        "every build input was given; check that each is the one the bisection used".to_string()
    } else {
        format!("not given: {}", missing.join(", "))
    };
    format!(
        "a build key covers the commit's tree, the build command, the config, the toolchain, the architecture \
         and the key files; {given} (or look up by --build-key / --signature, from `kcache bisections` or a bisection's --json)"
    )
}

pub fn parse_key(s: &str) -> anyhow::Result<Key> {
    Key::from_hex(s).with_context(|| format!("{s:?} is not a 64-hex key"))
}

/// `record-run`'s test key: given, or derived from the test command and files.
pub fn test_key_of(a: &RecordRunArgs) -> anyhow::Result<TestKey> {
    Ok(match (&a.test_key, &a.test_cmd) {
        (Some(k), _) => TestKey(parse_key(k)?),
        (None, Some(cmd)) => TestInputs::from_files(cmd.clone(), &a.test_key_files, Vec::new())?.key(),
        (None, None) => bail!("give --test-key or --test-cmd"),
    })
}

/// `50G`, `500M`, `64K` (powers of 1024) or a plain byte count.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .with_context(|| format!("bad size {s:?}: use e.g. 50G, 500M or a byte count"))?;
    let mult = match unit.to_ascii_uppercase().trim_end_matches('B').trim_end_matches('I') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        "T" => 1 << 40,
        _ => bail!("bad size {s:?}: use e.g. 50G, 500M or a byte count"),
    };
    n.checked_mul(mult).with_context(|| format!("size {s:?} is too large"))
}

/// `--repro`: the harness as the bisection's test, on the recipe's boot
/// image, after checking that the config can boot it.
pub fn repro_test(
    r: &RecipeArgs,
    cache: &Cache,
    artifacts: &[String],
) -> anyhow::Result<Option<std::sync::Arc<kcache::vm::ReproTest>>> {
    let Some(repro) = &r.repro else {
        return Ok(None);
    };
    if let Some(config) = &r.config {
        kcache::kernel::harness::check_config_file(config)?;
    }
    let harness = kcache::vm::Harness::prepare(&cache.dir().join("vm"), repro, r.vm.settings(r.repro_timeout))?;
    Ok(Some(std::sync::Arc::new(kcache::vm::ReproTest::new(
        harness, artifacts,
    )?)))
}

pub fn open_cache(s: &kcache::config::Settings) -> anyhow::Result<Cache> {
    let cache = Cache::open_with_remote(&s.cache_dir, open_remote(s)?)
        .context("cannot open the cache")?
        .with_trust(s.remote_options.policy.clone());
    cache.clean_stale();
    Ok(cache)
}

/// For commands that only read. Without a remote the local cache must
/// exist (a typo is an error, not a new empty cache); with one, an empty
/// local tier is the normal start of a team member.
pub fn open_existing_cache(s: &kcache::config::Settings) -> anyhow::Result<Cache> {
    if s.remote.is_some() {
        return open_cache(s);
    }
    Ok(Cache::open_existing(&s.cache_dir, None)?.with_trust(s.remote_options.policy.clone()))
}

pub fn open_remote(s: &kcache::config::Settings) -> anyhow::Result<Option<store::Remote>> {
    Ok(match &s.remote {
        Some(url) => Some(store::Remote::open(url, &s.remote_options)?),
        None => None,
    })
}

/// The cache a bisection uses: the configured one, or with `--no-cache` a
/// throwaway one (kept alive by the returned directory).
pub fn bisect_cache(
    settings: &kcache::config::Settings,
    no_cache: bool,
) -> anyhow::Result<(Option<tempfile::TempDir>, Cache)> {
    if no_cache {
        let dir = tempfile::tempdir()?;
        let cache = Cache::open(dir.path())?;
        return Ok((Some(dir), cache));
    }
    Ok((None, open_cache(settings)?))
}

/// The evaluator a bisection or prebuild of `repo` builds and tests with
/// (its build tree and state under the cache).
pub fn evaluator_in(
    repo: &Repo,
    cache: &Cache,
    recipe: BisectRecipe,
    engine: Option<std::sync::Arc<kcache::engine::Engine>>,
) -> anyhow::Result<CommitEvaluator> {
    let (tree, state) = (
        bisect::worktree_dir(cache, repo.dir()),
        bisect::state_dir(cache, repo.dir()),
    );
    if engine.is_some() && recipe.build_env.is_some() {
        bail!(
            "--build-env does not run through an executor yet: a step carries no build environment \
             (run it with --executor local, or pin one compiler with --toolchain)"
        );
    }
    let mut evaluator = CommitEvaluator::new(recipe, tree, state, false)?;
    evaluator.set_engine(engine);
    Ok(evaluator)
}

/// The engine builds and runs go to (`--executor`, else the settings'):
/// none for `local`. An engine's workers write to the team store, so one
/// must be configured.
pub fn engine_for(
    settings: &kcache::config::Settings,
    executor: Option<kcache::engine::ExecutorKind>,
    repo: &Repo,
    cache: &Cache,
) -> anyhow::Result<Option<std::sync::Arc<kcache::engine::Engine>>> {
    use kcache::engine::{kubernetes::KubeExecutor, slurm::Slurm, Engine, Executor, ExecutorKind};
    let executor: Box<dyn Executor> = match executor.unwrap_or(settings.executor) {
        ExecutorKind::Local => return Ok(None),
        ExecutorKind::Slurm => {
            let remote = team_store(settings, "slurm")?;
            let logs = cache.dir().join("engine").join("slurm-logs");
            Box::new(Slurm::new(settings.slurm.clone(), remote, logs)?)
        }
        ExecutorKind::Kubernetes => {
            kcache::engine::kubernetes::ensure_built()?;
            let remote = team_store(settings, "kubernetes")?;
            Box::new(KubeExecutor::connect(settings.kubernetes.clone(), remote)?)
        }
    };
    Ok(Some(std::sync::Arc::new(Engine::new(
        executor,
        settings.engine.clone(),
        repo.dir(),
    ))))
}

/// The team store an engine's jobs write their results to: one must be configured.
fn team_store(settings: &kcache::config::Settings, engine: &str) -> anyhow::Result<String> {
    match &settings.remote {
        Some(remote) => Ok(remote.clone()),
        None => bail!(
            "--executor {engine}: the jobs write their results to the team store; give --remote, \
             KCACHE_REMOTE or `remote` in {}",
            settings.config_file.display()
        ),
    }
}
