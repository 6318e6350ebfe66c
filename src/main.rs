//! The `kcache` command line: argument parsing and printing only; the work
//! is done by the library.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use kcache::bisect::{self, BisectRecipe, CommitEvaluator, Verdict};
use kcache::git::Repo;
use kcache::kernel::KbuildRecipe;
use kcache::key::{BuildInputs, BuildKey, Key, TestInputs, TestKey};
use kcache::signature::KernelSignature;
use kcache::store::{self, Cache, RemoteMode};
use kcache::{signature, syzlog};

#[derive(Parser)]
#[command(
    name = "kcache",
    version,
    about = "Build cache and bisect accelerator for Linux kernels"
)]
struct Cli {
    /// Cache directory [default: $KCACHE_DIR, else the config file's, else $XDG_CACHE_HOME/kcache, else ~/.cache/kcache]
    #[arg(long, global = true, value_name = "DIR", help_heading = "Global options")]
    cache_dir: Option<PathBuf>,
    /// Team cache: s3://bucket/prefix, gs://bucket/prefix or file:///dir [default: $KCACHE_REMOTE, else the config file's]
    #[arg(long, global = true, value_name = "URL", help_heading = "Global options")]
    remote: Option<String>,
    /// read-write, or read-only for clients that must only reuse [default: $KCACHE_REMOTE_MODE, else the config file's, else read-write]
    #[arg(long, global = true, value_name = "MODE", help_heading = "Global options")]
    remote_mode: Option<RemoteMode>,
    /// Trust this writer's team records (repeatable; adds to the config file's trusted_keys)
    #[arg(
        long = "trust",
        global = true,
        value_name = "PUBLIC_KEY",
        help_heading = "Global options"
    )]
    trust: Vec<String>,
    /// Say nothing on stderr but warnings and errors (no progress, no notices)
    #[arg(
        short,
        long,
        global = true,
        conflicts_with = "verbose",
        help_heading = "Global options"
    )]
    quiet: bool,
    /// Show progress and notices on stderr even under --json (which holds them back)
    #[arg(short, long, global = true, help_heading = "Global options")]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

/// The toolchain and target: part of the build key.
#[derive(Args, Clone)]
struct TargetArgs {
    /// Toolchain identity [default: first lines of `$CC --version` and `$LD --version`].
    #[arg(long, conflicts_with = "toolchain_cmd")]
    toolchain: Option<String>,
    /// A command that prints the toolchain identity (its lines are joined by ", ").
    #[arg(long)]
    toolchain_cmd: Option<String>,
    /// Target architecture [default: this machine's].
    #[arg(long)]
    arch: Option<String>,
}

impl TargetArgs {
    fn toolchain_source(&self) -> kcache::kernel::ToolchainSource {
        kcache::kernel::ToolchainSource::from_options(self.toolchain.as_deref(), self.toolchain_cmd.as_deref())
    }

    /// `--toolchain`, else what `--toolchain-cmd` prints, else `$CC`/`$LD` versions.
    fn toolchain(&self) -> anyhow::Result<String> {
        self.toolchain_source().resolve().context("--toolchain-cmd")
    }

    fn arch(&self) -> String {
        self.arch.clone().unwrap_or_else(kcache::kernel::host_arch)
    }
}

/// What decides a build (the build key), for the cache commands.
#[derive(Args, Clone)]
struct InputArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The commit (any revision git understands).
    #[arg(long, default_value = "HEAD")]
    commit: String,
    /// The kernel config the build used.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    /// The build command (part of the recipe; use the same as `bisect --build`).
    #[arg(long, default_value = "")]
    build_cmd: String,
    /// Files that are part of the recipe (build scripts).
    #[arg(long = "key-file")]
    key_files: Vec<PathBuf>,
}

