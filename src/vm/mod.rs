//! The reproducer harness: a C reproducer run inside a kernel booted in
//! QEMU, its console titled as syzbot would title it.
//!
//! - [`programs`]: the reproducer and kcache's init (`init.c`), compiled
//!   static once per content; the initramfs that carries them.
//! - [`cpio`]: the initramfs format (`newc`), written in memory.
//! - [`qemu`]: one VM, its console, its deadlines, KVM or TCG.
//! - [`workdir`]: the work directory's conventions (digests beside the
//!   files, last use, the in-use lock) that `gc` and `verify` rely on.
//! - [`harness`]: runs (N of them, `jobs` VMs at once), each classified
//!   as a crash with its title ([`crate::title`]), ok, or no information
//!   with the reason; the reproduce rate.
//!
//! No disk image: the kernel boots the initramfs, whose init mounts
//! proc, sys, devtmpfs and a tmpfs, runs `/repro` as root with a time
//! budget, says on the console how it ended, and reboots (`-no-reboot`
//! ends QEMU then; a panic reboots at once with `panic=-1`).
//!
//! Invariant: knows nothing of the cache, commits or bisections; it boots
//! a kernel image it is given and says what happened. The bisection's
//! test hook (`exec`) maps its runs to run records.

pub mod cpio;
pub mod harness;
pub mod programs;
pub mod qemu;
pub mod text;
pub mod workdir;

pub use harness::{Harness, NoInfo, Run, RunOutcome, Settings, Summary};
pub use qemu::Accel;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("{tool}: {problem}")]
    Tool { tool: String, problem: String },
    #[error("{}: does not compile (`{command}`):\n{output}", file.display())]
    Compile {
        file: PathBuf,
        command: String,
        output: String,
    },
    #[error("{}: {problem}", file.display())]
    KernelImage { file: PathBuf, problem: String },
    #[error("{0}")]
    Setting(String),
}

/// syzkaller's command-line conventions for crash detection (its QEMU
/// `linuxCmdline` and syzbot's configs), adapted to a VM whose end is the
/// signal: every entry is a reason, see the README's reproducer section.
pub const DEFAULT_CMDLINE: &[&str] = &[
    // The console the harness reads; early output too (the KVM probe
    // waits for the kernel's first line).
    "console=ttyS0",
    "earlyprintk=serial",
    // Every oops, WARNING, lockup and hung task ends in a panic, as on
    // syzbot (its configs set the BOOTPARAM_*_PANIC options; here the
    // command line does it for any config).
    "oops=panic",
    "panic_on_warn=1",
    "nmi_watchdog=panic",
    "softlockup_panic=1",
    "hung_task_panic=1",
    // Reboot at once on panic (syzkaller: panic=1, syzbot: 86400 and it
    // reads on); with -no-reboot the panic ends QEMU and the run.
    "panic=-1",
    "ftrace_dump_on_oops=orig_cpu",
];

/// How the harness is asked to pick its accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelChoice {
    /// KVM when /dev/kvm opens and a guest really starts there, else TCG.
    Auto,
    Kvm,
    Tcg,
}

use serde::{Deserialize, Serialize};

/// The harness as a bisection's test (`bisect --repro`): which of the
/// recipe's artifacts is the boot image, and the config to check before
/// booting it.
#[derive(Debug)]
pub struct ReproTest {
    pub harness: Harness,
    /// Relative to the restored artifacts (`kcache-out/boot-image`).
    pub boot_image: String,
    /// The built kernel's config among the artifacts, when the recipe keeps it.
    pub config: Option<String>,
}

impl ReproTest {
    /// Finds the boot image (an artifact named `boot-image` or `bzImage`)
    /// and the config (`config`, `.config`) among `artifacts`.
    pub fn new(harness: Harness, artifacts: &[String]) -> Result<ReproTest, VmError> {
        let named = |names: &[&str]| {
            artifacts
                .iter()
                .find(|a| names.iter().any(|n| a.rsplit('/').next() == Some(n)))
                .cloned()
        };
        let boot_image = named(&["boot-image", "bzImage"]).ok_or_else(|| {
            VmError::Setting(format!(
                "--repro boots the kernel's boot image, and no artifact is one (named boot-image or bzImage): \
                 use --kbuild, or keep arch/x86/boot/bzImage with --artifact (artifacts: {})",
                artifacts.join(", ")
            ))
        })?;
        Ok(ReproTest {
            harness,
            boot_image,
            config: named(&["config", ".config"]),
        })
    }

    /// Before the first boot of a built kernel: its config has what the
    /// harness needs (an error names what is missing).
    pub fn check_config(&self, artifacts: &std::path::Path) -> Result<(), crate::kernel::harness::HarnessConfigError> {
        match &self.config {
            Some(c) => crate::kernel::harness::check_config_file(&artifacts.join(c)),
            None => Ok(()),
        }
    }
}
