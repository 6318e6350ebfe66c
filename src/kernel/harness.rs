//! What the reproducer harness (`crate::vm`) needs from a kernel config,
//! checked before a kernel is booted: a config without an initramfs, a
//! serial console or devtmpfs would boot into silence, and every run would
//! look like "no information" instead of naming the missing option.
//!
//! Invariant: reads config text only; knows nothing of QEMU or builds.

use std::path::{Path, PathBuf};

/// Options that must be `=y` (built in: the initramfs has no modules),
/// each with what the harness uses it for.
pub const REQUIRED: &[(&str, &str)] = &[
    ("BLK_DEV_INITRD", "the initramfs that holds init and the reproducer"),
    ("DEVTMPFS", "/dev for the reproducer"),
    ("TTY", "the serial console"),
    ("SERIAL_8250", "the serial port QEMU gives the guest"),
    (
        "SERIAL_8250_CONSOLE",
        "kernel messages on ttyS0, which the harness reads",
    ),
    ("PRINTK", "kernel messages at all"),
    ("PROC_FS", "/proc (and /proc/sysrq-trigger)"),
    ("SYSFS", "/sys"),
    ("BINFMT_ELF", "running the static init and reproducer"),
    ("FUTEX", "threads in the reproducer (-pthread)"),
    ("64BIT", "the x86_64 reproducer"),
];

#[derive(Debug, thiserror::Error)]
pub enum HarnessConfigError {
    #[error("kernel config {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "kernel config {}: the reproducer harness cannot work with this kernel; it needs {}. \
         Enable them (scripts/config --enable {}) and build again",
        path.display(),
        describe(missing),
        missing.iter().map(|(o, _)| *o).collect::<Vec<_>>().join(" --enable ")
    )]
    Missing {
        path: PathBuf,
        missing: Vec<(&'static str, &'static str)>,
    },
}

fn describe(missing: &[(&str, &str)]) -> String {
    missing
        .iter()
        .map(|(o, why)| format!("CONFIG_{o}=y ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The required options a `.config` text lacks (absent, `is not set`,
/// or a module), in [`REQUIRED`]'s order.
pub fn missing(config: &str) -> Vec<(&'static str, &'static str)> {
    REQUIRED
        .iter()
        .filter(|(option, _)| {
            let set = format!("CONFIG_{option}=y");
            !config.lines().any(|l| l.trim_end() == set)
        })
        .copied()
        .collect()
}

/// [`missing`] on a file, as an error that names the file and the options.
pub fn check_config_file(path: &Path) -> Result<(), HarnessConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| HarnessConfigError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let missing = missing(&text);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(HarnessConfigError::Missing {
            path: path.to_path_buf(),
            missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_what_is_missing_and_accepts_a_complete_config() {
        let full: String = REQUIRED.iter().map(|(o, _)| format!("CONFIG_{o}=y\n")).collect();
        assert!(missing(&full).is_empty());
        let lacking = full
            .replace("CONFIG_DEVTMPFS=y", "# CONFIG_DEVTMPFS is not set")
            .replace("CONFIG_SERIAL_8250=y", "CONFIG_SERIAL_8250=m");
        let m: Vec<&str> = missing(&lacking).iter().map(|(o, _)| *o).collect();
        assert_eq!(m, ["DEVTMPFS", "SERIAL_8250"]);
        // The benchmark's tinyconfig-based config has no devtmpfs.
        let bench = include_str!("../../scripts/kernel/bench.config");
        assert_eq!(missing(bench).iter().map(|(o, _)| *o).collect::<Vec<_>>(), ["DEVTMPFS"]);
    }

    #[test]
    fn the_error_names_the_file_and_the_options() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.config");
        std::fs::write(&path, "CONFIG_64BIT=y\n").unwrap();
        let e = check_config_file(&path).unwrap_err().to_string();
        assert!(
            e.contains("my.config") && e.contains("CONFIG_DEVTMPFS=y") && e.contains("--enable DEVTMPFS"),
            "{e}"
        );
        let e = check_config_file(&dir.path().join("nope")).unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
    }
}
