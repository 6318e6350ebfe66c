//! The command line as clap parses it: the raw arguments, their help texts
//! and nothing else (what they mean for the library is in `resolve`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use kcache::key::CommitId;
use kcache::signature::KernelSignature;
use kcache::store::RemoteMode;

#[derive(Parser)]
#[command(
    name = "kcache",
    version,
    about = "Build cache and bisect accelerator for Linux kernels"
)]
pub struct Cli {
    /// Cache directory [default: $KCACHE_DIR, else the config file's, else $XDG_CACHE_HOME/kcache, else ~/.cache/kcache]
    #[arg(long, global = true, value_name = "DIR", help_heading = "Global options")]
    pub cache_dir: Option<PathBuf>,
    /// Team cache: s3://bucket/prefix, gs://bucket/prefix or file:///dir [default: $KCACHE_REMOTE, else the config file's]
    #[arg(long, global = true, value_name = "URL", help_heading = "Global options")]
    pub remote: Option<String>,
    /// read-write, or read-only for clients that must only reuse [default: $KCACHE_REMOTE_MODE, else the config file's, else read-write]
    #[arg(long, global = true, value_name = "MODE", help_heading = "Global options")]
    pub remote_mode: Option<RemoteMode>,
    /// Trust this writer's team records (repeatable; adds to the config file's trusted_keys)
    #[arg(
        long = "trust",
        global = true,
        value_name = "PUBLIC_KEY",
        help_heading = "Global options"
    )]
    pub trust: Vec<String>,
    /// Say nothing on stderr but warnings and errors (no progress, no notices)
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    pub quiet: bool,
    /// Show progress and notices on stderr even under --json (which holds them back)
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The toolchain and target: part of the build key.
#[derive(Args, Clone)]
pub struct TargetArgs {
    /// Toolchain identity [default: first lines of `$CC --version` and `$LD --version`].
    #[arg(long, conflicts_with = "toolchain_cmd")]
    pub toolchain: Option<String>,
    /// A command that prints the toolchain identity (its lines are joined by ", ").
    #[arg(long)]
    pub toolchain_cmd: Option<String>,
    /// Target architecture [default: this machine's].
    #[arg(long)]
    pub arch: Option<String>,
    /// Build each commit in the environment a table gives it by the release tags it contains: compiler
    /// ($CC of the build), config fixups, build fixes (docs/build-environments.md). A TOML file,
    /// `default` (kcache's table: Debian 12's gcc-11 before v5.16, gcc-12 from it) or `none`
    /// [default: the config file's `build_env`, unless --toolchain or --toolchain-cmd pins one compiler].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["toolchain", "toolchain_cmd"])]
    pub build_env: Option<PathBuf>,
}

/// What decides a build (the build key), for the cache commands.
#[derive(Args, Clone)]
pub struct InputArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The commit (any revision git understands).
    #[arg(long, default_value = "HEAD")]
    pub commit: String,
    /// The kernel config the build used.
    #[arg(long, value_parser = kernel_config)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The build command (part of the recipe; use the same as `bisect --build`).
    #[arg(long, default_value = "")]
    pub build_cmd: String,
    /// Files that are part of the recipe (build scripts).
    #[arg(long = "key-file")]
    pub key_files: Vec<PathBuf>,
}

