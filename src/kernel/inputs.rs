//! The input set of a kbuild build: every tracked file it read.
//!
//! kbuild leaves a `.NAME.cmd` file beside every target it made, with the
//! command (`cmd_T :=` or, from v6.2, `savedcmd_T :=`), the source
//! (`source_T :=`) and every header the compiler opened (`deps_T :=`, one
//! per continuation line, written by `fixdep`). `include/config/auto.conf.cmd`
//! lists every Kconfig file read (`deps_config :=`). The union of those,
//! plus any file the commands name on their command lines (linker scripts,
//! awk scripts, opcode maps), is what the build read from the tree.
//! Makefiles are not listed anywhere, but kbuild reads the Makefile (or
//! Kbuild file) of every directory it descends into, and those are the
//! directories that hold `.cmd` files: the set records them too.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::key::CommitId;

pub use crate::store::{InputSet, INPUT_SET_SCHEMA};

#[derive(Debug, thiserror::Error)]
#[error("reading kbuild's record of {}: {source}", path.display())]
pub struct InputsError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Collects the input set of the kbuild build in `tree`; `None` when the
/// tree holds no kbuild `.cmd` files (not a kbuild build).
pub fn record(
    tree: &Path,
    build_key: crate::key::BuildKey,
    commit: &CommitId,
) -> Result<Option<InputSet>, InputsError> {
    let mut cmd_files = Vec::new();
    find_cmd_files(tree, &mut cmd_files)?;
    if cmd_files.is_empty() {
        return Ok(None);
    }
    let real_tree = tree.canonicalize().unwrap_or_else(|_| tree.to_path_buf());
    let mut files = BTreeSet::new();
    let mut dirs = BTreeSet::new();
    for path in &cmd_files {
        let text = std::fs::read(path).map_err(|source| InputsError {
            path: path.clone(),
            source,
        })?;
        let dir = path
            .parent()
            .and_then(|d| d.strip_prefix(tree).ok())
            .unwrap_or(Path::new(""));
        if path.file_name().is_some_and(|n| n != "auto.conf.cmd") {
            dirs.insert(dir.to_string_lossy().into_owned());
        }
        for candidate in referenced_paths(&String::from_utf8_lossy(&text)) {
            if let Some(rel) = resolve(tree, &real_tree, dir, &candidate) {
                files.insert(rel);
            }
        }
    }
    let reason = incomplete_reason(tree);
    Ok(Some(InputSet {
        schema: INPUT_SET_SCHEMA.into(),
        build_key,
        commit: commit.clone(),
        complete: reason.is_none(),
        incomplete_reason: reason,
        files: files.into_iter().collect(),
        dirs: dirs.into_iter().collect(),
    }))
}

/// Why kbuild's records miss inputs of this build, if they do.
/// `CONFIG_IKHEADERS` archives every header through a script whose file
/// list no `.cmd` file records.
pub fn incomplete_reason(tree: &Path) -> Option<String> {
    let config = std::fs::read_to_string(tree.join(".config")).ok()?;
    config
        .lines()
        .any(|l| l.trim() == "CONFIG_IKHEADERS=y")
        .then(|| "CONFIG_IKHEADERS=y archives headers that kbuild's .cmd files do not list".to_string())
}

fn find_cmd_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InputsError> {
    let err = |source| InputsError {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type().map_err(err)?;
        if kind.is_dir() {
            if name != ".git" && name != "kcache-out" {
                find_cmd_files(&entry.path(), out)?;
            }
        } else if kind.is_file() && name.ends_with(".cmd") && (name.starts_with('.') || name == "auto.conf.cmd") {
            out.push(entry.path());
        }
    }
    Ok(())
}

/// Every path a `.cmd` file names: sources, dependencies and the words of
/// the saved command that look like paths. Config dependencies
/// (`$(wildcard include/config/...)`) are left out: the config is part of
/// the build key.
pub fn referenced_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let continued = line.trim_end().ends_with('\\');
        let body = line.trim_end().trim_end_matches('\\').trim();
        if in_deps {
            add_dep(body, &mut out);
            in_deps = continued;
            continue;
        }
        let Some((name, value)) = body.split_once(":=") else {
            continue;
        };
        let name = name.trim();
        if name.starts_with("deps_") {
            add_dep(value.trim(), &mut out);
            in_deps = continued;
        } else if name.starts_with("source_") {
            out.extend(value.split_whitespace().map(str::to_string));
        } else if name.starts_with("cmd_") || name.starts_with("savedcmd_") {
            out.extend(command_words(value));
        }
    }
    out
}

fn add_dep(entry: &str, out: &mut Vec<String>) {
    if entry.is_empty() || entry.starts_with("$(wildcard") {
        return;
    }
    out.extend(entry.split_whitespace().map(str::to_string));
}

/// Words of a command that may name a file: split at blanks and at the
/// `=`, `,` and quotes that glue paths to options (`-Wp,-MMD,dir/.x.d`,
/// `-T arch/x86/kernel/vmlinux.lds`, `--script=FILE`).
fn command_words(cmd: &str) -> impl Iterator<Item = String> + '_ {
    cmd.split(|c: char| c.is_whitespace() || matches!(c, '=' | ',' | '\'' | '"' | ';' | '<' | '>' | '|'))
        .map(|w| w.strip_prefix("-I").unwrap_or(w))
        .filter(|w| w.contains('/') || w.contains('.'))
        .filter(|w| !w.starts_with('-') && !w.starts_with('$'))
        .map(str::to_string)
}

