//! The user's build and test commands as child processes that never
//! outlive kcache and can time out.
//!
//! Each command runs in a process group of its own, led by a small `sh`
//! that kcache's death reaches: the kernel sends it SIGTERM when kcache
//! exits for any reason, `kill -9` included (`PR_SET_PDEATHSIG`, set by
//! util-linux's `setpriv` so that the child is started with `posix_spawn`:
//! a `fork` of kcache's address space cost more than a toy test run), and
//! its trap kills the whole group — `make`, the compilers, a hung qemu. A
//! timeout kills the same group from kcache's side.
//!
//! Invariant: knows nothing of builds, tests or the cache; it only runs a
//! shell command and says how it ended.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status (a signal that killed the command itself
    /// shows as 128 + the signal's number, as in the shell).
    Exited(i32),
    /// It ran longer than its limit and was killed with its group.
    TimedOut(Duration),
}

/// What to run, where, and with what.
pub struct Spec<'a> {
    pub script: &'a str,
    pub dir: &'a Path,
    pub env: Vec<(&'a str, std::ffi::OsString)>,
    pub timeout: Option<Duration>,
    /// Where stdout and stderr go; `None`: stdout is read line by line (to
    /// `on_stdout`) and stderr is kcache's.
    pub log: Option<PathBuf>,
}

/// The wrapper: the user's script runs as a child of a guard shell that
/// leads the process group; on SIGTERM or SIGHUP the guard kills the group.
/// `$2` is kcache's pid: a guard whose parent is already someone else was
/// orphaned before `setpriv` armed the death signal, and must not run.
/// The script runs in a background subshell (`eval`, one exec less than
/// `sh -c`, which a toy test run notices), with the trap reset and no
/// positional parameters, as under `sh -c`.
const GUARD: &str = r#"trap 'trap - TERM HUP; kill -KILL 0' TERM HUP
[ "$PPID" = "$2" ] || exit 1
(trap - TERM HUP; kcache_script=$1; set --; eval "$kcache_script") &
wait $!"#;

/// Runs `spec`; every stdout line goes to `on_stdout` when there is no log.
pub fn run(spec: &Spec, mut on_stdout: impl FnMut(&str)) -> std::io::Result<Ending> {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "TERM", "--", "sh", "-c", GUARD, "kcache-guard"])
        .arg(spec.script)
        .arg(std::process::id().to_string())
        .current_dir(spec.dir)
        .stdin(Stdio::null())
        .process_group(0);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    match &spec.log {
        Some(path) => {
            let log = std::fs::File::create(path)?;
            cmd.stdout(log.try_clone()?).stderr(log);
        }
        None => {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        }
    }
    let mut child = cmd.spawn()?;
    let pgid = child.id() as i32;
    let timed_out = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    let watchdog = spec.timeout.map(|limit| {
        let (timed_out, done) = (timed_out.clone(), done.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::Relaxed) {
                if start.elapsed() >= limit {
                    timed_out.store(true, Ordering::Relaxed);
                    // SAFETY: kill(2) on our own child's process group.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(limit));
            }
        })
    });
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            on_stdout(&line);
        }
    }
    let status = child.wait();
    done.store(true, Ordering::Relaxed);
    if let Some(w) = watchdog {
        let _ = w.join();
    }
    // Whatever the script left behind in its group goes with it.
    // SAFETY: kill(2) on our own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let status = status?;
    if timed_out.load(Ordering::Relaxed) {
        return Ok(Ending::TimedOut(spec.timeout.unwrap_or_default()));
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(Ending::Exited(
        status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(script: &'a str, dir: &'a Path, timeout: Option<Duration>) -> Spec<'a> {
        Spec {
            script,
            dir,
            env: vec![("KCACHE_X", "x".into())],
            timeout,
            log: None,
        }
    }

    #[test]
    fn exit_status_stdout_and_environment() {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = Vec::new();
        let end = run(&spec("echo $KCACHE_X; echo two; exit 3", dir.path(), None), |l| {
            lines.push(l.to_string())
        })
        .unwrap();
        assert_eq!(end, Ending::Exited(3));
        assert_eq!(lines, ["x", "two"]);
    }

    #[test]
    fn a_timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let script = format!("sleep 30 & echo $! > {}; wait", pidfile.display());
        let start = Instant::now();
        let end = run(&spec(&script, dir.path(), Some(Duration::from_millis(300))), |_| {}).unwrap();
        assert_eq!(end, Ending::TimedOut(Duration::from_millis(300)));
        assert!(start.elapsed() < Duration::from_secs(10));
        let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
        std::thread::sleep(Duration::from_millis(200));
        // Gone, or a zombie waiting for init to reap it.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start().chars().next();
        assert!(
            state.is_none() || state == Some('Z'),
            "the grandchild {pid} outlived the timeout: {stat}"
        );
    }
}
