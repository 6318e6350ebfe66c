//! Toy kernel histories made with real git: every commit writes (or
//! deletes) one C file of a toy program that gcc builds into `vmlinux`,
//! whose run prints a BUG line when the bug is linked in.

use std::path::{Path, PathBuf};

use super::git;

/// A toy "kernel": `vmlinux` crashes when `bug_on` is linked in, or when
/// both `feature_a` and `feature_b` are (each alone is fine).
pub const MAIN_C: &str = r#"#include <stdio.h>
__attribute__((weak)) int bug_on;
__attribute__((weak)) int feature_a;
__attribute__((weak)) int feature_b;
int main(void)
{
	if (bug_on || (feature_a && feature_b)) {
		puts("BUG: toy crash in main");
		return 1;
	}
	puts("toy kernel booted");
	return 0;
}
"#;

/// Always relinked: going back in history deletes files, which make's
/// timestamps would not notice.
pub const MAKEFILE: &str = ".PHONY: vmlinux\nvmlinux: $(sort $(wildcard *.c))\n\tgcc -O2 -o $@ $^\n";

pub const TITLE: &str = "BUG: toy crash in main";

/// A repository made commit by commit: every commit writes (or deletes)
/// one C file, so every commit changes the kernel unless told otherwise.
pub struct History {
    pub repo: PathBuf,
    n: usize,
}

impl History {
    pub fn new(dir: &Path) -> History {
        let repo = dir.join("repo");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "master"]);
        git(&repo, &["config", "user.name", "t"]);
        git(&repo, &["config", "user.email", "t@t"]);
        git(&repo, &["config", "commit.gpgsign", "false"]);
        std::fs::write(repo.join("main.c"), MAIN_C).unwrap();
        std::fs::write(repo.join("Makefile"), MAKEFILE).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "init"]);
        History { repo, n: 0 }
    }

    /// A commit that changes the kernel (a new function in a new file).
    pub fn change(&mut self, subject: &str) -> String {
        self.n += 1;
        let name = format!("f{}.c", self.n);
        self.write(&name, &format!("int f{0}(void) {{ return {0}; }}\n", self.n), subject)
    }

    pub fn write(&mut self, file: &str, text: &str, subject: &str) -> String {
        std::fs::write(self.repo.join(file), text).unwrap();
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "-m", subject]);
        self.head()
    }

    pub fn delete(&mut self, file: &str, subject: &str) -> String {
        git(&self.repo, &["rm", "-q", file]);
        git(&self.repo, &["commit", "-q", "-m", subject]);
        self.head()
    }

    pub fn bug(&mut self, subject: &str) -> String {
        self.write("bug.c", "int bug_on = 1;\n", subject)
    }

    pub fn branch(&self, name: &str, from: &str) {
        git(&self.repo, &["checkout", "-q", "-b", name, from]);
    }

    pub fn checkout(&self, name: &str) {
        git(&self.repo, &["checkout", "-q", name]);
    }

    pub fn merge(&self, branch: &str, subject: &str) -> String {
        git(&self.repo, &["merge", "-q", "--no-ff", "-m", subject, branch]);
        self.head()
    }

    pub fn tag(&self, name: &str) {
        git(&self.repo, &["tag", name]);
    }

    pub fn head(&self) -> String {
        git(&self.repo, &["rev-parse", "HEAD"])
    }
}
