//! The user's build and test commands as child processes that never
//! outlive kcache and can time out.
//!
//! Each command runs in a process group of its own. One *keeper* `sh` per
//! kcache process holds the list of live groups, fed through its stdin; when
//! kcache exits for any reason, `kill -9` included, the kernel closes that
//! pipe and the keeper kills every group still listed — `make`, the
//! compilers, a hung qemu. A command's shell waits for a "go" line that
//! kcache writes only after the keeper has its group, so a kcache killed
//! in between leaves nothing running either. Children start with
//! `posix_spawn` (no `fork` of kcache's address space, no extra program
//! per command: a toy test run is a few milliseconds, and each spawn
//! showed). A timeout kills the command's group from kcache's side.
//!
//! A process that leaves the group (`setsid`, a daemon) would escape both.
//! So each command also gets a variable of its own in its environment
//! (`KCACHE_CHILD_<kcache pid>_<n>=1`), which its descendants inherit
//! whatever their group or session: when the command ends or times out,
//! and when the keeper sees kcache die, every process carrying it is
//! killed too (found in `/proc/<pid>/environ`, which a user may read for
//! its own processes and root for all: no cgroup or privilege needed, and
//! concurrent commands and kcache processes each have their own mark). Only
//! a descendant that execs with a cleared environment escapes.
//!
//! Invariant: knows nothing of builds, tests or the cache; it only runs a
//! shell command and says how it ended.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

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

/// Why the shell could not run `script` (it exited 126 or 127), from its
/// first word as run in `dir`: a missing file, a file that is not
/// executable, a relative path (that means `dir`), or a command not in
/// `PATH`. Said instead of a guess (issue 27: a non-executable test given
/// by absolute path was told to use an absolute path).
pub fn why_not_run(script: &str, dir: &Path) -> String {
    let Some(first) = script.split_whitespace().next() else {
        return "the command is empty".into();
    };
    let word = first.trim_matches(|c| c == '\'' || c == '"');
    if !word.contains('/') {
        return format!("check that `{word}` is installed and in PATH");
    }
    let path = dir.join(word);
    let shown = path.display();
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(&path) {
        Err(_) if Path::new(word).is_relative() => format!(
            "`{word}` is relative and the command runs in {} (give it as an absolute path)",
            dir.display()
        ),
        Err(e) => format!("{shown}: {e}"),
        Ok(m) if m.is_dir() => format!("{shown} is a directory"),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => {
            format!("{shown} is not executable (`chmod +x {shown}`, or run it as `sh {shown}`)")
        }
        Ok(_) => format!("{shown} could not be run (its `#!` interpreter missing?)"),
    }
}

/// A command's shell: it starts the user's script only once kcache says
/// "go" (the keeper has its group by then); EOF instead means kcache died
/// first. The script runs with no stdin and no positional parameters, as
/// under `sh -c`; `eval` saves an exec.
const RUNNER: &str = r#"read -r kcache_go && [ "$kcache_go" = go ] || exit 1
exec </dev/null
kcache_script=$1; set --; eval "$kcache_script""#;

/// The keeper: `+ PGID MARK` adds a group and the mark of its command's
/// descendants, `- PGID` forgets one (it ended, and its id may be
/// reused); at EOF every listed group is killed, then every process still
/// carrying a listed mark (a detached descendant). Signals are ignored so
/// that a Ctrl-C reaching kcache's group does not end the keeper before it
/// has done its work.
const KEEPER: &str = r#"trap '' INT TERM HUP QUIT
groups=
while read -r op g mark; do
  case $op in
  +) groups="$groups $g:$mark" ;;
  -) kept=; for h in $groups; do [ "${h%%:*}" = "$g" ] || kept="$kept $h"; done; groups=$kept ;;
  esac
done
for h in $groups; do kill -9 -"${h%%:*}" 2>/dev/null; done
for h in $groups; do
  for e in /proc/[0-9]*/environ; do
    if tr '\0' '\n' < "$e" 2>/dev/null | grep -qx "${h#*:}=1"; then
      p=${e#/proc/}; kill -9 "${p%/environ}" 2>/dev/null
    fi
  done
done"#;

/// The environment variable that marks one command's descendants.
fn new_mark() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("KCACHE_CHILD_{}_{n}", std::process::id())
}

/// Kills every process whose environment carries `mark` (a descendant
/// of a command that left its group); again until none is left, since
/// one may fork while the last pass looked.
fn kill_marked(mark: &str) {
    let wanted = format!("{mark}=1");
    let me = std::process::id();
    for _ in 0..10 {
        let mut killed = 0;
        let Ok(procs) = std::fs::read_dir("/proc") else { return };
        for entry in procs.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if environ.split(|&b| b == 0).any(|v| v == wanted.as_bytes()) {
                // SAFETY: kill(2) of a process that carries our command's mark.
                if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                    killed += 1;
                }
            }
        }
        if killed == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `sh` found on `PATH`, looked up once (a `PATH` walk per spawn is an
/// `execve` per entry).
fn shell() -> &'static Path {
    static SH: OnceLock<PathBuf> = OnceLock::new();
    SH.get_or_init(|| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join("sh"))
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/bin/sh"))
    })
}

