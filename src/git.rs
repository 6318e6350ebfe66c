//! The git repository being bisected, driven through the `git` command.
//!
//! kcache runs real git rather than a library so that commit selection is
//! git's own (`rev-list --bisect-all`), and worktrees, hooks and the user's
//! configuration behave exactly as they do for `git bisect`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::key::{CommitId, TreeId};

#[derive(Debug, thiserror::Error)]
#[error("git {args} (in {}): {problem}", dir.display())]
pub struct GitError {
    pub dir: PathBuf,
    pub args: String,
    pub problem: String,
}

#[derive(Debug, Clone)]
pub struct Repo {
    dir: PathBuf,
    /// Tree ids and subjects of full commit ids already asked for: a
    /// commit id names them for ever, and each question is a git process.
    known: Arc<Mutex<HashMap<String, Known>>>,
}

#[derive(Debug, Clone)]
struct Known {
    tree: TreeId,
    subject: String,
}

/// A candidate commit with git's bisection distance (higher splits better).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub commit: CommitId,
    pub dist: u64,
}

impl Repo {
    pub fn open(dir: &Path) -> Result<Repo, GitError> {
        let repo = Repo {
            dir: dir.to_path_buf(),
            known: Arc::default(),
        };
        repo.run(&["rev-parse", "--git-dir"])?;
        Ok(repo)
    }

    /// The repository whose work tree holds `dir` (`git bisect run` runs
    /// its command somewhere inside it), opened at its top level.
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let top = Repo::open(dir)?.run(&["rev-parse", "--show-toplevel"])?;
        Repo::open(Path::new(top.trim()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn run(&self, args: &[&str]) -> Result<String, GitError> {
        let err = |problem: String| GitError {
            dir: self.dir.clone(),
            args: args.join(" "),
            problem,
        };
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(args)
            .output()
            .map_err(|e| err(format!("cannot run git: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(err(stderr.trim().lines().last().unwrap_or("failed").to_string()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The full commit id a revision names.
    pub fn commit_id(&self, rev: &str) -> Result<String, GitError> {
        Ok(self
            .run(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])?
            .trim()
            .to_string())
    }

    /// The tree id of a commit: what decides a build.
    pub fn tree_id(&self, commit: &str) -> Result<TreeId, GitError> {
        Ok(self.known(commit)?.tree)
    }

    /// Tree ids of many commits at once.
    pub fn tree_ids(&self, commits: &[String]) -> Result<Vec<(String, TreeId)>, GitError> {
        self.learn(commits)?;
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        Ok(commits
            .iter()
            .filter_map(|c| known.get(c).map(|k| (c.clone(), k.tree.clone())))
            .collect())
    }

    /// What git says of a commit, asked once per commit id.
    fn known(&self, commit: &str) -> Result<Known, GitError> {
        let full = if is_full_id(commit) {
            commit.to_string()
        } else {
            self.commit_id(commit)?
        };
        self.learn(std::slice::from_ref(&full))?;
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(&full).cloned().ok_or_else(|| GitError {
            dir: self.dir.clone(),
            args: format!("log {full}"),
            problem: "git printed nothing for this commit".into(),
        })
    }

    /// Asks git, in one process, for the commits not yet known.
    fn learn(&self, commits: &[String]) -> Result<(), GitError> {
        let missing: Vec<&str> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            commits
                .iter()
                .filter(|c| !known.contains_key(*c))
                .map(String::as_str)
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let mut args = vec!["log", "--no-walk=unsorted", "--format=%H %T %s"];
        args.extend(&missing);
        let out = self.run(&args)?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for line in out.lines() {
            let mut parts = line.splitn(3, ' ');
            if let (Some(c), Some(t)) = (parts.next(), parts.next()) {
                let subject = parts.next().unwrap_or("").to_string();
                known.insert(
                    c.to_string(),
                    Known {
                        tree: TreeId::from_git(t),
                        subject,
                    },
                );
            }
        }
        Ok(())
    }

    pub fn parents(&self, commit: &str) -> Result<Vec<String>, GitError> {
        let out = self.run(&["rev-list", "--parents", "-n", "1", commit])?;
        Ok(out.split_whitespace().skip(1).map(str::to_string).collect())
    }

    /// `git show --stat` of a commit in the form syzbot quotes a culprit.
    pub fn show_stat(&self, commit: &str) -> Result<String, GitError> {
        self.run(&[
            "show",
            "--stat",
            "--format=commit %H%nAuthor: %an <%ae>%nDate:   %ad%n%n%w(0,4,4)%B",
            commit,
        ])
    }

    pub fn subject(&self, commit: &str) -> Result<String, GitError> {
        Ok(self.known(commit)?.subject)
    }

    /// Commits reachable from `bad` and from none of `goods`, with git's
    /// bisection distances, best split first (`git rev-list --bisect-all`).
    pub fn bisect_candidates(
        &self,
        bad: &str,
        goods: &[String],
        first_parent: bool,
    ) -> Result<Vec<Candidate>, GitError> {
        let mut args = vec!["rev-list", "--bisect-all"];
        if first_parent {
            args.push("--first-parent");
        }
        args.push(bad);
        let nots: Vec<String> = goods.iter().map(|g| format!("^{g}")).collect();
        args.extend(nots.iter().map(String::as_str));
        let out = self.run(&args)?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let (commit, rest) = l.split_once(' ')?;
                let dist = rest.trim().strip_prefix("(dist=")?.strip_suffix(')')?.parse().ok()?;
                Some(Candidate {
                    commit: CommitId::from(commit),
                    dist,
                })
            })
            .collect())
    }

    /// Whether `ancestor` is an ancestor of (or equal to) `descendant`.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["merge-base", "--is-ancestor", ancestor, descendant])
            .status()
            .map_err(|e| GitError {
                dir: self.dir.clone(),
                args: "merge-base --is-ancestor".into(),
                problem: e.to_string(),
            })?;
        Ok(out.success())
    }

    /// Creates (or reuses) a detached worktree at `path`.
    /// What changed between two commits' trees, renames as delete + add
    /// (plumbing, so no user diff settings apply).
    pub fn changed_files(&self, a: &str, b: &str) -> Result<Vec<Change>, GitError> {
        let out = self.run(&["diff-tree", "-r", "-z", "--no-renames", "--name-status", a, b])?;
        let mut fields = out.split('\0').filter(|f| !f.is_empty());
        let mut changes = Vec::new();
        while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
            changes.push(Change {
                status: status.chars().next().unwrap_or('M'),
                path: path.to_string(),
            });
        }
        Ok(changes)
    }