/// The tree-relative form of a path named in a `.cmd` file in `dir`, if it
/// is a file inside the tree. Relative names are tried from the tree root
/// (kbuild's working directory) and then from `dir` (tools/ builds).
fn resolve(tree: &Path, real_tree: &Path, dir: &Path, name: &str) -> Option<String> {
    let path = Path::new(name);
    let candidates: Vec<PathBuf> = if path.is_absolute() {
        // tools/ builds write absolute paths, from the real (canonical) tree path.
        let inside = path
            .strip_prefix(tree)
            .ok()
            .or_else(|| path.strip_prefix(real_tree).ok())?;
        vec![inside.to_path_buf()]
    } else {
        vec![path.to_path_buf(), dir.join(path)]
    };
    candidates.into_iter().find_map(|c| {
        let rel = normalize(&c)?;
        tree.join(&rel).is_file().then(|| rel.to_string_lossy().into_owned())
    })
}

/// `./a/../b/c` -> `b/c`; `None` if it climbs out of the tree.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shortened from a real v6.1 kbuild record (kernel/locking/.mutex.o.cmd).
    const MUTEX_CMD: &str = "cmd_kernel/locking/mutex.o := gcc -Wp,-MMD,kernel/locking/.mutex.o.d -nostdinc \
-I./arch/x86/include -include ./include/linux/kconfig.h -D__KERNEL__ -c -o kernel/locking/mutex.o kernel/locking/mutex.c \
; ./tools/objtool/objtool --hacks=jump_label --orc kernel/locking/mutex.o

source_kernel/locking/mutex.o := kernel/locking/mutex.c

deps_kernel/locking/mutex.o := \\
  include/linux/compiler-version.h \\
    $(wildcard include/config/CC_VERSION_TEXT) \\
  include/linux/kconfig.h \\
  arch/x86/include/asm/static_call.h \\
  kernel/locking/mutex.h \\

kernel/locking/mutex.o: $(deps_kernel/locking/mutex.o)

$(deps_kernel/locking/mutex.o):

kernel/locking/mutex.o: $(wildcard ./tools/objtool/objtool)
";

    #[test]
    fn cmd_file_paths_cover_source_deps_and_command_words() {
        let paths = referenced_paths(MUTEX_CMD);
        for want in [
            "kernel/locking/mutex.c",
            "include/linux/compiler-version.h",
            "include/linux/kconfig.h",
            "./include/linux/kconfig.h",
            "arch/x86/include/asm/static_call.h",
            "kernel/locking/mutex.h",
            "./tools/objtool/objtool",
        ] {
            assert!(paths.iter().any(|p| p == want), "missing {want} in {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.contains("include/config/")), "{paths:?}");
        assert!(
            !paths.iter().any(|p| p.starts_with('-') || p.starts_with('$')),
            "{paths:?}"
        );
    }

    #[test]
    fn kconfig_list_and_savedcmd_are_read() {
        let text = "deps_config := \\\n\tarch/x86/Kconfig \\\n\tinit/Kconfig\n\n\
                    savedcmd_vmlinux.o := ld -m elf_x86_64 --script=arch/x86/kernel/vmlinux.lds\n";
        let paths = referenced_paths(text);
        assert_eq!(
            paths,
            ["arch/x86/Kconfig", "init/Kconfig", "arch/x86/kernel/vmlinux.lds"]
        );
    }

    #[test]
    fn record_resolves_relative_to_the_root_then_the_cmd_dir() {
        let tree = tempfile::tempdir().unwrap();
        let t = tree.path();
        for f in [
            "kernel/a.c",
            "include/linux/x.h",
            "tools/objtool/check.c",
            "tools/include/t.h",
            "README",
        ] {
            std::fs::create_dir_all(t.join(f).parent().unwrap()).unwrap();
            std::fs::write(t.join(f), "x").unwrap();
        }
        std::fs::write(
            t.join("kernel/.a.o.cmd"),
            "source_kernel/a.o := kernel/a.c\ndeps_kernel/a.o := \\\n  include/linux/x.h \\\n  include/generated/gone.h \\\n\n",
        )
        .unwrap();
        let abs = t.join("tools/include/t.h");
        std::fs::write(
            t.join("tools/objtool/.check.o.cmd"),
            format!(
                "deps_check.o := \\\n  check.c \\\n  {} \\\n  /usr/lib/gcc/stddef.h\n",
                abs.display()
            ),
        )
        .unwrap();
        let set = record(t, crate::key::BuildKey(crate::key::digest(b"k")), &"c0ffee".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            set.files,
            [
                "include/linux/x.h",
                "kernel/a.c",
                "tools/include/t.h",
                "tools/objtool/check.c"
            ]
        );
        // The tree reached through a symlink: absolute paths are the real ones.
        let link = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(t, link.path().join("tree")).unwrap();
        let via_link = record(
            &link.path().join("tree"),
            crate::key::BuildKey(crate::key::digest(b"k")),
            &"c0ffee".into(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(via_link.files, set.files);
        assert_eq!(set.dirs, ["kernel", "tools/objtool"]);
        assert!(set.complete);
        std::fs::write(t.join(".config"), "CONFIG_IKHEADERS=y\n").unwrap();
        assert!(
            !record(t, crate::key::BuildKey(crate::key::digest(b"k")), &"c0ffee".into())
                .unwrap()
                .unwrap()
                .complete
        );
    }

    #[test]
    fn a_tree_without_cmd_files_has_no_input_set() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(tree.path().join("main.c"), "int x;").unwrap();
        assert!(
            record(tree.path(), crate::key::BuildKey(crate::key::digest(b"k")), &"c".into())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn normalize_stays_inside_the_tree() {
        assert_eq!(normalize(Path::new("./a/../b/c")), Some(PathBuf::from("b/c")));
        assert_eq!(normalize(Path::new("../x")), None);
    }
}