/// The keeper's stdin; `None` until the first command, or after the
/// keeper was found gone (the next command starts a new one).
fn keeper() -> &'static Mutex<Option<ChildStdin>> {
    static KEEPER_IN: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();
    KEEPER_IN.get_or_init(|| Mutex::new(None))
}

/// Sends one line to the keeper, starting it if needed.
fn tell_keeper(line: &str) -> std::io::Result<()> {
    let mut slot = keeper().lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..2 {
        if slot.is_none() {
            let mut child = Command::new(shell())
                .args(["-c", KEEPER, "kcache-keeper"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()?;
            *slot = child.stdin.take();
        }
        let sent = slot.as_mut().map(|w| w.write_all(line.as_bytes()));
        match sent {
            Some(Ok(())) => return Ok(()),
            // The keeper is gone (killed by someone): start another.
            _ => *slot = None,
        }
    }
    Err(std::io::Error::other("the process keeper cannot be started"))
}

/// Runs `spec`; every stdout line goes to `on_stdout` when there is no log.
pub fn run(spec: &Spec, mut on_stdout: impl FnMut(&str)) -> std::io::Result<Ending> {
    let mark = new_mark();
    let mut child = start(spec, &mark)?;
    let pgid = child.id() as i32;
    let watchdog = spec.timeout.map(|limit| Watchdog::start(pgid, &mark, limit));
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            on_stdout(&line);
        }
    }
    let status = child.wait();
    let timed_out = watchdog.is_some_and(Watchdog::stop);
    // Whatever the script left behind, in its group or not, goes with it.
    kill_group(pgid);
    kill_marked(&mark);
    // Best effort: a keeper that is gone has nothing to forget.
    let _ = tell_keeper(&format!("- {pgid}\n"));
    let status = status?;
    if timed_out {
        return Ok(Ending::TimedOut(spec.timeout.unwrap_or_default()));
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(Ending::Exited(
        status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
    ))
}

/// Spawns the command's shell in a group of its own, hands the group to
/// the keeper, then lets the script start.
fn start(spec: &Spec, mark: &str) -> std::io::Result<std::process::Child> {
    let mut cmd = Command::new(shell());
    cmd.args(["-c", RUNNER, "kcache-run"])
        .arg(spec.script)
        .current_dir(spec.dir)
        .stdin(Stdio::piped())
        .env(mark, "1")
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
    let go = tell_keeper(&format!("+ {pgid} {mark}\n")).and_then(|()| {
        let mut stdin = child.stdin.take().expect("piped");
        stdin.write_all(b"go\n")
    });
    if let Err(e) = go {
        kill_group(pgid);
        kill_marked(mark);
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

fn kill_group(pgid: i32) {
    // SAFETY: kill(2) on our own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// Kills a command's group once it has run `limit`.
struct Watchdog {
    timed_out: Arc<AtomicBool>,
    done: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Watchdog {
    fn start(pgid: i32, mark: &str, limit: Duration) -> Watchdog {
        let (timed_out, done) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let (t, d) = (timed_out.clone(), done.clone());
        let mark = mark.to_string();
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !d.load(Ordering::Relaxed) {
                if start.elapsed() >= limit {
                    t.store(true, Ordering::Relaxed);
                    kill_group(pgid);
                    // A detached descendant may hold the command's stdout
                    // open: reading it would not end until it is gone.
                    kill_marked(&mark);
                    return;
                }
                std::thread::sleep(Duration::from_millis(50).min(limit));
            }
        });
        Watchdog {
            timed_out,
            done,
            thread,
        }
    }

    /// Stops watching; whether the limit was reached.
    fn stop(self) -> bool {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.timed_out.load(Ordering::Relaxed)
    }
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

    /// The state of process `pid`: `None` when gone.
    fn state_of(pid: &str) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.rsplit(')').next().unwrap_or("").trim_start().chars().next()
    }

    /// Issue 36: a descendant that left the command's group and session
    /// (`setsid`) is killed when the command ends, and when it times out.
    #[test]
    fn detached_descendants_go_with_their_command() {
        let dir = tempfile::tempdir().unwrap();
        for (tail, timeout) in [("exit 0", None), ("sleep 30", Some(Duration::from_millis(300)))] {
            let pidfile = dir.path().join("detached");
            let _ = std::fs::remove_file(&pidfile);
            let script = format!(
                "setsid sh -c 'echo $$ > {}; exec sleep 300' </dev/null >/dev/null 2>&1 &
                 while [ ! -s {} ]; do sleep 0.01; done; {tail}",
                pidfile.display(),
                pidfile.display()
            );
            let end = run(
                &Spec {
                    log: Some(dir.path().join("log")),
                    ..spec(&script, dir.path(), timeout)
                },
                |_| {},
            )
            .unwrap();
            assert_eq!(end == Ending::Exited(0), timeout.is_none(), "{end:?}");
            let pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_string();
            let sid = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = (0..100)
                .map(|_| {
                    std::thread::sleep(Duration::from_millis(10));
                    state_of(&pid)
                })
                .find(|s| s.is_none() || *s == Some('Z'));
            assert!(state.is_some(), "the detached {pid} outlived its command: {sid}");
        }
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
