//! Runs of a reproducer on a kernel: prepared once (programs compiled,
//! initramfs packed), then any number of VMs, `jobs` at a time, each run
//! classified from its console.
//!
//! A run is a crash when the console holds a report
//! ([`crate::title::title`]) that began after the harness's init started;
//! a report before that is the kernel failing to boot (no information:
//! the reproducer never ran). It is ok when init said it was done and
//! there is no report. Anything else is no information, with the reason.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::programs::{self, Program};
use super::qemu::{self, Accel, Boot, Console, Ending};
use super::{AccelChoice, VmError, DEFAULT_CMDLINE};
use crate::key::{Key, TestInputs};
use crate::title::BugClass;

/// Under KVM the kernel's first line must come within this, or KVM is
/// taken for broken and TCG used (a nested host where /dev/kvm opens and
/// the guest hangs or QEMU aborts).
const KVM_PROBE: Duration = Duration::from_secs(8);
/// Time after the budget for init to report, wait for late reports and
/// reboot, and for a panicking kernel to print its report (slow under TCG).
const RUN_SLACK: Duration = Duration::from_secs(60);

/// The command-line part that depends on the accelerator: syzbot's
/// stall-detection timeouts (its `timeouts_native` and `timeouts_emu`
/// config bits), ordered so one hang is reported one way (RCU stall, then
/// soft lockup, then workqueue stall) and three times longer under
/// emulation, where an overloaded host would otherwise make a booting TCG
/// guest report a stall that is not the kernel's; and under TCG
/// `no_timer_check`. Not part of the test key: the same reproducer on the
/// same kernel pools its runs under KVM and TCG.
pub fn accel_params(accel: Accel) -> &'static [&'static str] {
    match accel {
        Accel::Kvm => &[
            "rcupdate.rcu_cpu_stall_timeout=100",
            "watchdog_thresh=55",
            "workqueue.watchdog_thresh=140",
            "smp.csd_lock_timeout=100000",
        ],
        Accel::Tcg => &[
            // The boot-time IO-APIC timer check busy-waits for ticks a
            // starved TCG vCPU does not get: "IO-APIC + timer doesn't
            // work!" panics (seen here with 8 VMs on 2 busy cores).
            "no_timer_check",
            "rcupdate.rcu_cpu_stall_timeout=300",
            "watchdog_thresh=165",
            "workqueue.watchdog_thresh=420",
            "smp.csd_lock_timeout=300000",
        ],
    }
}

/// What a harness runs and how.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The reproducer's time budget inside the VM; surviving it is ok.
    pub budget: Duration,
    /// Appended to [`DEFAULT_CMDLINE`] (a later `key=value` wins).
    pub extra_cmdline: Vec<String>,
    pub memory_mb: u32,
    pub cpus: u32,
    pub accel: AccelChoice,
    /// Init must have started by then, or the run is "did not boot".
    pub boot_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            budget: Duration::from_secs(60),
            extra_cmdline: Vec::new(),
            memory_mb: 1024,
            cpus: 2,
            accel: AccelChoice::Auto,
            boot_timeout: Duration::from_secs(300),
        }
    }
}

/// Why a run says nothing about the reproducer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
pub enum NoInfo {
    /// Not one byte on the console.
    NoConsoleOutput,
    /// Output, but not the kernel's (KVM that never ran the kernel, a
    /// boot loader error, a bad image).
    KernelSilent(String),
    /// The kernel crashed before the reproducer started.
    BootCrash(String),
    /// The kernel did not reach the harness's init.
    DidNotBoot(String),
    /// The reproducer ran past its budget and the VM hung, without a report.
    TimedOut(String),
    /// The VM ended while the reproducer ran, without a report.
    VmEnded(String),
}

