//! The `kcache` command line: argument parsing and printing only; the work
//! is done by the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kcache::{signature, syzlog};

#[derive(Parser)]
#[command(name = "kcache", version, about = "Build cache and bisect accelerator for Linux kernels")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the syzkaller kernel signature of each ELF file, like sha256sum.
    Sign {
        /// One JSON object per file with every hashed and skipped section.
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Which sections and symbols differ between two builds.
    /// Exit 0: same signature, 1: different, 2: error.
    Diff {
        a: PathBuf,
        b: PathBuf,
        /// List every changed symbol, not just the first 20 per section.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// syzbot bisection logs.
    #[command(subcommand)]
    Log(LogCommand),
}

#[derive(Subcommand)]
enum LogCommand {
    /// Per log: steps, repeated tests, flakiness, and whether to trust the culprit.
    Analyze {
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// A corpus in file-name order, as if one shared cache had seen it all.
    Replay {
        #[arg(long)]
        json: bool,
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kcache: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sign { json, files } => Ok(sign(&files, json)),
        Command::Diff { a, b, all, json } => diff(&a, &b, all, json),
        Command::Log(LogCommand::Analyze { json, files }) => Ok(log_analyze(&files, json)),
        Command::Log(LogCommand::Replay { json, dirs }) => log_replay(&dirs, json),
    }
}

/// Analyzes every log; a bad file is reported and the rest still analyzed.
fn log_analyze(files: &[PathBuf], json: bool) -> ExitCode {
    let mut failed = false;
    for path in files {
        match syzlog::parse_file(path) {
            Ok(log) => {
                let analysis = syzlog::analyze(&log);
                if json {
                    let doc = serde_json::json!({ "path": path, "analysis": analysis });
                    println!("{doc}");
                } else {
                    print!("{}", kcache::report::analysis_text(path, &analysis));
                }
            }
            Err(e) => {
                eprintln!("kcache: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn log_replay(dirs: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let files = syzlog::corpus_files(dirs)?;
    let report = syzlog::replay(&files);
    for e in &report.unreadable {
        eprintln!("kcache: {e}");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", kcache::report::replay_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Signs every file; a bad file is reported and the rest still signed.
fn sign(files: &[PathBuf], json: bool) -> ExitCode {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for path in files {
        let result = signature::ElfFile::open(path).and_then(|f| f.report());
        match result {
            Ok(report) if json => {
                let _ = writeln!(out, "{}", serde_json::to_string(&report).expect("report serializes"));
            }
            Ok(report) => {
                let _ = writeln!(out, "{}  {}", report.signature, path.display());
            }
            Err(e) => {
                eprintln!("kcache: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn diff(a: &PathBuf, b: &PathBuf, all: bool, json: bool) -> anyhow::Result<ExitCode> {
    let report = signature::diff_files(a, b, if all { None } else { Some(20) })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", kcache::report::diff_text(&report, a, b));
    }
    Ok(if report.equal { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
