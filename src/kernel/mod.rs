//! Kernel build helpers: the toolchain identity that goes into build keys,
//! kcache's reproducible kbuild recipe, (`inputs`) what a kbuild build read, and
//! (`harness`) what the reproducer harness needs from a kernel config.

use std::path::{Path, PathBuf};
use std::process::Command;

/// First line of `PROG --version`, or why it could not be had.
fn version_line(prog: &str) -> String {
    match Command::new(prog).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        _ => format!("{prog} (version unknown)"),
    }
}

/// The compiler and linker version lines, as syzkaller prints them:
/// `gcc (GCC) 10.2.1 20210217, GNU ld (GNU Binutils for Debian) 2.35.2`.
/// `CC` and `LD` select the programs (default `gcc` and `ld`).
pub fn toolchain_identity() -> String {
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let ld = std::env::var("LD").unwrap_or_else(|_| "ld".into());
    format!("{}, {}", version_line(&cc), version_line(&ld))
}

/// The machine architecture (`uname -m`), the default target.
pub fn host_arch() -> String {
    std::env::consts::ARCH.to_string()
}

/// Where the toolchain identity of a build key comes from: given by name,
/// printed by a command, or (by default) the versions of `$CC` and `$LD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolchainSource {
    Named(String),
    Command(String),
    Default,
}

impl ToolchainSource {
    /// `--toolchain` wins over `--toolchain-cmd`; neither is the default.
    pub fn from_options(named: Option<&str>, command: Option<&str>) -> ToolchainSource {
        match (named, command) {
            (Some(n), _) => ToolchainSource::Named(n.to_string()),
            (None, Some(c)) => ToolchainSource::Command(c.to_string()),
            (None, None) => ToolchainSource::Default,
        }
    }

    pub fn resolve(&self) -> std::io::Result<String> {
        match self {
            ToolchainSource::Named(n) => Ok(n.clone()),
            ToolchainSource::Command(c) => toolchain_from_command(c),
            ToolchainSource::Default => Ok(toolchain_identity()),
        }
    }
}

/// The toolchain identity a command prints (its lines joined by `, `), for
/// setups where the compiler is not `$CC` (a cross compiler, a container).
pub fn toolchain_from_command(cmd: &str) -> std::io::Result<String> {
    toolchain_from_command_with(cmd, &[])
}

/// [`toolchain_from_command`] with more variables in its environment
/// (`CC` of a build environment).
pub fn toolchain_from_command_with(cmd: &str, vars: &[(String, String)]) -> std::io::Result<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(vars.iter().cloned())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!("`{cmd}` failed with {}", out.status)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() {
        return Err(std::io::Error::other(format!("`{cmd}` printed nothing")));
    }
    Ok(lines.join(", "))
}

/// Where a program is: a path as given (if it is an executable file),
/// else the first executable of that name on `PATH`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        return executable(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| executable(p))
}

/// The kbuild recipe (`scripts/kernel/kbuild.sh`), embedded so `--kbuild` works
/// wherever the binary is.
pub const KBUILD_SCRIPT: &str = include_str!("../../scripts/kernel/kbuild.sh");

/// The artifacts the kbuild recipe leaves, vmlinux (the signed one) first.
pub const KBUILD_ARTIFACTS: &[&str] = &[
    "kcache-out/vmlinux",
    "kcache-out/boot-image",
    "kcache-out/System.map",
    "kcache-out/config",
];

/// Writes the embedded kbuild recipe into the cache (once per version)
/// and returns the build command that runs it. The command names the
/// script by its digest and finds it through `KCACHE_CACHE_DIR`, which
/// kcache sets for builds, so the command, hence the build key, is the same
/// in every cache.
pub fn install_kbuild_recipe(cache_dir: &Path) -> std::io::Result<(PathBuf, String)> {
    let name = format!(
        "kbuild-{}.sh",
        &crate::key::digest(KBUILD_SCRIPT.as_bytes()).to_hex()[..16]
    );
    let dir = cache_dir.join("kbuild");
    let path = dir.join(&name);
    if !path.is_file() {
        std::fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        std::io::Write::write_all(&mut tmp, KBUILD_SCRIPT.as_bytes())?;
        tmp.persist(&path).map_err(|e| e.error)?;
    }
    Ok((path, format!("bash \"$KCACHE_CACHE_DIR/kbuild/{name}\"")))
}

/// `--kbuild` resolved: the embedded recipe installed in a cache, the
/// command that runs it, the toolchain identity and the artifacts it leaves.
#[derive(Debug, Clone)]
pub struct KbuildRecipe {
    pub script: PathBuf,
    pub build_command: String,
    pub toolchain: String,
    pub artifacts: Vec<String>,
    /// Prints the recipe's toolchain identity for the `$CC` it is run
    /// with (a build environment's compiler).
    pub identity_command: String,
}

impl KbuildRecipe {
    /// Installs the recipe in `cache_dir`. The default toolchain identity
    /// is the recipe's own `--identity` (compiler, linker, module-signing
    /// certificate, recipe digest); no `artifacts` means the recipe's.
    pub fn install(
        cache_dir: &Path,
        toolchain: &ToolchainSource,
        artifacts: &[String],
    ) -> std::io::Result<KbuildRecipe> {
        let (script, build_command) = install_kbuild_recipe(cache_dir)?;
        let identity_command = format!(
            "KCACHE_CACHE_DIR='{}' bash '{}' --identity",
            cache_dir.display(),
            script.display()
        );
        let toolchain = match toolchain {
            ToolchainSource::Default => toolchain_from_command(&identity_command)
                .map_err(|e| std::io::Error::other(format!("kbuild recipe --identity: {e}")))?,
            other => other.resolve()?,
        };
        let artifacts = if artifacts.is_empty() {
            KBUILD_ARTIFACTS.iter().map(|s| s.to_string()).collect()
        } else {
            artifacts.to_vec()
        };
        Ok(KbuildRecipe {
            identity_command,
            script,
            build_command,
            toolchain,
            artifacts,
        })
    }
}

pub mod harness;
pub mod inputs;