impl std::fmt::Display for NoInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoInfo::NoConsoleOutput => write!(f, "no console output"),
            NoInfo::KernelSilent(d) => write!(f, "the kernel printed nothing: {d}"),
            NoInfo::BootCrash(t) => write!(f, "the kernel crashed while booting: {t}"),
            NoInfo::DidNotBoot(d) => write!(f, "the kernel did not boot: {d}"),
            NoInfo::TimedOut(d) => write!(f, "timed out without a crash: {d}"),
            NoInfo::VmEnded(d) => write!(f, "the VM ended without a crash report: {d}"),
        }
    }
}

/// What one run showed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum RunOutcome {
    Crash {
        title: String,
        /// What kind of bug the title names.
        class: BugClass,
        /// The report looks mangled (interleaved output): best effort.
        corrupted: bool,
        /// The console line (1-based) where the report starts.
        report_line: usize,
    },
    Ok {
        /// How the reproducer ended, as init said (`exited status=0`,
        /// `budget used up`, ...).
        repro: String,
    },
    NoInfo(NoInfo),
}

/// One run: its outcome, its console, what it took.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// 1-based, in the order runs were started.
    pub run: u32,
    #[serde(flatten)]
    pub outcome: RunOutcome,
    pub accel: Accel,
    pub seconds: f64,
    /// When this run's VM started and ended (Unix seconds): runs that were
    /// at once have intersecting intervals, whatever came before them (a
    /// compile, a KVM probe).
    pub started: f64,
    pub ended: f64,
    #[serde(skip)]
    pub console: Vec<u8>,
}

/// The runs of one `kcache repro`, counted.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub runs: u32,
    pub crashed: u32,
    pub ok: u32,
    pub no_info: u32,
    /// Crashed runs among those that said something (crash or ok); none
    /// when no run did.
    pub reproduce_rate: Option<f64>,
    /// Titles with their counts, most frequent first.
    pub titles: Vec<TitleCount>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TitleCount {
    pub title: String,
    pub count: u32,
}

impl Summary {
    pub fn of(runs: &[Run]) -> Summary {
        let mut s = Summary {
            runs: runs.len() as u32,
            crashed: 0,
            ok: 0,
            no_info: 0,
            reproduce_rate: None,
            titles: Vec::new(),
        };
        for r in runs {
            match &r.outcome {
                RunOutcome::Crash { title, .. } => {
                    s.crashed += 1;
                    match s.titles.iter_mut().find(|t| &t.title == title) {
                        Some(t) => t.count += 1,
                        None => s.titles.push(TitleCount {
                            title: title.clone(),
                            count: 1,
                        }),
                    }
                }
                RunOutcome::Ok { .. } => s.ok += 1,
                RunOutcome::NoInfo(_) => s.no_info += 1,
            }
        }
        s.titles
            .sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.title.cmp(&b.title)));
        if s.crashed + s.ok > 0 {
            s.reproduce_rate = Some(f64::from(s.crashed) / f64::from(s.crashed + s.ok));
        }
        s
    }
}

/// The accelerator, decided by the first VM when it is in doubt: the
/// others wait for its kernel's first line (KVM works) or its failure
/// (TCG from then on), so a broken KVM costs one probe, not one per VM.
struct AccelDecision {
    state: Mutex<Decision>,
    changed: Condvar,
}

#[derive(Clone, Copy, PartialEq)]
enum Decision {
    Undecided,
    Probing,
    Decided(Accel),
}

