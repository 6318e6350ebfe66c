//! No-op prediction: a commit whose difference from an already-built
//! commit touches nothing that build read has that build's kernel.
//!
//! A change is *safe* for a reference build when it
//! - does not modify, delete or retype a file of the build's input set,
//! - adds no file in a directory that holds an input (it could shadow an
//!   `#include` or be picked up by a Makefile wildcard), and
//! - touches no build driver: a Makefile, Kbuild, tools `Build` or `*.mk`
//!   file in a directory the build descended into or above one (and a
//!   Kbuild file beside an input: `include/asm-generic/Kbuild`), anything
//!   under `scripts/`, `tools/build/` or `tools/scripts/` (kbuild's and
//!   the tools build's own machinery), or a top-level file other than the
//!   few that no build reads (`MAINTAINERS`, `README`, ...). Kconfig files
//!   need no rule of their own: the input set lists every one that was
//!   read (from `include/config/auto.conf.cmd`); a set without that list
//!   treats every Kconfig file as a driver.
//!
//! Every rule errs towards building: a false "unsafe" costs one build, a
//! false "safe" would be a wrong verdict. The bisection driver still builds
//! the culprit and its parent for real, and a contradicted prediction
//! turns prediction off for the rest of the bisection.

use crate::signature::KernelSignature;
use std::collections::HashSet;

use serde::Serialize;

pub use crate::git::Change;
use crate::git::{GitError, Repo};
use crate::kernel::inputs::InputSet;
use crate::key::{BuildKey, CommitId};
use crate::store::{BuildRecord, Cache, StoreError};

/// Top-level files that no kernel build reads.
const INERT_TOP_LEVEL: &[&str] = &[
    ".clang-format",
    ".cocciconfig",
    ".get_maintainer.ignore",
    ".gitattributes",
    ".gitignore",
    ".mailmap",
    ".rustfmt.toml",
    "COPYING",
    "CREDITS",
    "MAINTAINERS",
    "README",
];

/// Why a change cannot be predicted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Blocker {
    pub path: String,
    pub why: &'static str,
}

/// What `kcache predict --json` prints for one commit.
#[derive(Debug, Clone, Serialize)]
pub struct CommitPrediction {
    pub commit: CommitId,
    pub references: Vec<Judgement>,
}

/// One reference build's say on a commit.
#[derive(Debug, Clone, Serialize)]
pub struct Judgement {
    pub reference: CommitId,
    pub signature: KernelSignature,
    pub same_kernel: bool,
    pub blocker: Option<Blocker>,
}

impl CommitPrediction {
    pub fn new(commit: &CommitId, judged: &[(&Reference, Option<Blocker>)]) -> CommitPrediction {
        CommitPrediction {
            commit: commit.clone(),
            references: judged
                .iter()
                .map(|(r, b)| Judgement {
                    reference: r.commit.clone(),
                    signature: r.signature.clone(),
                    same_kernel: b.is_none(),
                    blocker: b.clone(),
                })
                .collect(),
        }
    }
}

/// A reference build's input set, indexed for the rules.
pub struct Reference {
    pub commit: CommitId,
    pub signature: KernelSignature,
    pub build_key: BuildKey,
    files: HashSet<String>,
    /// Directories holding an input (a new file there could shadow one).
    dirs: HashSet<String>,
    /// Directories kbuild descended into, and every directory above them.
    build_dirs: HashSet<String>,
    /// Whether the set lists the Kconfig files read.
    lists_kconfig: bool,
    complete: bool,
}

impl Reference {
    pub fn new(commit: CommitId, signature: KernelSignature, set: &InputSet) -> Reference {
        let files: HashSet<String> = set.files.iter().cloned().collect();
        let dirs = files.iter().map(|f| parent_dir(f).to_string()).collect();
        let mut build_dirs = HashSet::from([String::new()]);
        for d in &set.dirs {
            let mut dir = d.as_str();
            while build_dirs.insert(dir.to_string()) {
                dir = parent_dir(dir);
            }
        }
        let lists_kconfig = files.iter().any(|f| file_name(f).starts_with("Kconfig"));
        Reference {
            commit,
            signature,
            build_key: set.build_key,
            files,
            dirs,
            build_dirs,
            lists_kconfig,
            complete: set.complete,
        }
    }