/// The user's build and test, for `bisect` and `exec`.
#[derive(Args, Clone)]
pub struct RecipeArgs {
    /// Where builds and test runs happen: local (this machine's slots), slurm (sbatch jobs, test
    /// runs as job arrays) or kubernetes (Jobs, test runs as Indexed Jobs; a kcache built with
    /// --features kubernetes); an engine needs --remote, the team store the jobs write to
    /// [default: $KCACHE_EXECUTOR, else the config file's `executor`, else local].
    #[arg(long, value_name = "ENGINE")]
    pub executor: Option<kcache::engine::ExecutorKind>,
    /// Build command, run by `sh -c` in the tree with KCACHE_CONFIG, KCACHE_COMMIT and KCACHE_CACHE_DIR.
    #[arg(long, required_unless_present = "kbuild", conflicts_with = "kbuild")]
    pub build: Option<String>,
    /// Build with kcache's reproducible kbuild recipe (scripts/kernel/kbuild.sh): --config, olddefconfig,
    /// vmlinux and boot image with pinned KBUILD_* settings; artifacts in kcache-out/.
    #[arg(long)]
    pub kbuild: bool,
    /// Test command, run --runs times, each run in a directory of its own linking the
    /// restored artifacts (KCACHE_ARTIFACTS), with KCACHE_SIGNATURE, KCACHE_COMMIT, KCACHE_RUN.
    /// Exit 0 ok, 125 cannot test, 1-124 crash (a stdout line `crash: TITLE` names it); 126/127 (the shell could not run it) stop with an error.
    /// Required by `bisect` and `exec` (unless --repro); `prebuild` never tests.
    #[arg(long, conflicts_with = "repro")]
    pub test: Option<String>,
    /// The test is kcache's reproducer harness: this C reproducer run in the built boot image
    /// under QEMU (as `kcache repro`), each run titled; the kernel config must have what it needs.
    #[arg(long, value_name = "REPRO.C")]
    pub repro: Option<PathBuf>,
    /// With --repro: seconds the reproducer runs in each VM; surviving them is ok.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "repro")]
    pub repro_timeout: u64,
    #[command(flatten)]
    pub vm: VmArgs,
    /// Kernel config, handed to the build as KCACHE_CONFIG (part of the build key).
    #[arg(long, value_parser = kernel_config)]
    pub config: Option<PathBuf>,
    /// Artifacts to keep, relative to the tree; the first is signed [default: vmlinux].
    #[arg(long = "artifact", value_parser = artifact_in_tree)]
    pub artifacts: Vec<String>,
    /// Test runs per kernel (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// Kill a build (with everything it started) after this many seconds; a
    /// timed-out build is not recorded as the commit's failure.
    #[arg(long, value_name = "SECONDS")]
    pub build_timeout: Option<f64>,
    /// Kill a test run after this many seconds; it counts as no information.
    #[arg(long, value_name = "SECONDS")]
    pub test_timeout: Option<f64>,
    /// Build commits the cache records as failing to build, instead of skipping them.
    #[arg(long)]
    pub retry_failed: bool,
    /// Test runs at once (processes; with --repro, VMs). A batch stops starting runs at its first
    /// match; runs in flight finish and are recorded [default: the cores; with --repro, also no
    /// more VMs than the memory holds at --memory each].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// Builds at once: the one the search waits for, plus N-1 in the background building the
    /// commits the search will likely want next, each in its own build tree (1: no speculation).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub build_jobs: u32,
    /// Files that decide the test outcome (reproducer, image): part of the test key.
    #[arg(long = "test-key-file")]
    pub test_key_files: Vec<PathBuf>,
    /// Files that are part of the build recipe: part of the build key.
    #[arg(long = "key-file")]
    pub key_files: Vec<PathBuf>,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// How the bisection decides.
#[derive(Args, Clone)]
pub struct TestPatchArgs {
    /// The git repository (kcache builds in a private clone of it, under the cache).
    #[arg(long)]
    pub repo: PathBuf,
    /// The patch: a git diff or a mail (mbox) with one.
    #[arg(long)]
    pub patch: PathBuf,
    /// The commit to apply it on, or `auto`: the patch's `base-commit:` trailer, else the newest
    /// commit (from --tip) whose files have every pre-image blob the diff's `index` lines name.
    #[arg(long, default_value = "auto")]
    pub base: String,
    /// Where `--base auto` searches from (newest first).
    #[arg(long, default_value = "HEAD")]
    pub tip: String,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// The crash the patch should fix (repeatable; default: any crash).
    #[arg(long = "crash-title", value_name = "TITLE")]
    pub crash_titles: Vec<String>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Clone)]
