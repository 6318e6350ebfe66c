//! The git repository being bisected.
//!
//! Reading the commit graph (a range's commits and parents, ancestry,
//! merge bases, tags, revisions) is done in-process with `git2`: one walk
//! per range instead of a `git` process per commit. The real `git` stays
//! where only git's own semantics will do: the classic policy's commit
//! selection (`rev-list --bisect-all`), clones and checkouts for building
//! (hooks and the user's configuration behave as for `git bisect`), and
//! diffs between trees.

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
    known: Arc<Mutex<HashMap<CommitId, Known>>>,
    /// The repository opened in-process, once.
    library: Arc<Mutex<Library>>,
}

/// The in-process handle (`git2`'s has no `Debug`).
#[derive(Default)]
struct Library(Option<git2::Repository>);

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Library(open)"
        } else {
            "Library(closed)"
        })
    }
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
            library: Arc::default(),
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

    /// The full commit id a revision names (any revision git understands;
    /// read in-process).
    pub fn commit_id(&self, rev: &str) -> Result<CommitId, GitError> {
        self.with_library(&format!("rev-parse {rev}"), |r| {
            warn_if_ambiguous(r, rev);
            let object = r.revparse_single(rev)?;
            Ok(commit_of(object.peel_to_commit()?.id()))
        })
    }

    /// The tree id of a commit: what decides a build.
    pub fn tree_id(&self, commit: &CommitId) -> Result<TreeId, GitError> {
        Ok(self.known(commit)?.tree)
    }

    /// Tree ids of many commits at once.
    pub fn tree_ids(&self, commits: &[CommitId]) -> Result<Vec<(CommitId, TreeId)>, GitError> {
        self.learn(commits)?;
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        Ok(commits
            .iter()
            .filter_map(|c| known.get(c).map(|k| (c.clone(), k.tree.clone())))
            .collect())
    }

    /// What git says of a commit, asked once per commit id.
    fn known(&self, commit: &CommitId) -> Result<Known, GitError> {
        self.learn(std::slice::from_ref(commit))?;
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        known.get(commit).cloned().ok_or_else(|| GitError {
            dir: self.dir.clone(),
            args: format!("log {commit}"),
            problem: "git printed nothing for this commit".into(),
        })
    }

    /// Reads the commits not yet known (in-process, no `git` process).
    fn learn(&self, commits: &[CommitId]) -> Result<(), GitError> {
        let missing: Vec<CommitId> = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            commits.iter().filter(|c| !known.contains_key(*c)).cloned().collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let described = self.with_library("read commits", |r| {
            missing
                .iter()
                .map(|c| Ok(describe(&r.find_commit(git2::Oid::from_str(c)?)?)))
                .collect::<Result<Vec<_>, git2::Error>>()
        })?;
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (oid, tree, subject) in described {
            known.insert(
                commit_of(oid),
                Known {
                    tree: TreeId::from_git(&tree),
                    subject,
                },
            );
        }
        Ok(())
    }

    /// A commit's parents, first parent first.
    pub fn parents(&self, commit: &CommitId) -> Result<Vec<CommitId>, GitError> {
        self.with_library(&format!("parents of {commit}"), |r| {
            let c = r.find_commit(git2::Oid::from_str(commit)?)?;
            Ok(c.parent_ids().map(commit_of).collect())
        })
    }

    /// `git show --stat` of a commit in the form syzbot quotes a culprit.
    pub fn show_stat(&self, commit: &CommitId) -> Result<String, GitError> {
        self.run(&[
            "show",
            "--stat",
            "--format=commit %H%nAuthor: %an <%ae>%nDate:   %ad%n%n%w(0,4,4)%B",
            commit,
        ])
    }

    pub fn subject(&self, commit: &CommitId) -> Result<String, GitError> {
        Ok(self.known(commit)?.subject)
    }

    /// Commits reachable from `bad` and from none of `goods`, with git's
    /// bisection distances, best split first (`git rev-list --bisect-all`).
    pub fn bisect_candidates(
        &self,
        bad: &CommitId,
        goods: &[CommitId],
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
    pub fn is_ancestor(&self, ancestor: &CommitId, descendant: &CommitId) -> Result<bool, GitError> {
        self.with_library(&format!("merge-base --is-ancestor {ancestor} {descendant}"), |r| {
            let (a, d) = (git2::Oid::from_str(ancestor)?, git2::Oid::from_str(descendant)?);
            Ok(a == d || r.graph_descendant_of(d, a)?)
        })
    }

    /// Every best common ancestor of two commits (`git merge-base --all`).
    pub fn merge_bases(&self, a: &CommitId, b: &CommitId) -> Result<Vec<CommitId>, GitError> {
        self.with_library(&format!("merge-base --all {a} {b}"), |r| {
            match r.merge_bases(git2::Oid::from_str(a)?, git2::Oid::from_str(b)?) {
                Ok(bases) => Ok(bases.iter().copied().map(commit_of).collect()),
                Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
    }

    /// Tags whose name matches `glob` (git's wildcards) and that name a
    /// commit: (name, commit id, committer time), newest commit first.
    pub fn tags(&self, glob: &str) -> Result<Vec<Tag>, GitError> {
        self.with_library(&format!("tag --list {glob}"), |r| {
            let mut tags = Vec::new();
            for name in r.tag_names(Some(glob))?.iter().flatten() {
                let Ok(reference) = r.find_reference(&format!("refs/tags/{name}")) else {
                    continue;
                };
                let Ok(commit) = reference.peel_to_commit() else {
                    continue;
                };
                tags.push(Tag {
                    name: name.to_string(),
                    commit: commit_of(commit.id()),
                    time: commit.time().seconds(),
                });
            }
            tags.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.name.cmp(&a.name)));
            Ok(tags)
        })
    }

    /// The commits a bisection ranges over: those reachable from `tip` and
    /// from none of `bases` (as `git rev-list tip ^bases`), plus the
    /// *boundary*: their parents outside the range. One in-process walk.
    /// With `first_parent`, only first parents are followed (a line).
    pub fn range_graph(&self, tip: &CommitId, bases: &[CommitId], first_parent: bool) -> Result<RangeGraph, GitError> {
        let hidden: Vec<&str> = bases.iter().map(CommitId::as_str).collect();
        let walked = self.with_library(&format!("rev-list {tip} ^{}", hidden.join(" ^")), |r| {
            let mut walk = r.revwalk()?;
            walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)?;
            if first_parent {
                walk.simplify_first_parent()?;
            }
            walk.push(git2::Oid::from_str(tip)?)?;
            for b in bases {
                walk.hide(git2::Oid::from_str(b)?)?;
            }
            let mut walked = Vec::new();
            for oid in walk {
                let c = r.find_commit(oid?)?;
                let mut parents: Vec<git2::Oid> = c.parent_ids().collect();
                if first_parent {
                    parents.truncate(1);
                }
                walked.push((describe(&c), parents));
            }
            // The boundary's trees and subjects too: their kernels are
            // looked up like the range's.
            let inside: std::collections::HashSet<git2::Oid> = walked.iter().map(|(k, _)| k.0).collect();
            let mut boundary = Vec::new();
            for p in walked.iter().flat_map(|(_, ps)| ps) {
                if !inside.contains(p) && !boundary.iter().any(|(k, _): &(Described, _)| k.0 == *p) {
                    boundary.push((describe(&r.find_commit(*p)?), Vec::new()));
                }
            }
            let boundary_len = boundary.len();
            boundary.extend(walked);
            Ok((boundary_len, boundary))
        })?;
        Ok(self.graph_of(walked.0, walked.1))
    }

    /// Indexes walked commits (the boundary first, then the range in
    /// topological order) and keeps what was learnt of each.
    fn graph_of(&self, boundary_len: usize, walked: Vec<(Described, Vec<git2::Oid>)>) -> RangeGraph {
        let index: HashMap<git2::Oid, usize> = walked.iter().enumerate().map(|(i, (k, _))| (k.0, i)).collect();
        let mut graph = RangeGraph::default();
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        for (i, ((oid, tree, subject), parents)) in walked.into_iter().enumerate() {
            graph
                .parents
                .push(parents.iter().filter_map(|p| index.get(p).copied()).collect());
            graph.in_range.push(i >= boundary_len);
            let id = commit_of(oid);
            known.insert(
                id.clone(),
                Known {
                    tree: TreeId::from_git(&tree),
                    subject,
                },
            );
            graph.commits.push(id);
        }
        graph
    }

    /// Runs `f` on the repository opened in-process (opened on first use).
    fn with_library<T>(
        &self,
        what: &str,
        f: impl FnOnce(&git2::Repository) -> Result<T, git2::Error>,
    ) -> Result<T, GitError> {
        let err = |problem: String| GitError {
            dir: self.dir.clone(),
            args: what.to_string(),
            problem,
        };
        let mut library = self.library.lock().unwrap_or_else(|e| e.into_inner());
        if library.0.is_none() {
            library.0 = Some(git2::Repository::open(&self.dir).map_err(|e| err(e.message().to_string()))?);
        }
        let repo = library.0.as_ref().expect("opened above");
        f(repo).map_err(|e| err(e.message().to_string()))
    }

    /// Creates (or reuses) a detached worktree at `path`.
    /// What changed between two commits' trees, renames as delete + add
    /// (plumbing, so no user diff settings apply).
    pub fn changed_files(&self, a: &CommitId, b: &CommitId) -> Result<Vec<Change>, GitError> {
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

    /// The diff that turns commit `from`'s tree into `to`'s, binary files
    /// included, with full blob ids (what `git apply` and a revert need).
    pub fn diff(&self, from: &CommitId, to: &CommitId) -> Result<String, GitError> {
        self.run(&[
            "diff",
            "--binary",
            "--full-index",
            "--no-renames",
            "--no-color",
            from,
            to,
        ])
    }

    /// The newest commit reachable from `tip` (at most `limit` looked at)
    /// whose tree has, at every path, the pre-image blob a diff's `index`
    /// lines name (a prefix of its id): the commit the diff was made
    /// against, as syzkaller's base-for-diff finds it. `None` when no
    /// commit has them all (or the diff names no pre-image blob).
    pub fn base_for_blobs(
        &self,
        tip: &CommitId,
        blobs: &[(String, String)],
        limit: usize,
    ) -> Result<Option<CommitId>, GitError> {
        if blobs.is_empty() {
            return Ok(None);
        }
        self.with_library(&format!("base for blobs from {tip}"), |r| {
            let mut walk = r.revwalk()?;
            walk.push(git2::Oid::from_str(tip)?)?;
            walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::TIME)?;
            for oid in walk.take(limit) {
                let oid = oid?;
                let tree = r.find_commit(oid)?.tree()?;
                let all = blobs.iter().all(|(path, blob)| {
                    tree.get_path(Path::new(path))
                        .is_ok_and(|e| e.id().to_string().starts_with(blob.as_str()))
                });
                if all {
                    return Ok(Some(commit_of(oid)));
                }
            }
            Ok(None)
        })
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

/// A commit as the walk saw it: id, tree id, subject.
type Described = (git2::Oid, String, String);

fn describe(c: &git2::Commit) -> Described {
    (c.id(), c.tree_id().to_string(), c.summary().unwrap_or("").to_string())
}

/// A tag naming a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    pub commit: CommitId,
    /// The commit's committer time (unix seconds).
    pub time: i64,
}

/// A range's commits as a DAG: the boundary (parents of range commits
/// outside the range) first, then the range in topological order, every
/// parent before its child; the tip is the last node when the range is not
/// empty. `parents[i]` are indices; a boundary node lists none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeGraph {
    pub commits: Vec<CommitId>,
    pub parents: Vec<Vec<usize>>,
    pub in_range: Vec<bool>,
}

