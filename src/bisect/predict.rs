//! No-op prediction: a commit whose difference from an already-built
//! commit touches nothing that build read has that build's kernel.
//!
//! A change is *safe* for a reference build when it
//! - does not modify, delete or retype a file of the build's input set,
//! - adds no file in a directory that holds an input (it could shadow an
//!   `#include` or be picked up by a Makefile wildcard), and
//! - touches no build driver: a Makefile, Kbuild, Kconfig or tools `Build`
//!   file anywhere, anything under `scripts/`, or a top-level file other
//!   than the few that no build reads (`MAINTAINERS`, `README`, ...).
//!
//! Every rule errs towards building: a false "unsafe" costs one build, a
//! false "safe" would be a wrong verdict. The bisection driver still builds
//! the culprit and its parent for real, and a contradicted prediction
//! turns prediction off for the rest of the bisection.

use std::collections::HashSet;

use serde::Serialize;

pub use crate::git::Change;
use crate::kernel::inputs::InputSet;

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

/// A reference build's input set, indexed for the rules.
pub struct Reference {
    pub commit: String,
    pub signature: String,
    files: HashSet<String>,
    dirs: HashSet<String>,
    complete: bool,
}

impl Reference {
    pub fn new(commit: String, signature: String, set: &InputSet) -> Reference {
        let files: HashSet<String> = set.files.iter().cloned().collect();
        let dirs = files.iter().map(|f| parent_dir(f).to_string()).collect();
        Reference {
            commit,
            signature,
            files,
            dirs,
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
            let why = if is_build_driver(&c.path) {
                "a Makefile, Kconfig or build script changed"
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

/// Files that steer every build, whether or not a `.cmd` file lists them.
pub fn is_build_driver(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    if !path.contains('/') {
        return !INERT_TOP_LEVEL.contains(&path);
    }
    path.starts_with("scripts/")
        || name.starts_with("Makefile")
        || name.starts_with("Kbuild")
        || name.starts_with("Kconfig")
        || name == "Build"
        || name.ends_with(".mk")
}

fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::inputs::INPUT_SET_SCHEMA;

    fn reference(files: &[&str]) -> Reference {
        let set = InputSet {
            schema: INPUT_SET_SCHEMA.into(),
            build_key: crate::key::digest(b"r"),
            commit: "r".into(),
            complete: true,
            incomplete_reason: None,
            files: files.iter().map(|s| s.to_string()).collect(),
        };
        Reference::new("r".into(), "sig".into(), &set)
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
    fn build_drivers_block_even_when_no_cmd_file_lists_them() {
        let r = reference(&[]);
        for p in [
            "Makefile",
            "drivers/net/Makefile",
            "drivers/net/Kconfig",
            "fs/Kbuild",
            "scripts/setlocalversion",
            "tools/objtool/Build",
            "localversion-debian",
            "arch/x86/Makefile_32.cpu",
        ] {
            assert!(r.blocker(&[change('M', p)]).is_some(), "{p}");
        }
        assert!(r.blocker(&[change('M', ".mailmap")]).is_none());
    }

    #[test]
    fn an_incomplete_input_set_never_predicts() {
        let mut set = InputSet {
            schema: INPUT_SET_SCHEMA.into(),
            build_key: crate::key::digest(b"r"),
            commit: "r".into(),
            complete: false,
            incomplete_reason: Some("x".into()),
            files: vec![],
        };
        assert!(Reference::new("r".into(), "s".into(), &set).blocker(&[]).is_some());
        set.complete = true;
        assert!(Reference::new("r".into(), "s".into(), &set).blocker(&[]).is_none());
    }
}