    /// The first change that keeps this build's kernel from predicting
    /// the other commit's, or `None` when every change is safe.
    pub fn blocker(&self, changes: &[Change]) -> Option<Blocker> {
        if !self.complete {
            return Some(Blocker {
                path: String::new(),
                why: "the reference build's input set is incomplete",
            });
        }
        changes.iter().find_map(|c| {
            let why = if self.is_build_driver(&c.path) {
                "a Makefile or build script the build reads changed"
            } else if self.files.contains(&c.path) {
                "a file the build read changed"
            } else if c.status == 'A' && self.dirs.contains(parent_dir(&c.path)) {
                "a new file beside files the build read could shadow one"
            } else {
                return None;
            };
            Some(Blocker {
                path: c.path.clone(),
                why,
            })
        })
    }
}

/// What prediction says of one commit.
pub enum Prediction<'r> {
    /// Same kernel as this reference's; `changed` files differ, none read.
    Same { reference: &'r Reference, changed: usize },
    /// No reference predicts it; the blocker is the first reference's.
    Unknown { blocker: Option<(&'r Reference, Blocker)> },
}

/// Tries the references in order (the caller puts the nearest first).
pub fn predict<'r>(repo: &Repo, references: &'r [Reference], commit: &CommitId) -> Result<Prediction<'r>, GitError> {
    let mut first_blocker = None;
    for reference in references {
        let changes = repo.changed_files(&reference.commit, commit)?;
        match reference.blocker(&changes) {
            None => {
                return Ok(Prediction::Same {
                    reference,
                    changed: changes.len(),
                })
            }
            Some(b) if first_blocker.is_none() => first_blocker = Some((reference, b)),
            Some(_) => {}
        }
    }
    Ok(Prediction::Unknown { blocker: first_blocker })
}

/// Every reference's judgement of one commit: `None` means "same kernel".
pub fn judge_all<'r>(
    repo: &Repo,
    references: &'r [Reference],
    commit: &CommitId,
) -> Result<Vec<(&'r Reference, Option<Blocker>)>, GitError> {
    references
        .iter()
        .map(|r| Ok((r, r.blocker(&repo.changed_files(&r.commit, commit)?))))
        .collect()
}

/// Every successful build in the cache with a recorded input set. Only
/// builds of one recipe and config predict each other: callers that mix
/// configs must compare build inputs themselves.
pub fn references_in_cache(cache: &Cache) -> Result<Vec<Reference>, StoreError> {
    // One index open for the whole scan: the sets and their build records.
    cache.view(|v| {
        let mut out = Vec::new();
        for set in v.input_sets()? {
            if let Some(BuildRecord {
                signature: Some(signature),
                commit,
                ..
            }) = v.build(&set.build_key)?
            {
                out.push(Reference::new(commit, signature, &set));
            }
        }
        Ok(out)
    })
}