impl RangeGraph {
    /// The node of a commit.
    pub fn index_of(&self, commit: &CommitId) -> Option<usize> {
        self.commits.iter().position(|c| c == commit)
    }

    /// Makes `commit` a node (a base node in front, with no parents) when
    /// it is not one: a fix bisection's crashing end, for instance, whose
    /// own kernel must be asked even when the range's boundary is older.
    pub fn ensure_base(&mut self, commit: &CommitId) {
        if self.index_of(commit).is_some() {
            return;
        }
        self.commits.insert(0, commit.clone());
        self.in_range.insert(0, false);
        for ps in &mut self.parents {
            ps.iter_mut().for_each(|p| *p += 1);
        }
        self.parents.insert(0, Vec::new());
    }

    /// Commits in the range.
    pub fn range_len(&self) -> usize {
        self.in_range.iter().filter(|r| **r).count()
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
pub fn checkout(worktree: &Path, commit: &CommitId) -> Result<(), GitError> {
    Repo {
        dir: worktree.to_path_buf(),
        known: Arc::default(),
        library: Arc::default(),
    }
    .run(&["checkout", "--quiet", "--force", "--detach", commit])
    .map(|_| ())
}

/// A patch that does not apply on a tree: the files (with the line of the
/// hunk) git names, and git's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyFailure {
    /// `path:line` of each hunk that failed, else each path git names.
    pub hunks: Vec<String>,
    pub message: String,
}

impl ApplyFailure {
    /// The files of the failed hunks, each once.
    pub fn files(&self) -> Vec<String> {
        let mut files: Vec<String> = Vec::new();
        for h in &self.hunks {
            let file = h
                .rsplit_once(':')
                .filter(|(_, l)| l.parse::<u32>().is_ok())
                .map_or(h.as_str(), |(f, _)| f);
            if !files.iter().any(|f| f == file) {
                files.push(file.to_string());
            }
        }
        files
    }
}

/// Applies `patch` (a git diff or an mbox of one) to the checkout in
/// `worktree` and its index (`git apply --index`), so the next checkout
/// undoes it; a patch that does not apply changes nothing and says why.
pub fn apply_patch(worktree: &Path, patch: &Path) -> Result<Result<(), ApplyFailure>, GitError> {
    let err = |problem: String| GitError {
        dir: worktree.to_path_buf(),
        args: format!("apply --index {}", patch.display()),
        problem,
    };
    let out = Command::new("git")
        .arg("-C")
        .arg(worktree)
        .args(["apply", "--index"])
        .arg(patch)
        .output()
        .map_err(|e| err(format!("cannot run git: {e}")))?;
    if out.status.success() {
        return Ok(Ok(()));
    }
    let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Ok(Err(ApplyFailure {
        hunks: failed_hunks(&message),
        message,
    }))
}

/// `file:line` of every "patch failed" line of `git apply`'s errors, else
/// the file of every "does not apply" / "does not exist" / "already exists".
fn failed_hunks(stderr: &str) -> Vec<String> {
    let failed: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: patch failed: "))
        .map(|h| h.trim().to_string())
        .collect();
    if !failed.is_empty() {
        return failed;
    }
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: "))
        .filter_map(|l| l.split_once(": "))
        .map(|(file, _)| file.to_string())
        .collect()
}

/// What a patch (a git diff, or an mbox of one) says of its base: the
/// `base-commit:` trailer `git format-patch --base` and `b4` write, and
/// (path, pre-image blob id or its prefix) of every file it changes that
/// existed before (its `index` lines).
pub fn patch_base_hints(patch: &str) -> (Option<String>, Vec<(String, String)>) {
    let trailer = patch
        .lines()
        .find_map(|l| l.strip_prefix("base-commit: "))
        .map(|c| c.trim().to_string());
    let mut blobs = Vec::new();
    let mut path: Option<String> = None;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            path = rest.split(" b/").next().map(str::to_string);
        } else if let (Some(rest), Some(p)) = (line.strip_prefix("index "), &path) {
            let pre = rest.split("..").next().unwrap_or("");
            if !pre.is_empty() && pre.bytes().any(|b| b != b'0') && !blobs.iter().any(|(q, _)| q == p) {
                blobs.push((p.clone(), pre.to_string()));
            }
        }
    }
    (trailer, blobs)
}

