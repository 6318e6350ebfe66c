//! One QEMU VM: `qemu-system-x86_64` booting a kernel image with the
//! harness's initramfs, its serial console read as it comes, and the
//! deadlines that end it (a KVM that never starts the kernel, a boot that
//! never reaches init, a run that outlives its budget).
//!
//! Invariant: knows nothing of reproducers or crash titles; it reports
//! the console bytes, what the harness's init said, and how the VM ended.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::VmError;

/// What runs the guest's instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization through /dev/kvm.
    Kvm,
    /// QEMU's own emulation: slow, works everywhere.
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The console is kept up to this size (a runaway printk loop); the first
/// report is what counts.
const MAX_CONSOLE: usize = 32 << 20;
/// The kernel's first console line, with `earlyprintk` and without.
const KERNEL_BANNER: &[u8] = b"Linux version ";
pub const INIT_START: &[u8] = b"kcache-init: start";
pub const INIT_DONE: &[u8] = b"kcache-init: done";
/// How often the deadlines are looked at.
const TICK: Duration = Duration::from_millis(50);

/// One boot.
pub struct Boot<'a> {
    pub qemu: &'a Path,
    pub kernel: &'a Path,
    pub initramfs: &'a Path,
    pub cmdline: &'a str,
    pub accel: Accel,
    pub memory_mb: u32,
    pub cpus: u32,
    /// Under KVM: the kernel must print its banner by then, or KVM is
    /// taken for broken (a guest stuck before the kernel runs).
    pub kvm_probe: Duration,
    /// The harness's init must have started by then.
    pub boot_timeout: Duration,
    /// From init's start to the VM's end (the reproducer's budget plus
    /// time to report and reboot).
    pub run_timeout: Duration,
}

/// How a VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// QEMU exited (the guest rebooted: init's end, or a panic).
    Exited { success: bool },
    /// Under KVM, no kernel output within the probe time: killed.
    KvmSilent,
    /// Init did not start within the boot timeout: killed.
    BootTimeout,
    /// The run outlived its budget: killed (a hung kernel, say).
    RunTimeout,
}

/// What a VM printed and how it ended.
#[derive(Debug, Clone)]
pub struct Console {
    pub bytes: Vec<u8>,
    /// QEMU's own messages (stderr), last lines.
    pub qemu_stderr: String,
    pub ending: Ending,
    pub seconds: f64,
    pub kernel_spoke: bool,
    pub init_started: bool,
    pub init_done: bool,
}

/// What the reader thread has seen so far.
#[derive(Default)]
struct Seen {
    bytes: Vec<u8>,
    kernel_spoke: bool,
    init_started: bool,
    init_done: bool,
}

/// `qemu-system-x86_64` from PATH.
pub fn find_qemu() -> Result<PathBuf, VmError> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("qemu-system-x86_64"))
        .find(|p| p.is_file())
        .ok_or_else(|| VmError::Tool {
            tool: "qemu-system-x86_64".into(),
            problem: "not found on PATH; install qemu-system-x86 (scripts/setup.sh)".into(),
        })
}

/// Whether /dev/kvm can be opened for reading and writing (what QEMU
/// needs); that says nothing of whether a guest will run.
pub fn kvm_device_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// Boots `b` and reads its console until QEMU exits or a deadline kills
/// it. `on_kernel_output` is called once, when the kernel's banner shows
/// (the accelerator works).
pub fn boot(b: &Boot, on_kernel_output: &(dyn Fn() + Sync)) -> Result<Console, VmError> {
    let start = Instant::now();
    let mut child = spawn(b)?;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let reader = {
        let seen = seen.clone();
        std::thread::spawn(move || read_console(stdout, &seen))
    };
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = BufReader::new(stderr).take(1 << 20).read_to_string(&mut text);
        text
    });
    let mut told = false;
    let mut init_at = None;
    let ending = loop {
        if let Some(status) = child.try_wait().map_err(|e| io_err("waiting for qemu", e))? {
            break Ending::Exited {
                success: status.success(),
            };
        }
        let (spoke, started) = {
            let s = seen.lock().unwrap_or_else(|e| e.into_inner());
            (s.kernel_spoke, s.init_started)
        };
        if spoke && !told {
            told = true;
            on_kernel_output();
        }
        if started && init_at.is_none() {
            init_at = Some(Instant::now());
        }
        let killed = match init_at {
            _ if b.accel == Accel::Kvm && !spoke && start.elapsed() >= b.kvm_probe => Some(Ending::KvmSilent),
            None if start.elapsed() >= b.boot_timeout => Some(Ending::BootTimeout),
            Some(at) if at.elapsed() >= b.run_timeout => Some(Ending::RunTimeout),
            _ => None,
        };
        if let Some(ending) = killed {
            let _ = child.kill();
            let _ = child.wait();
            break ending;
        }
        std::thread::sleep(TICK);
    };
    // QEMU is gone: its pipes are closed, the readers finish.
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let seen = std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()));
    if seen.kernel_spoke && !told {
        on_kernel_output();
    }
    Ok(Console {
        bytes: seen.bytes,
        qemu_stderr: last_lines(&stderr, 5),
        ending,
        seconds: start.elapsed().as_secs_f64(),
        kernel_spoke: seen.kernel_spoke,
        init_started: seen.init_started,
        init_done: seen.init_done,
    })
}

fn io_err(what: &str, source: std::io::Error) -> VmError {
    VmError::Io {
        what: what.into(),
        source,
    }
}

/// The QEMU command: no default devices (no NIC, no VGA: nothing to probe
/// but the serial port), the console on stdout, `-no-reboot` so the
/// guest's reboot ends QEMU. Dies with the thread that started it
/// (`PR_SET_PDEATHSIG`): a killed kcache leaves no VM behind.
fn spawn(b: &Boot) -> Result<Child, VmError> {
    let mut cmd = Command::new(b.qemu);
    cmd.args(["-nodefaults", "-display", "none", "-serial", "stdio", "-no-reboot"])
        .args(["-m", &b.memory_mb.to_string(), "-smp", &b.cpus.to_string()])
        .args(["-accel", b.accel.as_str()]);
    if b.accel == Accel::Kvm {
        cmd.args(["-cpu", "host"]);
    }
    cmd.arg("-kernel")
        .arg(b.kernel)
        .arg("-initrd")
        .arg(b.initramfs)
        .args(["-append", b.cmdline])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the prctl.
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn().map_err(|e| VmError::Tool {
        tool: b.qemu.display().to_string(),
        problem: format!("cannot start it: {e}"),
    })
}

/// Reads the console line by line (bytes, not text: a crashing kernel
/// prints what it prints), noting the kernel's banner and init's markers.
fn read_console(stdout: impl Read, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
        s.kernel_spoke |= contains(&line, KERNEL_BANNER);
        // Anywhere in the line: a kernel message may have begun it.
        s.init_started |= contains(&line, INIT_START);
        s.init_done |= contains(&line, INIT_DONE);
        if s.bytes.len() < MAX_CONSOLE {
            let room = MAX_CONSOLE - s.bytes.len();
            s.bytes.extend_from_slice(&line[..line.len().min(room)]);
        }
    }
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