    /// Makes `path` a private clone of this repository for building:
    /// `--shared` (it reads this repository's objects through alternates,
    /// so commits made here later are there too, and it costs no copy)
    /// and registered nowhere in this repository, which keeps no trace of
    /// kcache. A linked worktree an older kcache left there is removed
    /// and unregistered first.
    pub fn ensure_build_tree(&self, path: &Path) -> Result<(), GitError> {
        let dot_git = path.join(".git");
        if dot_git.is_dir() {
            return Ok(());
        }
        if dot_git.is_file() {
            let _ = std::fs::remove_dir_all(path);
            let _ = self.run(&["worktree", "prune"]);
        }
        let _ = std::fs::remove_dir_all(path);
        // `git -C <repo> clone` reads relative paths from the repository.
        let absolute = |p: &Path| {
            std::fs::canonicalize(p)
                .or_else(|_| std::path::absolute(p))
                .unwrap_or(p.into())
        };
        let (source, target) = (absolute(&self.dir), absolute(path));
        self.run(&[
            "clone",
            "--quiet",
            "--shared",
            "--no-checkout",
            &source.to_string_lossy(),
            &target.to_string_lossy(),
        ])?;
        Ok(())
    }
}

/// One entry of `git diff-tree --name-status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// `A`dded, `D`eleted, `M`odified, `T`ype changed.
    pub status: char,
    pub path: String,
}

/// Checks out `commit` in a worktree, keeping untracked build outputs so
/// the next build is incremental.
pub fn checkout(worktree: &Path, commit: &str) -> Result<(), GitError> {
    Repo {
        dir: worktree.to_path_buf(),
        known: Arc::default(),
    }
    .run(&["checkout", "--quiet", "--force", "--detach", commit])
    .map(|_| ())
}

/// A full (40 or 64 hex digit) commit id, as opposed to a revision name.
fn is_full_id(rev: &str) -> bool {
    matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