/// The tree the index of `worktree` holds (after [`apply_patch`]).
pub fn index_tree(worktree: &Path) -> Result<TreeId, GitError> {
    let repo = Repo {
        dir: worktree.to_path_buf(),
        known: Arc::default(),
        library: Arc::default(),
    };
    Ok(TreeId::from_git(&repo.run(&["write-tree"])?))
}

/// The id of a commit git2 found (git's own full hex).
/// Says, as `git rev-parse` does, when a name is both a branch and a tag
/// (say): the library takes the first in git's order without a word.
fn warn_if_ambiguous(r: &git2::Repository, rev: &str) {
    // Only a plain name can be ambiguous (`v1^`, `HEAD~2` are read as
    // their plain part would be, and that is said when it is given alone).
    if rev.is_empty() || rev.contains(['^', '~', ':', '@', '{']) || rev.starts_with("refs/") {
        return;
    }
    let mut found: Vec<String> = [
        format!("refs/{rev}"),
        format!("refs/tags/{rev}"),
        format!("refs/heads/{rev}"),
        format!("refs/remotes/{rev}"),
        format!("refs/remotes/{rev}/HEAD"),
    ]
    .into_iter()
    .filter(|name| r.find_reference(name).is_ok())
    .collect();
    // A name that is also an abbreviated commit id.
    if rev.len() >= 4 && rev.bytes().all(|b| b.is_ascii_hexdigit()) && !found.is_empty() {
        if let Ok(obj) = r.find_object_by_prefix(rev, None) {
            found.push(format!("object {}", obj.id()));
        }
    }
    // Said once per name, however often it is resolved.
    static SAID: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let first_time = || {
        let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
        let new = !said.iter().any(|r| r == rev);
        if new {
            said.push(rev.to_string());
        }
        new
    };
    if found.len() > 1 && first_time() {
        crate::warn(&format!(
            "refname '{rev}' is ambiguous ({}): using {} (give the full name to choose)",
            found.join(", "),
            found[0]
        ));
    }
}

fn commit_of(oid: git2::Oid) -> CommitId {
    CommitId::from(oid.to_string())
}
