//! The programs inside the VM and the initramfs that carries them: the
//! reproducer and kcache's init, each compiled static with the host's gcc
//! once per content (source, compiler version, flags) into the harness's
//! work directory, then packed with `cpio` into an initramfs that is
//! itself kept by the digest of what it holds. Every file there follows
//! [`workdir`]'s conventions (a digest beside it, reused only when it
//! matches, so `gc` may evict and `verify` may check any of them).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{cpio, workdir, VmError};
use crate::key::{self, Key};

/// kcache's init (PID 1 in the VM), compiled on first use.
pub const INIT_SOURCE: &str = include_str!("init.c");

/// How syzbot builds its C reproducers (static: the initramfs has no libc).
pub const REPRO_FLAGS: &[&str] = &["-static", "-O1", "-pthread"];
const INIT_FLAGS: &[&str] = &["-static", "-O1"];
const COMPILER: &str = "gcc";

/// A program compiled for the VM.
#[derive(Debug, Clone)]
pub struct Program {
    pub path: PathBuf,
    /// Digest of what made it: source, compiler version line and flags.
    pub recipe_digest: Key,
}

/// The compiler's identity (`gcc --version`'s first line); part of every
/// program's digest, so a new compiler compiles again.
pub fn compiler_identity() -> Result<String, VmError> {
    let out = Command::new(COMPILER)
        .arg("--version")
        .output()
        .map_err(|e| VmError::Tool {
            tool: COMPILER.into(),
            problem: format!("cannot run it ({e}); install gcc and libc6-dev (scripts/setup.sh)"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or(COMPILER).trim().to_string())
}

/// The reproducer `source` (read from `named`, which errors name),
/// compiled once per content.
pub fn compile_repro(work: &Path, named: &Path, source: &[u8], compiler: &str) -> Result<Program, VmError> {
    compile_cached(work, "repro", named, source, REPRO_FLAGS, compiler)
}

/// kcache's init, compiled once per compiler.
pub fn compile_init(work: &Path, compiler: &str) -> Result<Program, VmError> {
    compile_cached(
        work,
        "init",
        Path::new("(kcache's init.c)"),
        INIT_SOURCE.as_bytes(),
        INIT_FLAGS,
        compiler,
    )
}

fn recipe_digest(source: &[u8], flags: &[&str], compiler: &str) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"kcache vm program v1\0");
    h.update(compiler.as_bytes());
    h.update(b"\0");
    h.update(flags.join(" ").as_bytes());
    h.update(b"\0");
    h.update(source);
    Key(*h.finalize().as_bytes())
}

fn compile_cached(
    work: &Path,
    name: &str,
    named: &Path,
    source: &[u8],
    flags: &[&str],
    compiler: &str,
) -> Result<Program, VmError> {
    let recipe_digest = recipe_digest(source, flags, compiler);
    let path = work.join(format!("{name}-{}", &recipe_digest.to_hex()[..24]));
    if workdir::reuse(&path) {
        return Ok(Program { path, recipe_digest });
    }
    let io = |what: &str| {
        let what = format!("{what} in {}", work.display());
        move |source| VmError::Io { what, source }
    };
    let tmp = tempfile::Builder::new()
        .prefix(".compile-")
        .tempdir_in(work)
        .map_err(io("temporary directory"))?;
    let src = tmp.path().join(format!("{name}.c"));
    std::fs::write(&src, source).map_err(io("source copy"))?;
    let out = tmp.path().join(name);
    let result = Command::new(COMPILER)
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .output()
        .map_err(|e| VmError::Tool {
            tool: COMPILER.into(),
            problem: format!("cannot run it ({e}); install gcc and libc6-dev (scripts/setup.sh)"),
        })?;
    if !result.status.success() || !out.is_file() {
        return Err(VmError::Compile {
            file: named.to_path_buf(),
            command: format!("{COMPILER} {} -o {name} {name}.c", flags.join(" ")),
            output: compiler_message(&String::from_utf8_lossy(&result.stderr)),
        });
    }
    // Atomic: a concurrent kcache compiling the same program renames the
    // same bytes (and digest) over it.
    workdir::publish(&out, &path).map_err(io("compiled program"))?;
    Ok(Program { path, recipe_digest })
}

/// The compiler's complaint, short, with the hint for the one failure that
/// is the machine's and not the source's: no static C library.
fn compiler_message(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut text = lines[..lines.len().min(20)].join("\n");
    if lines.len() > 20 {
        text.push_str(&format!("\n... ({} more lines)", lines.len() - 20));
    }
    if stderr.contains("cannot find -lc") || stderr.contains("cannot find -lpthread") {
        text.push_str("\n(no static C library: install libc6-dev)");
    }
    text
}

/// The initramfs holding `init` as `/init` and `repro` as `/repro`, kept
/// by the digest of both, so every run (and every bisection step) with the
/// same programs boots the same file.
pub fn initramfs(work: &Path, init: &Program, repro: &Program) -> Result<PathBuf, VmError> {
    let read = |p: &Program| {
        std::fs::read(&p.path).map_err(|source| VmError::Io {
            what: p.path.display().to_string(),
            source,
        })
    };
    let (init_bytes, repro_bytes) = (read(init)?, read(repro)?);
    let digest = key::digest(&[key::digest(&init_bytes).0, key::digest(&repro_bytes).0].concat());
    let path = work.join(format!("initramfs-{}.cpio", &digest.to_hex()[..24]));
    if workdir::reuse(&path) {
        return Ok(path);
    }
    let archive = cpio::archive(&[
        cpio::Entry::Dir { path: "dev" },
        // The kernel opens /dev/console for init before devtmpfs is mounted.
        cpio::Entry::CharDev {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
        // Init's lines go to the kernel log through /dev/kmsg.
        cpio::Entry::CharDev {
            path: "dev/kmsg",
            major: 1,
            minor: 11,
        },
        cpio::Entry::Dir { path: "proc" },
        cpio::Entry::Dir { path: "sys" },
        cpio::Entry::Dir { path: "tmp" },
        cpio::Entry::Dir { path: "root" },
        cpio::Entry::File {
            path: "init",
            mode: 0o755,
            data: &init_bytes,
        },
        cpio::Entry::File {
            path: "repro",
            mode: 0o755,
            data: &repro_bytes,
        },
    ]);
    let io = |source| VmError::Io {
        what: format!("initramfs {}", path.display()),
        source,
    };
    let mut tmp = tempfile::NamedTempFile::new_in(work).map_err(io)?;
    std::io::Write::write_all(&mut tmp, &archive).map_err(io)?;
    let (_, tmp) = tmp.keep().map_err(|e| io(e.error))?;
    workdir::publish(&tmp, &path).map_err(io)?;
    Ok(path)
}