/// The user's build and test, for `bisect` and `exec`.
#[derive(Args, Clone)]
struct RecipeArgs {
    /// Build command, run by `sh -c` in the tree with KCACHE_CONFIG, KCACHE_COMMIT and KCACHE_CACHE_DIR.
    #[arg(long, required_unless_present = "kbuild", conflicts_with = "kbuild")]
    build: Option<String>,
    /// Build with kcache's reproducible kbuild recipe (scripts/kernel/kbuild.sh): --config, olddefconfig,
    /// vmlinux and boot image with pinned KBUILD_* settings; artifacts in kcache-out/.
    #[arg(long)]
    kbuild: bool,
    /// Test command, run --runs times in the directory of restored artifacts
    /// (also KCACHE_ARTIFACTS) with KCACHE_SIGNATURE, KCACHE_COMMIT, KCACHE_RUN.
    /// Exit 0 ok, 125 cannot test, 1-124 crash (a stdout line `crash: TITLE` names it); 126/127 (the shell could not run it) stop with an error.
    /// Required by `bisect` and `exec` (unless --repro); `prebuild` never tests.
    #[arg(long, conflicts_with = "repro")]
    test: Option<String>,
    /// The test is kcache's reproducer harness: this C reproducer run in the built boot image
    /// under QEMU (as `kcache repro`), each run titled; the kernel config must have what it needs.
    #[arg(long, value_name = "REPRO.C")]
    repro: Option<PathBuf>,
    /// With --repro: seconds the reproducer runs in each VM; surviving them is ok.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "repro")]
    repro_timeout: u64,
    #[command(flatten)]
    vm: VmArgs,
    /// Kernel config, handed to the build as KCACHE_CONFIG (part of the build key).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Artifacts to keep, relative to the tree; the first is signed [default: vmlinux].
    #[arg(long = "artifact")]
    artifacts: Vec<String>,
    /// Test runs per kernel (at least 1).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Kill a build (with everything it started) after this many seconds; a
    /// timed-out build is not recorded as the commit's failure.
    #[arg(long, value_name = "SECONDS")]
    build_timeout: Option<f64>,
    /// Kill a test run after this many seconds; it counts as no information.
    #[arg(long, value_name = "SECONDS")]
    test_timeout: Option<f64>,
    /// Build commits the cache records as failing to build, instead of skipping them.
    #[arg(long)]
    retry_failed: bool,
    /// Files that decide the test outcome (reproducer, image): part of the test key.
    #[arg(long = "test-key-file")]
    test_key_files: Vec<PathBuf>,
    /// Files that are part of the build recipe: part of the build key.
    #[arg(long = "key-file")]
    key_files: Vec<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
}

