//! The `kcache` command line: argument parsing and printing only; the work
//! is done by the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kcache::signature;

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
    }
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