pub struct SearchArgs {
    /// bayes: a posterior over the first bad kernel, robust to flaky reproducers and
    /// unrelated crashes; classic: any crash is bad, half the runs ok is good (git bisect's rule).
    #[arg(long, value_enum, default_value_t = Policy::Bayes)]
    pub policy: Policy,
    /// The crash being bisected (repeatable); other crashes do not make a kernel bad.
    /// Default: the titles that dominate the bad commit's crashes (it is built and tested for it).
    #[arg(long = "crash-title", value_name = "TITLE", value_parser = crash_title)]
    pub crash_titles: Vec<String>,
    /// Name a culprit only when its probability reaches this.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Stop after this many test runs and report the credible set (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_runs: Option<u32>,
    /// Stop after this many builds and report the credible set (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_builds: Option<u32>,
    /// Seconds a build is assumed to take until one is measured.
    #[arg(long, default_value_t = 600.0)]
    pub build_cost: f64,
    /// Seconds a test run is assumed to take until one is measured.
    #[arg(long, default_value_t = 60.0)]
    pub run_cost: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Policy {
    Bayes,
    Classic,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print the syzkaller kernel signature of each ELF file, like sha256sum.
    Sign(SignArgs),
    /// The crash title of each console log, as syzkaller/syzbot would write it (or "no crash").
    Title(TitleArgs),
    /// Which sections and symbols differ between two builds.
    /// Exit 0: same signature, 1: different, 2: error.
    Diff(DiffArgs),
    /// syzbot bisection logs.
    #[command(subcommand)]
    Log(LogCommand),
    /// Bisect a range with the cache: skips known builds and tests, never blames a no-op commit.
    Bisect(BisectArgs),
    /// Apply a patch (a git diff or an mbox) on its base, build it through the cache, test it
    /// beside the base: is the crash gone? Exit 0: fixed, 1: still crashes, 3: cannot tell
    /// (the base does not crash, a kernel did not build), 2: error (no base, does not apply).
    TestPatch(TestPatchArgs),
    /// Run a C reproducer (syzbot's repro.c) in a kernel booted in QEMU, N times, and title each
    /// crash as syzbot would. Exit 0: no crash, 1: a run crashed, 3: no run gave information, 2: error.
    Repro(ReproArgs),
    /// The recorded bisections, newest first.
    Bisections(BisectionsArgs),
    /// Render a recorded bisection as a self-contained HTML report.
    Report(ReportArgs),
    /// Build every commit of a range ahead of time, oldest first in one worktree (incremental),
    /// so later bisections of it only test. Resumable; uploads as it goes.
    Prebuild(PrebuildArgs),
    /// Forget the build records of a build key (or of a commit and its build
    /// inputs), so the next bisection builds it again. Test runs stay.
    Forget(ForgetArgs),
    /// Evaluate HEAD of the current tree with the cache; exit 0 good, 1 bad,
    /// 125 skip: for `git bisect run kcache exec ...`.
    Exec(ExecArgs),
    /// Print the build key of a commit and inputs.
    Key(KeyArgs),
    /// Store a build: signs the vmlinux, stores it and the other artifacts.
    Put(PutArgs),
    /// Restore a build's artifacts into a directory; exit 1 on a miss.
    Get(GetArgs),
    /// What the cache knows about a build key, a commit and inputs, or a signature.
    Lookup(LookupArgs),
    /// Which of the cache's kbuild builds each commit provably shares its kernel with
    /// (no-op prediction). Only builds of the same recipe and config predict each other.
    Predict(PredictArgs),
    /// Record one test run on a signature (append-only evidence).
    RecordRun(RecordRunArgs),
    /// Records, blobs, bytes, hits, misses and time saved.
    Stats(StatsArgs),
    /// Evict least-recently-used artifacts and reproducer work files (vm/) until they fit in SIZE (50G, 500M, 1024).
    Gc(GcArgs),
    /// The effective settings (cache directory, remote, endpoint), secrets masked.
    Config(ConfigArgs),
    /// Upload everything the remote does not have yet (queued while it was down).
    Sync(SyncArgs),
    /// The job body of an engine (Slurm, Kubernetes): perform one step of a bisection against the team store.
    #[command(subcommand)]
    Step(StepCommand),
    /// Check every record and blob; exit non-zero on any problem.
    Verify(VerifyArgs),
    /// Make this member's signing key (ed25519, mode 0600, beside the config file); prints the
    /// public key to put in the others' trusted_keys. Records this member uploads are then signed.
    KeyGen(KeyGenArgs),
    /// Print a shell completion script (setup installs bash, zsh and fish ones).
    Completions(CompletionsArgs),
    /// Write man pages (kcache.1 and one per subcommand) into a directory.
    Man(ManArgs),
}

#[derive(Args)]
pub struct KeyGenArgs {
    /// Where to write the key [default: signing.key beside the config file].
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct ManArgs {
    /// Where to write the pages (e.g. ~/.local/share/man/man1).
    pub dir: PathBuf,
}

#[derive(Args)]
pub struct PrebuildArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The range: A..B (A and the commits after it up to B), or B (its whole history).
    pub range: String,
    /// Follow only the first parent of merges (the mainline, as `bisect --first-parent`).
    #[arg(long)]
    pub first_parent: bool,
    /// Build every N-th commit (and both ends); bisections build the rest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub every: u32,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Print the prebuild record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SignArgs {
    /// One JSON object per file with every hashed and skipped section.
    #[arg(long)]
    pub json: bool,
    /// ELF files (vmlinux) to sign.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args)]
pub struct TitleArgs {
    /// One JSON object per file: schema, file, title (null: no crash), class, corrupted,
    /// start_line.
    #[arg(long)]
    pub json: bool,
    /// Console output files (kernel log, serial console).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Args)]
pub struct DiffArgs {
    /// The first build's vmlinux (the "before", e.g. the parent's).
    pub a: PathBuf,
    /// The second build's vmlinux (the "after", e.g. the culprit's).
    pub b: PathBuf,
    /// List every changed symbol, not just the first 20 per section.
    #[arg(long)]
    pub all: bool,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct BisectArgs {
    /// The git repository (kcache builds in a private clone of it, under the cache).
    #[arg(long)]
    pub repo: PathBuf,
    /// A commit known to be good (repeatable; any revision git understands). Without it the
    /// default policy walks back over release tags older than --bad (--good-tags) until one
    /// does not reproduce. With --fix: the newer commit where the crash is gone.
    #[arg(long)]
    pub good: Vec<String>,
    /// A commit known to be bad (any revision git understands). With --fix: the older commit
    /// that crashes.
    #[arg(long)]
    pub bad: String,
    /// Look for the first commit that fixed the crash: --bad is the older, crashing commit,
    /// --good a descendant where the crash is gone.
    #[arg(long)]
    pub fix: bool,
    /// Release tags to walk back over when no --good is given (git's wildcards; -rc tags are
    /// skipped, older releases thinned as syzbot does).
    #[arg(long, value_name = "GLOB", default_value = "v[0-9]*")]
    pub good_tags: String,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Follow only the first parent of merges.
    #[arg(long)]
    pub first_parent: bool,
    /// Write a syzkaller-style log here.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Build every commit the bisection needs instead of predicting no-op
    /// commits from kbuild input sets.
    #[arg(long)]
    pub no_predict: bool,
    /// Do not check the culprit by reverting it on --bad (a fix: applying it on --bad) and
    /// testing there (on by default under the default policy).
    #[arg(long)]
    pub no_confirm: bool,
    /// Test runs on the reverted kernel (default: enough to see the culprit's measured crash
    /// rate with 99% probability, 3 to 100); also turns the check on under --policy classic.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub confirm_runs: Option<u32>,
    /// Bisect with a throwaway cache (nothing is reused or kept): when the
    /// cache cannot be used.
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    pub search: SearchArgs,
    /// Also write the bisection's report here: one self-contained HTML file
    /// (the range, the kernels and their pooled runs, the culprit and what
    /// changed in its kernel, time and cost).
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Print the summary as JSON on stdout (nothing but errors on stderr).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ReproArgs {
    /// The kernel's boot image (arch/x86/boot/bzImage, kcache-out/boot-image, /boot/vmlinuz-*; not vmlinux).
    #[arg(long)]
    pub kernel: PathBuf,
    /// The C reproducer (syzbot's repro.c), compiled static with gcc.
    #[arg(long, value_name = "REPRO.C")]
    pub repro: PathBuf,
    /// Runs (one VM each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: u32,
    /// VMs at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: u32,
    /// Seconds the reproducer runs in each VM; surviving them is ok.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub timeout: u64,
    #[command(flatten)]
    pub vm: VmArgs,
    /// Keep each run's console as run-N.log in this directory.
    #[arg(long, value_name = "DIR")]
    pub console_dir: Option<PathBuf>,
    /// One JSON object (`kcache/repro/v1`) on stdout: every run and the counts.
    #[arg(long)]
    pub json: bool,
}

/// How the reproducer's VMs are made (`repro`, and `bisect --repro`).
#[derive(Args, Clone)]
pub struct VmArgs {
    /// Appended to the default kernel command line (syzkaller's crash conventions: see the README).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub cmdline: Option<String>,
    /// VM memory in MB.
    #[arg(long, value_name = "MB", default_value_t = 1024)]
    pub memory: u32,
    /// VM CPUs.
    #[arg(long, default_value_t = 2)]
    pub cpus: u32,
    /// kvm, tcg, or auto: KVM when /dev/kvm works and a guest really starts there, else TCG.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    pub accel: AccelArg,
    /// A kernel that has not started the reproducer after this many seconds did not boot.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub boot_timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

#[derive(Args)]
pub struct ReportArgs {
    /// The bisection's id, or a unique prefix of it (`kcache bisections` lists them).
    pub id: String,
    /// Write the HTML here instead of to stdout.
    #[arg(long, short, value_name = "FILE.html")]
    pub output: Option<PathBuf>,
}

#[derive(Args)]
pub struct BisectionsArgs {
    /// One JSON object (`kcache/bisections/v1`) with every recorded bisection, newest first.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// The build key to forget (64 hex, or a unique prefix), instead of a commit and inputs.
    #[arg(long)]
    pub build_key: Option<String>,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub recipe: RecipeArgs,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// The vmlinux (signed) followed by other artifacts to keep.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Seconds the build took (for time-saved figures).
    #[arg(long, default_value_t = 0.0)]
    pub build_seconds: f64,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// Look up by build key instead of commit and inputs.
    #[arg(long)]
    pub build_key: Option<String>,
    /// Restore one blob (by its BLAKE3, delta chain included) to DEST as a file (benchmarks, debugging).
    #[arg(long, conflicts_with = "build_key")]
    pub blob: Option<String>,
    /// The directory to restore the artifacts into (with --blob: the file to write).
    #[arg(long)]
    pub dest: PathBuf,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct LookupArgs {
    #[command(flatten)]
    pub inputs: InputArgs,
    /// A build key (64 hex, or a unique prefix).
    #[arg(long)]
    pub build_key: Option<String>,
    /// A kernel signature (40 or 64 hex, or a unique prefix): its builds and pooled runs.
    #[arg(long)]
    pub signature: Option<String>,
    /// Classify the runs against this crash (repeatable), as `bisect` does.
    #[arg(long = "crash-title", value_name = "TITLE", value_parser = crash_title)]
    pub crash_titles: Vec<String>,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PredictArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// Commits (any revision git understands).
    #[arg(required = true)]
    pub commits: Vec<String>,
    /// One JSON object per commit with every reference's judgement.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RecordRunArgs {
    /// The kernel signature the run tested (40 or 64 hex).
    #[arg(long)]
    pub signature: KernelSignature,
    /// The test key (64 hex), or give --test-cmd and --test-key-file to derive it.
    #[arg(long)]
    pub test_key: Option<String>,
    /// The test command, as `bisect --test` gives it (part of the test key).
    #[arg(long)]
    pub test_cmd: Option<String>,
    /// A file the test depends on (the reproducer, a VM image; repeatable; part of the test key).
    #[arg(long = "test-key-file")]
    pub test_key_files: Vec<PathBuf>,
    /// ok, crash, infra, boot-failed or skip.
    #[arg(long)]
    pub outcome: String,
    /// The crash title (outcome crash), as syzkaller prints it.
    #[arg(long)]
    pub title: Option<String>,
    /// How long the run took.
    #[arg(long, default_value_t = 0.0)]
    pub seconds: f64,
    /// The commit whose kernel was tested, for provenance.
    #[arg(long)]
    pub commit: Option<CommitId>,
    /// A log of the run, stored as a blob.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct StatsArgs {
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct GcArgs {
    /// Evict least-recently-used artifacts and reproducer work files until they fit: 50G, 500M, 1024 (bytes).
    #[arg(long, value_name = "SIZE")]
    pub max_size: String,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SyncArgs {
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Quarantine corrupt blobs and mark lost artifacts as evicted.
    #[arg(long)]
    pub repair: bool,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum LogCommand {
    /// Per log: steps, repeated tests, flakiness, and whether to trust the culprit.
    Analyze {
        /// Print JSON on stdout (see the README for its shape); stderr has errors only.
        #[arg(long)]
        json: bool,
        /// syzbot bisection logs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Load logs into the cache: commit signatures (for equality reasoning) and test runs.
    Import {
        /// Print JSON on stdout (see the README for its shape); stderr has errors only.
        #[arg(long)]
        json: bool,
        /// syzbot bisection logs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// A corpus in file-name order, as if one shared cache had seen it all.
    Replay {
        /// Print JSON on stdout (see the README for its shape); stderr has errors only.
        #[arg(long)]
        json: bool,
        /// Score the judge's probabilities (Brier score, reliability table)
        /// and flags against labels: a TSV with a header line, then
        /// `log-name<TAB>correct|incorrect|no output`.
        #[arg(long, value_name = "TSV")]
        labels: Option<PathBuf>,
        /// Directories of syzbot bisection logs.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

impl Command {
    /// `--json`: stdout is one JSON document and stderr says nothing but
    /// errors (no progress, no notices).
    pub fn json(&self) -> bool {
        use Command as C;
        match self {
            C::Sign(SignArgs { json, .. })
            | C::Title(TitleArgs { json, .. })
            | C::Diff(DiffArgs { json, .. })
            | C::Bisect(BisectArgs { json, .. })
            | C::TestPatch(TestPatchArgs { json, .. })
            | C::Prebuild(PrebuildArgs { json, .. })
            | C::Forget(ForgetArgs { json, .. })
            | C::Exec(ExecArgs { json, .. })
            | C::Key(KeyArgs { json, .. })
            | C::Put(PutArgs { json, .. })
            | C::Get(GetArgs { json, .. })
            | C::Lookup(LookupArgs { json, .. })
            | C::Predict(PredictArgs { json, .. })
            | C::RecordRun(RecordRunArgs { json, .. })
            | C::Stats(StatsArgs { json })
            | C::Bisections(BisectionsArgs { json })
            | C::Gc(GcArgs { json, .. })
            | C::Config(ConfigArgs { json })
            | C::Sync(SyncArgs { json })
            | C::Verify(VerifyArgs { json, .. })
            | C::Repro(ReproArgs { json, .. })
            | C::Step(StepCommand::Run(StepRunArgs { json, .. })) => *json,
            C::Log(
                LogCommand::Analyze { json, .. } | LogCommand::Import { json, .. } | LogCommand::Replay { json, .. },
            ) => *json,
            C::Report(_) | C::Completions(_) | C::Man(_) | C::KeyGen(_) => false,
        }
    }
}

/// An artifact is a path inside the build tree: relative, and never
/// leaving it (`/etc/shadow` or `../..` would store a host file in the
/// cache and restore it into every test's tree).
fn artifact_in_tree(s: &str) -> Result<String, String> {
    let path = std::path::Path::new(s);
    let escapes = path
        .components()
        .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if s.trim().is_empty() || escapes || path.components().all(|c| c == std::path::Component::CurDir) {
        return Err(format!(
            "{s:?} is not a file inside the build tree: give a path relative to the tree, without `..` \
             (vmlinux, arch/x86/boot/bzImage)"
        ));
    }
    Ok(s.to_string())
}

/// `--config` names a kernel config file that is there (said before any
/// work, not as a bare OS error from deep inside).
fn kernel_config(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    match std::fs::metadata(&path) {
        Ok(m) if m.is_file() => Ok(path),
        Ok(_) => Err(format!("{s} is not a file: give the kernel .config the build uses")),
        Err(e) => Err(format!(
            "{s}: {}: give the kernel .config the build uses (a path relative to the current directory, or absolute)",
            match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            }
        )),
    }
}

/// A crash title names a crash: an empty one would match none (or all).
fn crash_title(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Err(
            "an empty crash title matches no crash: give the title syzkaller prints \
                   (`kcache title LOG` finds it)"
                .into(),
        ),
        t if kcache::title::is_suppressed(t) => Err(format!(
            "\"{t}\" is not a kernel crash (syzkaller suppresses it): \
             a bisection can never be about it; give the kernel crash's title"
        )),
        _ => Ok(s.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// A pod of an Indexed Job is not given `--task`: its task is the
    /// `JOB_COMPLETION_INDEX` Kubernetes sets; `--task` wins when given.
    #[test]
    fn step_run_takes_its_task_from_the_completion_index() {
        let task = |argv: &[&str]| match Cli::try_parse_from(argv).expect("parses").command {
            Command::Step(StepCommand::Run(a)) => a.task,
            _ => unreachable!("a step run"),
        };
        // The only test reading this variable.
        std::env::set_var("JOB_COMPLETION_INDEX", "7");
        let from_env = task(&["kcache", "step", "run", "/etc/kcache/step/spec.json"]);
        let given = task(&["kcache", "step", "run", "/etc/kcache/step/spec.json", "--task", "2"]);
        std::env::remove_var("JOB_COMPLETION_INDEX");
        let without = task(&["kcache", "step", "run", "/etc/kcache/step/spec.json"]);
        assert_eq!((from_env, given, without), (7, 2, 0));
    }

    /// Every subcommand and every argument says what it is for.
    #[test]
    fn every_argument_has_help() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            let path = format!("{path} {}", cmd.get_name());
            if cmd.get_about().is_none() && path.contains(' ') && cmd.get_name() != "help" {
                missing.push(format!("{path}: no about"));
            }
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &path, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "", &mut missing);
        assert!(missing.is_empty(), "without help text:\n{}", missing.join("\n"));
    }
}

#[derive(Subcommand)]
pub enum StepCommand {
    /// Perform one step (a build, or a test step's task) described by a step spec (JSON) against
    /// the team store (--remote, required). Exit 0 when a result was recorded (a build, the
    /// commit's build failure, runs crashed or not); 2 for the machine's failures (no store, no
    /// credentials, unreachable, uploads refused, a build failed for a reason not the commit's).
    Run(StepRunArgs),
}

#[derive(Args)]
pub struct StepRunArgs {
    /// The step spec (kcache/step/v1 JSON), as the driver wrote it into the job.
    pub spec: PathBuf,
    /// Which task of a test step this is (the engine's array index) [default:
    /// $JOB_COMPLETION_INDEX, which Kubernetes sets in an Indexed Job's pods, else 0].
    #[arg(long, env = "JOB_COMPLETION_INDEX", default_value_t = 0, hide_env = true)]
    pub task: u32,
    /// A clone of the repository whose objects the node's clone borrows
    /// [default: $KCACHE_REFERENCE_CLONE]; only the step's commit is fetched.
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
    /// Print what the step recorded as JSON.
    #[arg(long)]
    pub json: bool,
}