/// How the bisection decides.
#[derive(Args, Clone)]
struct SearchArgs {
    /// bayes: a posterior over the first bad kernel, robust to flaky reproducers and
    /// unrelated crashes; classic: any crash is bad, half the runs ok is good (git bisect's rule).
    #[arg(long, value_enum, default_value_t = Policy::Bayes)]
    policy: Policy,
    /// The crash being bisected (repeatable); other crashes do not make a kernel bad.
    /// Default: the titles that dominate the bad commit's crashes (it is built and tested for it).
    #[arg(long = "crash-title", value_name = "TITLE")]
    crash_titles: Vec<String>,
    /// Name a culprit only when its probability reaches this.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Stop after this many test runs and report the credible set.
    #[arg(long)]
    max_runs: Option<u32>,
    /// Stop after this many builds and report the credible set.
    #[arg(long)]
    max_builds: Option<u32>,
    /// Seconds a build is assumed to take until one is measured.
    #[arg(long, default_value_t = 600.0)]
    build_cost: f64,
    /// Seconds a test run is assumed to take until one is measured.
    #[arg(long, default_value_t = 60.0)]
    run_cost: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Policy {
    Bayes,
    Classic,
}

impl From<Policy> for bisect::session::Policy {
    fn from(p: Policy) -> bisect::session::Policy {
        match p {
            Policy::Bayes => bisect::session::Policy::Bayes,
            Policy::Classic => bisect::session::Policy::Classic,
        }
    }
}

impl SearchArgs {
    fn noisy(&self) -> anyhow::Result<bisect::noisy::NoisyOptions> {
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

#[derive(Subcommand)]
enum Command {
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
    /// Evict least-recently-used artifacts until the blobs fit in SIZE (50G, 500M, 1024).
    Gc(GcArgs),
    /// The effective settings (cache directory, remote, endpoint), secrets masked.
    Config(ConfigArgs),
    /// Upload everything the remote does not have yet (queued while it was down).
    Sync(SyncArgs),
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
struct KeyGenArgs {
    /// Where to write the key [default: signing.key beside the config file].
    #[arg(long, value_name = "FILE")]
    path: Option<PathBuf>,
}

#[derive(Args)]
struct CompletionsArgs {
    /// The shell to complete for.
    shell: clap_complete::Shell,
}

#[derive(Args)]
struct ManArgs {
    /// Where to write the pages (e.g. ~/.local/share/man/man1).
    dir: PathBuf,
}

#[derive(Args)]
struct PrebuildArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The range: A..B (A and the commits after it up to B), or B (its whole history).
    range: String,
    /// Follow only the first parent of merges (the mainline, as `bisect --first-parent`).
    #[arg(long)]
    first_parent: bool,
    /// Build every N-th commit (and both ends); bisections build the rest.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    every: u32,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Print the prebuild record as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SignArgs {
    /// One JSON object per file with every hashed and skipped section.
    #[arg(long)]
    json: bool,
    /// ELF files (vmlinux) to sign.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct TitleArgs {
    /// One JSON object per file: schema, file, title (null: no crash), class, corrupted,
    /// start_line.
    #[arg(long)]
    json: bool,
    /// Console output files (kernel log, serial console).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct DiffArgs {
    /// The first build's vmlinux (the "before", e.g. the parent's).
    a: PathBuf,
    /// The second build's vmlinux (the "after", e.g. the culprit's).
    b: PathBuf,
    /// List every changed symbol, not just the first 20 per section.
    #[arg(long)]
    all: bool,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct BisectArgs {
    /// The git repository (kcache builds in a private clone of it, under the cache).
    #[arg(long)]
    repo: PathBuf,
    /// A commit known to be good (repeatable; any revision git understands). Without it the
    /// default policy walks back over release tags older than --bad (--good-tags) until one
    /// does not reproduce. With --fix: the newer commit where the crash is gone.
    #[arg(long)]
    good: Vec<String>,
    /// A commit known to be bad (any revision git understands). With --fix: the older commit
    /// that crashes.
    #[arg(long)]
    bad: String,
    /// Look for the first commit that fixed the crash: --bad is the older, crashing commit,
    /// --good a descendant where the crash is gone.
    #[arg(long)]
    fix: bool,
    /// Release tags to walk back over when no --good is given (git's wildcards; -rc tags are
    /// skipped, older releases thinned as syzbot does).
    #[arg(long, value_name = "GLOB", default_value = "v[0-9]*")]
    good_tags: String,
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Follow only the first parent of merges.
    #[arg(long)]
    first_parent: bool,
    /// Write a syzkaller-style log here.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Build every commit the bisection needs instead of predicting no-op
    /// commits from kbuild input sets.
    #[arg(long)]
    no_predict: bool,
    /// Bisect with a throwaway cache (nothing is reused or kept): when the
    /// cache cannot be used.
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    search: SearchArgs,
    /// Also write the bisection's report here: one self-contained HTML file
    /// (the range, the kernels and their pooled runs, the culprit and what
    /// changed in its kernel, time and cost).
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// Print the summary as JSON on stdout (nothing but errors on stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ReproArgs {
    /// The kernel's boot image (arch/x86/boot/bzImage, kcache-out/boot-image, /boot/vmlinuz-*; not vmlinux).
    #[arg(long)]
    kernel: PathBuf,
    /// The C reproducer (syzbot's repro.c), compiled static with gcc.
    #[arg(long, value_name = "REPRO.C")]
    repro: PathBuf,
    /// Runs (one VM each).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// VMs at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    jobs: u32,
    /// Seconds the reproducer runs in each VM; surviving them is ok.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    #[command(flatten)]
    vm: VmArgs,
    /// Keep each run's console as run-N.log in this directory.
    #[arg(long, value_name = "DIR")]
    console_dir: Option<PathBuf>,
    /// One JSON object (`kcache/repro/v1`) on stdout: every run and the counts.
    #[arg(long)]
    json: bool,
}

/// How the reproducer's VMs are made (`repro`, and `bisect --repro`).
#[derive(Args, Clone)]
struct VmArgs {
    /// Appended to the default kernel command line (syzkaller's crash conventions: see the README).
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    cmdline: Option<String>,
    /// VM memory in MB.
    #[arg(long, value_name = "MB", default_value_t = 1024)]
    memory: u32,
    /// VM CPUs.
    #[arg(long, default_value_t = 2)]
    cpus: u32,
    /// kvm, tcg, or auto: KVM when /dev/kvm works and a guest really starts there, else TCG.
    #[arg(long, value_enum, default_value_t = AccelArg::Auto)]
    accel: AccelArg,
    /// A kernel that has not started the reproducer after this many seconds did not boot.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    boot_timeout: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

impl VmArgs {
    fn settings(&self, budget: u64) -> kcache::vm::Settings {
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

#[derive(Args)]
struct ReportArgs {
    /// The bisection's id, or a unique prefix of it (`kcache bisections` lists them).
    id: String,
    /// Write the HTML here instead of to stdout.
    #[arg(long, short, value_name = "FILE.html")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct BisectionsArgs {
    /// One JSON object (`kcache/bisections/v1`) with every recorded bisection, newest first.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ForgetArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// The build key to forget (64 hex, or a unique prefix), instead of a commit and inputs.
    #[arg(long)]
    build_key: Option<String>,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ExecArgs {
    #[command(flatten)]
    recipe: RecipeArgs,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct KeyArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PutArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// The vmlinux (signed) followed by other artifacts to keep.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Seconds the build took (for time-saved figures).
    #[arg(long, default_value_t = 0.0)]
    build_seconds: f64,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GetArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// Look up by build key instead of commit and inputs.
    #[arg(long)]
    build_key: Option<String>,
    /// Restore one blob (by its BLAKE3, delta chain included) to DEST as a file (benchmarks, debugging).
    #[arg(long, conflicts_with = "build_key")]
    blob: Option<String>,
    /// The directory to restore the artifacts into (with --blob: the file to write).
    #[arg(long)]
    dest: PathBuf,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LookupArgs {
    #[command(flatten)]
    inputs: InputArgs,
    /// A build key (64 hex, or a unique prefix).
    #[arg(long)]
    build_key: Option<String>,
    /// A kernel signature (40 or 64 hex, or a unique prefix): its builds and pooled runs.
    #[arg(long)]
    signature: Option<String>,
    /// Classify the runs against this crash (repeatable), as `bisect` does.
    #[arg(long = "crash-title", value_name = "TITLE")]
    crash_titles: Vec<String>,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PredictArgs {
    /// The git repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Commits (any revision git understands).
    #[arg(required = true)]
    commits: Vec<String>,
    /// One JSON object per commit with every reference's judgement.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct RecordRunArgs {
    /// The kernel signature the run tested (40 or 64 hex).
    #[arg(long)]
    signature: KernelSignature,
    /// The test key (64 hex), or give --test-cmd and --test-key-file to derive it.
    #[arg(long)]
    test_key: Option<String>,
    /// The test command, as `bisect --test` gives it (part of the test key).
    #[arg(long)]
    test_cmd: Option<String>,
    /// A file the test depends on (the reproducer, a VM image; repeatable; part of the test key).
    #[arg(long = "test-key-file")]
    test_key_files: Vec<PathBuf>,
    /// ok, crash, infra, boot-failed or skip.
    #[arg(long)]
    outcome: String,
    /// The crash title (outcome crash), as syzkaller prints it.
    #[arg(long)]
    title: Option<String>,
    /// How long the run took.
    #[arg(long, default_value_t = 0.0)]
    seconds: f64,
    /// The commit whose kernel was tested, for provenance.
    #[arg(long)]
    commit: Option<String>,
    /// A log of the run, stored as a blob.
    #[arg(long)]
    log: Option<PathBuf>,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct StatsArgs {
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GcArgs {
    /// Evict least-recently-used artifacts until the blobs fit: 50G, 500M, 1024 (bytes).
    #[arg(long, value_name = "SIZE")]
    max_size: String,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ConfigArgs {
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SyncArgs {
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct VerifyArgs {
    /// Quarantine corrupt blobs and mark lost artifacts as evicted.
    #[arg(long)]
    repair: bool,
    /// Print JSON on stdout (see the README for its shape); stderr has errors only.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum LogCommand {
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
        /// Directories of syzbot bisection logs.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

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

impl Command {
    /// `--json`: stdout is one JSON document and stderr says nothing but
    /// errors (no progress, no notices).
    fn json(&self) -> bool {
        use Command as C;
        match self {
            C::Sign(SignArgs { json, .. })
            | C::Title(TitleArgs { json, .. })
            | C::Diff(DiffArgs { json, .. })
            | C::Bisect(BisectArgs { json, .. })
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
            | C::Repro(ReproArgs { json, .. }) => *json,
            C::Log(
                LogCommand::Analyze { json, .. } | LogCommand::Import { json, .. } | LogCommand::Replay { json, .. },
            ) => *json,
            C::Report(_) | C::Completions(_) | C::Man(_) | C::KeyGen(_) => false,
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

fn open_cache(s: &kcache::config::Settings) -> anyhow::Result<Cache> {
    let cache = Cache::open_with_remote(&s.cache_dir, open_remote(s)?)
        .context("cannot open the cache")?
        .with_trust(s.remote_options.policy.clone());
    cache.clean_stale();
    Ok(cache)
}

/// For commands that only read. Without a remote the local cache must
/// exist (a typo is an error, not a new empty cache); with one, an empty
/// local tier is the normal start of a team member.
fn open_existing_cache(s: &kcache::config::Settings) -> anyhow::Result<Cache> {
    if s.remote.is_some() {
        return open_cache(s);
    }
    Ok(Cache::open_existing(&s.cache_dir, None)?.with_trust(s.remote_options.policy.clone()))
}

fn open_remote(s: &kcache::config::Settings) -> anyhow::Result<Option<store::Remote>> {
    Ok(match &s.remote {
        Some(url) => Some(store::Remote::open(url, &s.remote_options)?),
        None => None,
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

fn bisect_recipe(r: RecipeArgs, cache: &Cache) -> anyhow::Result<BisectRecipe> {
    let test = match (&r.test, &r.repro) {
        (Some(test), _) => test.clone(),
        (None, Some(repro)) => format!("kcache repro --repro {} --timeout {}", repro.display(), r.repro_timeout),
        (None, None) => bail!("--test or --repro is required: how to test a kernel"),
    };
    build_recipe(r, cache, test)
}

/// The recipe with `test` as its test command (empty for `prebuild`).
fn build_recipe(r: RecipeArgs, cache: &Cache, test: String) -> anyhow::Result<BisectRecipe> {
    let (build, toolchain, artifacts) = match r.build.clone() {
        Some(build) => (build, r.target.toolchain()?, r.artifacts.clone()),
        None => {
            let k = KbuildRecipe::install(cache.dir(), &r.target.toolchain_source(), &r.artifacts)
                .with_context(|| format!("installing the kbuild recipe in {}", cache.dir().display()))?;
            (k.build_command, k.toolchain, k.artifacts)
        }
    };
    let repro = repro_test(&r, cache, &artifacts)?;
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
    })
}

fn seconds(s: Option<f64>, what: &str) -> anyhow::Result<Option<std::time::Duration>> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 => Ok(Some(std::time::Duration::from_secs_f64(s))),
        Some(s) => bail!("{what} {s}: give a positive number of seconds"),
    }
}

/// The commit id and build inputs named on the command line.
fn resolve_inputs(a: &InputArgs) -> anyhow::Result<(String, BuildInputs)> {
    let (commit, inputs, _) = resolve_recipe(a)?;
    Ok((commit, inputs))
}

/// [`resolve_inputs`] and the recipe they share with every commit.
fn resolve_recipe(a: &InputArgs) -> anyhow::Result<(String, BuildInputs, kcache::key::RecipeInputs)> {
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
    Ok((commit, inputs, recipe))
}

/// An artifact's name: its path inside the repository, else its file name.
fn artifact_name(repo: &std::path::Path, file: &std::path::Path) -> String {
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
fn build_key_of(cache: &Cache, build_key: Option<&str>, inputs: &InputArgs) -> anyhow::Result<BuildKey> {
    match build_key {
        Some(k) => Ok(cache.resolve_build_key(k)?),
        None => Ok(resolve_inputs(inputs)?.1.key()),
    }
}

/// Why a lookup by commit may have missed: the build key covers the
/// build command, config, toolchain, architecture and key files, and a
/// lookup that leaves one out asks about a build nobody made.
fn missing_inputs_hint(inputs: &InputArgs) -> String {
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

fn parse_key(s: &str) -> anyhow::Result<Key> {
    Key::from_hex(s).with_context(|| format!("{s:?} is not a 64-hex key"))
}

/// `50G`, `500M`, `64K` (powers of 1024) or a plain byte count.
fn parse_size(s: &str) -> anyhow::Result<u64> {
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

/// The cache a bisection uses: the configured one, or with `--no-cache` a
/// throwaway one (kept alive by the returned directory).
fn bisect_cache(
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
fn evaluator_in(repo: &Repo, cache: &Cache, recipe: BisectRecipe) -> anyhow::Result<CommitEvaluator> {
    let (tree, state) = (
        bisect::worktree_dir(cache, repo.dir()),
        bisect::state_dir(cache, repo.dir()),
    );
    Ok(CommitEvaluator::new(recipe, tree, state, false)?)
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
    let all: Vec<(String, bisect::record::BisectionRecord)> = cache.bisections()?;
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
    let outcome: store::Outcome = serde_json::from_value(serde_json::Value::String(outcome.clone()))
        .with_context(|| format!("unknown outcome {outcome:?}: use ok, crash, infra, boot-failed or skip"))?;
    let mut run = store::RunRecord::new(&signature, test_key, outcome, title, seconds, commit.as_deref());
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

/// `--repro`: the harness as the bisection's test, on the recipe's boot
/// image, after checking that the config can boot it.
fn repro_test(
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

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