impl Reference {
    /// Files that steer this build though no `.cmd` file lists them.
    fn is_build_driver(&self, path: &str) -> bool {
        if !path.contains('/') {
            return !INERT_TOP_LEVEL.contains(&path);
        }
        if ["scripts/", "tools/build/", "tools/scripts/"]
            .iter()
            .any(|d| path.starts_with(d))
        {
            return true;
        }
        let name = file_name(path);
        if name.starts_with("Kconfig") && !self.lists_kconfig {
            return true;
        }
        let dir = parent_dir(path);
        // include/asm-generic/Kbuild and the like list headers that
        // wrappers are generated for: read for the headers beside them.
        if name.starts_with("Kbuild") && self.dirs.contains(dir) {
            return true;
        }
        let makefile =
            name.starts_with("Makefile") || name.starts_with("Kbuild") || name == "Build" || name.ends_with(".mk");
        makefile && self.build_dirs.contains(dir)
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::inputs::INPUT_SET_SCHEMA;

    fn reference(files: &[&str]) -> Reference {
        reference_in(files, &["kernel", "fs", "arch/x86/kernel", "tools/objtool"])
    }

    fn reference_in(files: &[&str], dirs: &[&str]) -> Reference {
        let set = InputSet {
            schema: INPUT_SET_SCHEMA.into(),
            build_key: crate::key::BuildKey(crate::key::digest(b"r")),
            commit: "r".into(),
            complete: true,
            incomplete_reason: None,
            files: files.iter().map(|s| s.to_string()).collect(),
            dirs: dirs.iter().map(|s| s.to_string()).collect(),
        };
        Reference::new("r".into(), KernelSignature::parse(&"a".repeat(64)).unwrap(), &set)
    }

    fn change(status: char, path: &str) -> Change {
        Change {
            status,
            path: path.into(),
        }
    }

    #[test]
    fn changes_outside_the_input_set_are_safe() {
        let r = reference(&["kernel/fork.c", "include/linux/sched.h"]);
        let changes = [
            change('M', "drivers/net/ethernet/microsoft/mana/mana_en.c"),
            change('A', "include/net/mana/gdma.h"),
            change('D', "drivers/video/fbdev/nvidia/nv_i2c.c"),
            change('M', "Documentation/admin-guide/sysctl/kernel.rst"),
            change('M', "MAINTAINERS"),
        ];
        assert_eq!(r.blocker(&changes), None);
    }

    #[test]
    fn touching_an_input_blocks() {
        let r = reference(&["kernel/fork.c", "include/linux/sched.h"]);
        for c in [
            change('M', "kernel/fork.c"),
            change('D', "include/linux/sched.h"),
            change('T', "kernel/fork.c"),
        ] {
            assert_eq!(r.blocker(&[c]).unwrap().why, "a file the build read changed");
        }
    }

    #[test]
    fn a_new_file_beside_inputs_blocks() {
        let r = reference(&["include/linux/sched.h"]);
        let b = r.blocker(&[change('A', "include/linux/mana.h")]).unwrap();
        assert_eq!(b.path, "include/linux/mana.h");
        assert!(b.why.contains("shadow"));
    }

    #[test]
    fn makefiles_of_the_directories_the_build_visited_block() {
        let r = reference(&["arch/x86/Kconfig", "init/Kconfig", "include/asm-generic/bug.h"]);
        for p in [
            "Makefile",
            "fs/Kbuild",
            "arch/x86/kernel/Makefile",
            "arch/x86/Makefile",
            "arch/x86/Makefile_32.cpu",
            "arch/Makefile.inc",
            "scripts/setlocalversion",
            "scripts/Makefile.build",
            "tools/objtool/Build",
            "tools/build/Makefile.build",
            "tools/scripts/Makefile.include",
            "localversion-debian",
            "include/asm-generic/Kbuild",
        ] {
            assert!(r.blocker(&[change('M', p)]).is_some(), "{p}");
        }
        // Not read by this build: other architectures, documentation, a
        // driver directory it never descended into, an unread Kconfig.
        for p in [
            ".mailmap",
            "Documentation/Makefile",
            "arch/alpha/lib/Makefile",
            "arch/arm/boot/dts/Makefile",
            "drivers/net/ethernet/microsoft/mana/Makefile",
            "drivers/net/Kconfig",
        ] {
            assert!(r.blocker(&[change('M', p)]).is_none(), "{p}");
        }
    }

    #[test]
    fn without_the_kconfig_list_every_kconfig_blocks() {
        let r = reference_in(&["kernel/fork.c"], &["kernel"]);
        assert!(r.blocker(&[change('M', "drivers/net/Kconfig")]).is_some());
    }

    #[test]
    fn an_incomplete_input_set_never_predicts() {
        let mut set = InputSet {
            schema: INPUT_SET_SCHEMA.into(),
            build_key: crate::key::BuildKey(crate::key::digest(b"r")),
            commit: "r".into(),
            complete: false,
            incomplete_reason: Some("x".into()),
            files: vec![],
            dirs: vec![],
        };
        assert!(
            Reference::new("r".into(), KernelSignature::parse(&"b".repeat(64)).unwrap(), &set)
                .blocker(&[])
                .is_some()
        );
        set.complete = true;
        assert!(
            Reference::new("r".into(), KernelSignature::parse(&"b".repeat(64)).unwrap(), &set)
                .blocker(&[])
                .is_none()
        );
    }
}