impl AccelDecision {
    fn new(choice: AccelChoice) -> AccelDecision {
        let state = match choice {
            AccelChoice::Tcg => Decision::Decided(Accel::Tcg),
            AccelChoice::Kvm => Decision::Decided(Accel::Kvm),
            AccelChoice::Auto if !qemu::kvm_device_usable() => Decision::Decided(Accel::Tcg),
            AccelChoice::Auto if kvm_failed_since_boot() => {
                crate::notice(&format!(
                    "KVM did not run a kernel here earlier since this boot ({}): using TCG (slower)",
                    kvm_verdict_file().display()
                ));
                Decision::Decided(Accel::Tcg)
            }
            AccelChoice::Auto => Decision::Undecided,
        };
        AccelDecision {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// The accelerator for the next VM, and whether that VM is the probe.
    fn take(&self) -> (Accel, bool) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match *state {
                Decision::Decided(a) => return (a, false),
                Decision::Undecided => {
                    *state = Decision::Probing;
                    return (Accel::Kvm, true);
                }
                Decision::Probing => {
                    state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// The probe failed: the next kcache processes on this host (until it
    /// reboots) take TCG at once instead of probing again. A host whose
    /// KVM guest hangs would otherwise cost every `repro` and every
    /// bisection the whole probe time.
    fn probe_failed(&self) {
        self.settle(Accel::Tcg);
        if let Some(boot) = boot_id() {
            let _ = std::fs::write(kvm_verdict_file(), boot);
        }
    }

    fn settle(&self, accel: Accel) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, Decision::Decided(_)) {
            *state = Decision::Decided(accel);
        }
        self.changed.notify_all();
    }
}

/// A reproducer ready to run on any kernel image.
///
/// Concurrency (what `bisect --repro` batches and `kcache repro --jobs`
/// rely on): a `Harness` is `Sync`, and any number of [`Harness::run_one`]
/// calls may run at once from different threads, on the same or different
/// kernels, also with the same run number (a label in the result, never a
/// file name). Each VM is its own QEMU process with no network, no disk,
/// no monitor socket and no port: its console is its stdout pipe, read
/// into that run's [`Run::console`], so runs cannot see each other's
/// output. All VMs share the kernel image and the initramfs read-only.
/// The first VM decides KVM or TCG for all (others wait for its verdict:
/// a broken KVM costs one probe, not one per VM). The work directory is
/// held (shared lock) from [`Harness::prepare`] until the harness is
/// dropped, so `gc` never removes what a VM is about to boot; harnesses in
/// several processes share it safely (programs are compiled into private
/// temporary directories and renamed into place). Each QEMU dies with the
/// thread that started it (`PR_SET_PDEATHSIG`), so a `run_one` must not
/// be handed to a thread that exits before it returns (it does not: the
/// call blocks until the VM is gone).
pub struct Harness {
    settings: Settings,
    qemu: PathBuf,
    repro_source: Key,
    compiler: String,
    init: Program,
    initramfs: PathBuf,
    accel: AccelDecision,
    /// Keeps `gc` from evicting the programs and initramfs while VMs boot them.
    _in_use: super::workdir::InUse,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("settings", &self.settings)
            .field("initramfs", &self.initramfs)
            .finish()
    }
}

impl Harness {
    /// Compiles the reproducer at `repro` (and kcache's init) into `work`
    /// unless done before, and packs the initramfs.
    pub fn prepare(work: &Path, repro: &Path, settings: Settings) -> Result<Harness, VmError> {
        check_settings(&settings)?;
        let source = std::fs::read(repro).map_err(|source| VmError::Io {
            what: format!("reproducer {}", repro.display()),
            source,
        })?;
        let qemu = qemu::find_qemu()?;
        std::fs::create_dir_all(work).map_err(|source| VmError::Io {
            what: format!("harness directory {}", work.display()),
            source,
        })?;
        let in_use = super::workdir::hold(work).map_err(|source| VmError::Io {
            what: format!("harness directory {} (its lock)", work.display()),
            source,
        })?;
        let compiler = programs::compiler_identity()?;
        let init = programs::compile_init(work, &compiler)?;
        let repro_program = programs::compile_repro(work, repro, &source, &compiler)?;
        let initramfs = programs::initramfs(work, &init, &repro_program)?;
        Ok(Harness {
            accel: AccelDecision::new(settings.accel),
            settings,
            qemu,
            repro_source: crate::key::digest(&source),
            compiler,
            init,
            initramfs,
            _in_use: in_use,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The kernel command line every VM boots with, but for the
    /// accelerator's parameters ([`accel_params`]): what the test key
    /// holds and what `kcache repro` shows.
    pub fn cmdline(&self) -> String {
        self.cmdline_with(&[])
    }

    /// The command line a VM under `accel` boots with: the accelerator's
    /// parameters come before the user's `--cmdline`, which may override them.
    pub fn boot_cmdline(&self, accel: Accel) -> String {
        self.cmdline_with(accel_params(accel))
    }

    fn cmdline_with(&self, timeouts: &[&str]) -> String {
        let mut parts: Vec<String> = DEFAULT_CMDLINE.iter().map(|s| s.to_string()).collect();
        parts.extend(timeouts.iter().map(|s| s.to_string()));
        parts.push(format!("kcache.budget={}", self.settings.budget.as_secs().max(1)));
        parts.extend(self.settings.extra_cmdline.iter().cloned());
        parts.join(" ")
    }

    /// What decides a run's outcome besides the kernel, for the test key
    /// runs are pooled under: the reproducer's source, how it and init
    /// were built, the command line, budget and VM shape. Not the
    /// accelerator or the number of VMs at once.
    pub fn test_inputs(&self) -> TestInputs {
        TestInputs {
            command: "kcache reproducer harness v1".into(),
            files: vec![("repro.c".into(), self.repro_source)],
            settings: vec![
                format!("compiler={}", self.compiler),
                format!("repro-flags={}", programs::REPRO_FLAGS.join(" ")),
                format!("init={}", self.init.recipe_digest.to_hex()),
                format!("cmdline={}", self.cmdline()),
                format!("memory-mb={}", self.settings.memory_mb),
                format!("cpus={}", self.settings.cpus),
            ],
        }
    }

    /// One run on `kernel`: boots, runs the reproducer, classifies. Safe
    /// to call from several threads at once (see [`Harness`]).
    pub fn run_one(&self, kernel: &Path, run: u32) -> Result<Run, VmError> {
        check_kernel_image(kernel)?;
        self.run_checked(kernel, run)
    }

    /// `runs` runs on `kernel`, `jobs` VMs at once; `on_run` sees each as
    /// it ends. The runs come back in run order.
    pub fn run_many(
        &self,
        kernel: &Path,
        runs: u32,
        jobs: u32,
        on_run: &mut dyn FnMut(&Run),
    ) -> Result<Vec<Run>, VmError> {
        check_kernel_image(kernel)?;
        let next = std::sync::atomic::AtomicU32::new(1);
        let (tx, rx) = std::sync::mpsc::channel();
        let mut out = Vec::new();
        let mut first_error = None;
        std::thread::scope(|scope| {
            for _ in 0..jobs.clamp(1, runs.max(1)) {
                let tx = tx.clone();
                let next = &next;
                scope.spawn(move || loop {
                    let run = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if run > runs {
                        return;
                    }
                    let result = self.run_checked(kernel, run);
                    let stop = result.is_err();
                    if tx.send(result).is_err() || stop {
                        // An error (QEMU cannot start) stops this worker
                        // and, through `next`, the others.
                        next.store(runs + 1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                });
            }
            drop(tx);
            for result in rx {
                match result {
                    Ok(run) => {
                        on_run(&run);
                        out.push(run);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        out.sort_by_key(|r| r.run);
        Ok(out)
    }

    fn run_checked(&self, kernel: &Path, run: u32) -> Result<Run, VmError> {
        let (accel, probing) = self.accel.take();
        let started = unix_now();
        let console = self.boot(kernel, accel, probing);
        if probing {
            let works = matches!(&console, Ok(c) if c.kernel_spoke);
            if !works {
                self.accel.probe_failed();
                crate::notice(&format!(
                    "KVM does not run this kernel here ({}): using TCG (slower)",
                    match &console {
                        Ok(c) if c.ending == Ending::KvmSilent => {
                            format!("no kernel output within {}s", KVM_PROBE.as_secs())
                        }
                        Ok(c) if !c.qemu_stderr.is_empty() => {
                            format!("qemu: {}", c.qemu_stderr.lines().last().unwrap_or(""))
                        }
                        Ok(_) => "no kernel output".to_string(),
                        Err(e) => e.to_string(),
                    }
                ));
                let started = unix_now();
                let console = self.boot(kernel, Accel::Tcg, false)?;
                return Ok(self.classify(run, Accel::Tcg, console, started));
            }
            self.accel.settle(Accel::Kvm);
        }
        Ok(self.classify(run, accel, console?, started))
    }

    fn boot(&self, kernel: &Path, accel: Accel, probing: bool) -> Result<Console, VmError> {
        let cmdline = self.boot_cmdline(accel);
        qemu::boot(
            &Boot {
                qemu: &self.qemu,
                kernel,
                initramfs: &self.initramfs,
                cmdline: &cmdline,
                accel,
                memory_mb: self.settings.memory_mb,
                cpus: self.settings.cpus,
                kvm_probe: KVM_PROBE,
                boot_timeout: self.settings.boot_timeout,
                run_timeout: self.settings.budget + RUN_SLACK,
            },
            &|| {
                if probing {
                    self.accel.settle(Accel::Kvm);
                }
            },
        )
    }

    fn classify(&self, run: u32, accel: Accel, console: Console, started: f64) -> Run {
        let outcome = classify(&console, self.settings.boot_timeout);
        Run {
            run,
            outcome,
            accel,
            seconds: console.seconds,
            started,
            ended: started + console.seconds,
            console: console.bytes,
        }
    }
}

/// This boot of the host (the probe's verdict holds until a reboot).
fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Where a failed KVM probe is remembered: per user, in the temporary
/// directory (delete it to probe again).
fn kvm_verdict_file() -> PathBuf {
    // SAFETY: getuid(2) cannot fail.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("kcache-kvm-failed-{uid}"))
}

fn kvm_failed_since_boot() -> bool {
    boot_id().is_some_and(|boot| std::fs::read_to_string(kvm_verdict_file()).is_ok_and(|v| v.trim() == boot))
}

/// Now, in Unix seconds.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A run's outcome from its console and how the VM ended.
pub fn classify(c: &Console, boot_timeout: Duration) -> RunOutcome {
    let init_line = line_of(&c.bytes, qemu::INIT_START);
    if let Some(report) = crate::title::title(&c.bytes) {
        // `start_line` is 1-based, `init_line` 0-based.
        return match init_line {
            Some(init) if report.start_line > init + 1 => RunOutcome::Crash {
                title: report.title,
                class: report.class,
                corrupted: report.corrupted,
                report_line: report.start_line,
            },
            _ => RunOutcome::NoInfo(NoInfo::BootCrash(report.title)),
        };
    }
    if c.init_done {
        return RunOutcome::Ok {
            repro: repro_ending(&c.bytes),
        };
    }
    let last = last_line(&c.bytes);
    RunOutcome::NoInfo(match c.ending {
        _ if c.bytes.is_empty() => NoInfo::NoConsoleOutput,
        Ending::KvmSilent => NoInfo::KernelSilent(format!("KVM did not start the kernel; last line: {last}")),
        _ if !c.kernel_spoke && !c.qemu_stderr.is_empty() => {
            NoInfo::KernelSilent(format!("qemu said: {}", c.qemu_stderr.replace('\n', " | ")))
        }
        _ if !c.kernel_spoke => NoInfo::KernelSilent(format!("last line: {last}")),
        Ending::BootTimeout => NoInfo::DidNotBoot(format!(
            "init did not start within {}s; last line: {last}",
            boot_timeout.as_secs()
        )),
        _ if !c.init_started => NoInfo::DidNotBoot(format!("the VM ended before init started; last line: {last}")),
        Ending::RunTimeout => NoInfo::TimedOut(format!("the VM hung after the budget; last line: {last}")),
        Ending::Exited { .. } => NoInfo::VmEnded(format!("last line: {last}")),
    })
}

/// The first console line (0-based) containing `needle`.
fn line_of(console: &[u8], needle: &[u8]) -> Option<usize> {
    console.split(|&b| b == b'\n').position(|l| qemu::contains(l, needle))
}

fn last_line(console: &[u8]) -> String {
    let text = String::from_utf8_lossy(console);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
    line.chars().take(160).collect()
}

/// init's word on how the reproducer ended.
fn repro_ending(console: &[u8]) -> String {
    let text = String::from_utf8_lossy(console);
    text.lines()
        .filter_map(|l| l.split_once("kcache-init: ").map(|(_, rest)| rest.trim()))
        .find(|rest| rest.starts_with("repro ") || rest.starts_with("budget ") || rest.starts_with("cannot run"))
        .map(|rest| rest.strip_prefix("repro ").unwrap_or(rest).to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn check_settings(s: &Settings) -> Result<(), VmError> {
    if s.budget < Duration::from_secs(1) {
        return Err(VmError::Setting(
            "the reproducer's budget must be at least 1 second".into(),
        ));
    }
    if s.memory_mb < 128 {
        return Err(VmError::Setting(format!(
            "{} MB of VM memory: give at least 128",
            s.memory_mb
        )));
    }
    if s.cpus == 0 || s.cpus > 64 {
        return Err(VmError::Setting(format!("{} VM CPUs: give 1 to 64", s.cpus)));
    }
    if let Some(bad) = s
        .extra_cmdline
        .iter()
        .find(|a| a.chars().any(char::is_whitespace) || a.is_empty())
    {
        return Err(VmError::Setting(format!(
            "kernel command-line argument {bad:?}: one word each"
        )));
    }
    Ok(())
}

/// The image must be a file QEMU can boot with `-kernel`: a bzImage, not
/// the vmlinux ELF file beside it.
pub fn check_kernel_image(kernel: &Path) -> Result<(), VmError> {
    let bad = |problem: String| VmError::KernelImage {
        file: kernel.to_path_buf(),
        problem,
    };
    let mut head = [0u8; 0x206];
    let n = {
        use std::io::Read;
        let mut f = std::fs::File::open(kernel).map_err(|e| bad(format!("cannot open the kernel image: {e}")))?;
        f.read(&mut head)
            .map_err(|e| bad(format!("cannot read the kernel image: {e}")))?
    };
    if head.starts_with(b"\x7fELF") {
        return Err(bad(
            "is an ELF file (vmlinux?): give the boot image (arch/x86/boot/bzImage, kcache-out/boot-image)".into(),
        ));
    }
    if n < 0x206 || &head[0x202..0x206] != b"HdrS" {
        return Err(bad("is not an x86 boot image (no bzImage header)".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console(text: &str, ending: Ending) -> Console {
        Console {
            bytes: text.as_bytes().to_vec(),
            qemu_stderr: String::new(),
            ending,
            seconds: 1.0,
            kernel_spoke: text.contains("Linux version"),
            init_started: text.contains("kcache-init: start"),
            init_done: text.contains("kcache-init: done"),
        }
    }

    const EXITED: Ending = Ending::Exited { success: true };
    const T: Duration = Duration::from_secs(300);

    #[test]
    fn ok_when_init_finished_without_a_report() {
        let c = console(
            "[    0.000000] Linux version 6.1\nkcache-init: start budget=5\nkcache-init: repro exited status=0\nkcache-init: done\n",
            EXITED,
        );
        assert_eq!(
            classify(&c, T),
            RunOutcome::Ok {
                repro: "exited status=0".into()
            }
        );
    }

    const PANIC: &str =
        "[    3.1] sysrq: Trigger a crash\n[    3.2] Kernel panic - not syncing: sysrq triggered crash\n\
                         [    3.2] CPU: 1 PID: 86 Comm: repro Not tainted 6.1.0 #1\n[    3.2] Call Trace:\n\
                         [    3.2]  <TASK>\n[    3.2]  panic+0x118/0x2f4\n[    3.2]  sysrq_handle_crash+0x16/0x20\n\
                         [    3.2]  </TASK>\n";

    #[test]
    fn a_report_after_init_started_is_the_reproducers_crash() {
        let c = console(
            &format!("Linux version 6.1\nkcache-init: start budget=5\n{PANIC}"),
            EXITED,
        );
        match classify(&c, T) {
            RunOutcome::Crash { title, report_line, .. } => {
                assert_eq!(title, "kernel panic: sysrq triggered crash");
                assert_eq!(report_line, 4, "1-based line of `Kernel panic`");
            }
            other => panic!("{other:?}"),
        }
        // Before init started: the kernel did not boot; the reproducer never ran.
        let c = console(&format!("Linux version 6.1\n{PANIC}"), EXITED);
        assert_eq!(
            classify(&c, T),
            RunOutcome::NoInfo(NoInfo::BootCrash("kernel panic: sysrq triggered crash".into()))
        );
    }

    #[test]
    fn no_info_reasons() {
        assert_eq!(
            classify(&console("", EXITED), T),
            RunOutcome::NoInfo(NoInfo::NoConsoleOutput)
        );
        let edd = console("Probing EDD (edd=off to disable)... ok\n", Ending::KvmSilent);
        assert!(matches!(classify(&edd, T), RunOutcome::NoInfo(NoInfo::KernelSilent(_))));
        let slow = console(
            "[    0.000000] Linux version 6.1\n[    1.0] Run /init\n",
            Ending::BootTimeout,
        );
        assert!(matches!(classify(&slow, T), RunOutcome::NoInfo(NoInfo::DidNotBoot(_))));
        let hung = console("Linux version 6.1\nkcache-init: start budget=5\n", Ending::RunTimeout);
        assert!(matches!(classify(&hung, T), RunOutcome::NoInfo(NoInfo::TimedOut(_))));
        let gone = console("Linux version 6.1\nkcache-init: start budget=5\n", EXITED);
        assert!(matches!(classify(&gone, T), RunOutcome::NoInfo(NoInfo::VmEnded(_))));
    }

    #[test]
    fn summary_counts_and_rate() {
        let run = |n, outcome| Run {
            run: n,
            outcome,
            accel: Accel::Tcg,
            seconds: 1.0,
            started: 0.0,
            ended: 1.0,
            console: Vec::new(),
        };
        let crash = |t: &str| RunOutcome::Crash {
            title: t.into(),
            class: BugClass::Panic,
            corrupted: false,
            report_line: 3,
        };
        let s = Summary::of(&[
            run(1, crash("A")),
            run(2, RunOutcome::Ok { repro: "x".into() }),
            run(3, crash("B")),
            run(4, crash("A")),
            run(5, RunOutcome::NoInfo(NoInfo::NoConsoleOutput)),
        ]);
        assert_eq!((s.runs, s.crashed, s.ok, s.no_info), (5, 3, 1, 1));
        assert_eq!(s.reproduce_rate, Some(0.75));
        assert_eq!(
            s.titles[0],
            TitleCount {
                title: "A".into(),
                count: 2
            }
        );
        assert_eq!(Summary::of(&[]).reproduce_rate, None);
    }

    #[test]
    fn vmlinux_is_not_a_boot_image() {
        let dir = tempfile::tempdir().unwrap();
        let elf = dir.path().join("vmlinux");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01").unwrap();
        let e = check_kernel_image(&elf).unwrap_err().to_string();
        assert!(e.contains("vmlinux") && e.contains("boot image"), "{e}");
        let e = check_kernel_image(&dir.path().join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("cannot open"), "{e}");
    }
}
