//! Build keys and test keys: BLAKE3 over a canonical, versioned encoding of
//! everything that decides a build's binary or a test's outcome.
//!
//! The encoding is a domain string followed by length-prefixed fields in a
//! fixed order (`name:len:value\n`), so no two different inputs can encode
//! the same way. `cache-schema/README.md` documents it for other tools.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const BUILD_DOMAIN: &str = "kcache build key v1";
const TEST_DOMAIN: &str = "kcache test key v1";
const RECIPE_DOMAIN: &str = "kcache recipe v1";

/// A 32-byte BLAKE3 key, shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Key(pub [u8; 32]);

pub use crate::short_id as short;

impl Key {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// [`short`] of the hex form.
    pub fn short(&self) -> String {
        short(&self.to_hex()).to_string()
    }

    pub fn from_hex(s: &str) -> Option<Key> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Key(out))
    }
}

impl From<Key> for String {
    fn from(k: Key) -> String {
        k.to_hex()
    }
}

impl TryFrom<String> for Key {
    type Error = String;
    fn try_from(s: String) -> Result<Key, String> {
        Key::from_hex(&s).ok_or_else(|| format!("not a 64-hex key: {s}"))
    }
}

/// Declares a newtype over [`Key`] for one kind of key: the types keep a
/// build key from being passed where a test key belongs; serialized as the
/// key's hex, so records are unchanged.
macro_rules! key_kind {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Key);

        impl std::ops::Deref for $name {
            type Target = Key;
            fn deref(&self) -> &Key {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

key_kind!(
    /// What decides a build: BLAKE3 of its [`BuildInputs`].
    BuildKey
);
key_kind!(
    /// What decides which runs pool together: BLAKE3 of its [`TestInputs`].
    TestKey
);

hex_string_id!(
    /// A full git commit id (the hex git prints), as opposed to a revision
    /// name.
    CommitId
);

/// Commit ids kcache holds come from git's own output.
impl From<String> for CommitId {
    fn from(hex: String) -> CommitId {
        CommitId(hex)
    }
}

impl From<&str> for CommitId {
    fn from(hex: &str) -> CommitId {
        CommitId(hex.to_string())
    }
}

impl From<CommitId> for String {
    fn from(c: CommitId) -> String {
        c.0
    }
}

hex_string_id!(
    /// A git tree id (the hex git prints): what a build reads from the
    /// repository.
    TreeId
);

impl TreeId {
    /// A tree id as git printed it (kcache takes them only from git).
    pub fn from_git(hex: &str) -> TreeId {
        TreeId(hex.trim().to_string())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.to_hex())
    }
}

/// Accumulates the canonical encoding of one key.
struct Encoder(blake3::Hasher);

impl Encoder {
    fn new(domain: &str) -> Encoder {
        let mut e = Encoder(blake3::Hasher::new());
        e.field("domain", domain.as_bytes());
        e
    }

    fn field(&mut self, name: &str, value: &[u8]) -> &mut Self {
        self.0.update(format!("{name}:{}:", value.len()).as_bytes());
        self.0.update(value);
        self.0.update(b"\n");
        self
    }

    fn finish(&self) -> Key {
        Key(*self.0.finalize().as_bytes())
    }
}

/// BLAKE3 of a file's bytes (used for configs, reproducers, key files).
pub fn file_digest(path: &Path) -> std::io::Result<Key> {
    let mut h = blake3::Hasher::new();
    h.update_mmap(path)?;
    Ok(Key(*h.finalize().as_bytes()))
}

/// A key file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// (path as named, BLAKE3 of its content) for each file: what a key
/// records of the files the user names.
pub fn file_digests(files: &[PathBuf]) -> Result<Vec<(String, Key)>, FileError> {
    files
        .iter()
        .map(|f| {
            let d = file_digest(f).map_err(|source| FileError {
                path: f.clone(),
                source,
            })?;
            Ok((f.to_string_lossy().into_owned(), d))
        })
        .collect()
}

/// BLAKE3 of bytes.
pub fn digest(bytes: &[u8]) -> Key {
    Key(*blake3::hash(bytes).as_bytes())
}

/// How a kernel is built: the command, make variables and files the user
/// names as part of the recipe (a build script, say).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Recipe {
    /// The build command as keyed ([`keyed_command`]: a script it runs by
    /// absolute path stands as `@blake3:<hex>` of its content).
    pub command: String,
    /// `KEY=VALUE` pairs; order does not matter.
    pub make_vars: Vec<String>,
    /// (path as named, BLAKE3 of content).
    #[serde(with = "crate::serde_pairs::named_files")]
    pub key_files: Vec<(String, Key)>,
    /// The scripts the command runs, keyed by content (path as typed,
    /// BLAKE3): shown by `kcache key --json`, already in `command`.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "crate::serde_pairs::named_files"
    )]
    pub scripts: Vec<(String, Key)>,
}

/// The prefix a word of the build command that names a file by content has.
pub const CONTENT_WORD: &str = "@blake3:";

/// The build command as the build key sees it: every script the command
/// runs by an absolute path (`/home/a/linux/build.sh`, or `~/build.sh`;
/// quoted or not) stands for that file's content (`@blake3:<hex>`), as
/// ccache keys a compiler by content, not path: one script at two paths
/// (two clones, two members' home directories) keys alike, and an edited
/// script keys anew. A script is a word in command position (the first of
/// the command, or after `;`, `&&`, `||`, `|`, `{`, `(`) or the first
/// non-option word after a runner (`sh`, `bash`, `env`, `exec`, `python3`,
/// ...); other paths (`test -e /x`, `tee /tmp/log`) are keyed as typed. A
/// command with no such script is keyed as typed (the keys of earlier
/// caches stay). Returns the keyed command and the scripts it named.
pub fn keyed_command(command: &str) -> Result<(String, Vec<(String, Key)>), FileError> {
    const RUNNERS: &[&str] = &[
        "sh", "bash", "dash", "zsh", "ksh", "env", "exec", "nice", "time", "command", "python", "python3", "perl", ".",
        "source",
    ];
    const SEPARATORS: &[&str] = &[";", "&&", "||", "|", "{", "(", "then", "do", "else"];
    let mut scripts = Vec::new();
    let mut words = Vec::new();
    let mut command_position = true;
    for word in command.split_whitespace() {
        let bare = word.trim_matches(|c| c == '\'' || c == '"');
        let runs_next = command_position && (RUNNERS.contains(&bare) || bare.starts_with('-') || bare.contains('='));
        let script = match command_position && !runs_next {
            true => script_path(bare),
            false => None,
        };
        match script {
            Some(p) => {
                let d = file_digest(&p).map_err(|source| FileError {
                    path: p.clone(),
                    source,
                })?;
                scripts.push((bare.to_string(), d));
                words.push(format!("{CONTENT_WORD}{}", d.to_hex()));
            }
            None => words.push(word.to_string()),
        }
        command_position = runs_next || SEPARATORS.contains(&bare) || bare.ends_with(';');
    }
    match scripts.is_empty() {
        true => Ok((command.to_string(), scripts)),
        false => Ok((words.join(" "), scripts)),
    }
}

/// The file a word names by absolute path (`~/` expanded), if it is one.
fn script_path(word: &str) -> Option<PathBuf> {
    let path = match word.strip_prefix("~/") {
        Some(rest) => Path::new(&std::env::var_os("HOME")?).join(rest),
        None => PathBuf::from(word),
    };
    (path.is_absolute() && path.is_file()).then_some(path)
}

impl Recipe {
    pub fn digest(&self) -> Key {
        let mut e = Encoder::new(RECIPE_DOMAIN);
        e.field("command", self.command.as_bytes());
        let mut vars = self.make_vars.clone();
        vars.sort();
        for v in &vars {
            e.field("make_var", v.as_bytes());
        }
        let mut files = self.key_files.clone();
        files.sort();
        for (path, d) in &files {
            e.field("key_file", path.as_bytes()).field("key_file_digest", &d.0);
        }
        e.finish()
    }
}

/// `kcache key --json`: the key, the inputs it is derived from, and the
/// recipe behind `recipe_digest` (the command as keyed, the scripts it
/// runs keyed by content, the key files).
#[derive(Debug, Serialize)]
pub struct KeyedInputs<'a> {
    pub build_key: BuildKey,
    pub inputs: &'a BuildInputs,
    pub recipe: &'a Recipe,
}

/// Everything that decides a build's binary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildInputs {
    /// The git tree id (not the commit id: same tree, same build).
    pub tree: TreeId,
    pub config_digest: Key,
    /// Compiler and linker version lines, e.g. `gcc (GCC) 10.2.1, GNU ld 2.35.2`.
    pub toolchain: String,
    pub arch: String,
    pub recipe_digest: Key,
    /// The BLAKE3 of each patch applied, in order, on the tree before the
    /// build (a revert, a fix under test, a backport). Empty for a plain
    /// build, whose key is then what it always was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<Key>,
}

/// What every commit's build key shares under one recipe: the config's
/// digest (of no bytes when there is none), toolchain, arch and the recipe's
/// digest. `for_tree` completes it for one commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeInputs {
    pub config_digest: Key,
    pub toolchain: String,
    pub arch: String,
    pub recipe_digest: Key,
    /// What `recipe_digest` is the digest of.
    pub recipe: Recipe,
}

impl RecipeInputs {
    /// Digests the config, key files and the scripts the command runs now.
    pub fn resolve(
        build_cmd: &str,
        config: Option<&Path>,
        key_files: &[PathBuf],
        toolchain: String,
        arch: String,
    ) -> Result<RecipeInputs, FileError> {
        let config_digest = match config {
            Some(p) => file_digest(p).map_err(|source| FileError {
                path: p.to_path_buf(),
                source,
            })?,
            None => digest(b""),
        };
        let (command, scripts) = keyed_command(build_cmd)?;
        let recipe = Recipe {
            command,
            make_vars: Vec::new(),
            key_files: file_digests(key_files)?,
            scripts,
        };
        Ok(RecipeInputs {
            config_digest,
            toolchain,
            arch,
            recipe_digest: recipe.digest(),
            recipe,
        })
    }

    pub fn for_tree(&self, tree: &TreeId) -> BuildInputs {
        BuildInputs {
            tree: tree.clone(),
            config_digest: self.config_digest,
            toolchain: self.toolchain.clone(),
            arch: self.arch.clone(),
            recipe_digest: self.recipe_digest,
            patches: Vec::new(),
        }
    }
}

impl BuildInputs {
    pub fn key(&self) -> BuildKey {
        let mut e = Encoder::new(BUILD_DOMAIN);
        e.field("tree", self.tree.as_bytes())
            .field("config", &self.config_digest.0)
            .field("toolchain", self.toolchain.as_bytes())
            .field("arch", self.arch.as_bytes())
            .field("recipe", &self.recipe_digest.0);
        // Only when present: the keys of unpatched builds (every record
        // written before patches existed) stay as they were.
        for p in &self.patches {
            e.field("patch", &p.0);
        }
        BuildKey(e.finish())
    }

    /// These inputs with `patches` applied on the tree, in order.
    pub fn with_patches(self, patches: Vec<Key>) -> BuildInputs {
        BuildInputs { patches, ..self }
    }
}

/// Everything besides the kernel that decides a test's outcome.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct TestInputs {
    pub command: String,
    /// (path as named, BLAKE3 of content): reproducer, image, VM config.
    #[serde(with = "crate::serde_pairs::named_files")]
    pub files: Vec<(String, Key)>,
    /// Free-form settings the user names (`KEY=VALUE`).
    pub settings: Vec<String>,
}

impl TestInputs {
    /// A test command and the files it depends on, digested now.
    pub fn from_files(command: String, files: &[PathBuf], settings: Vec<String>) -> Result<TestInputs, FileError> {
        Ok(TestInputs {
            command,
            files: file_digests(files)?,
            settings,
        })
    }

    pub fn key(&self) -> TestKey {
        let mut e = Encoder::new(TEST_DOMAIN);
        e.field("command", self.command.as_bytes());
        let mut files = self.files.clone();
        files.sort();
        for (path, d) in &files {
            e.field("file", path.as_bytes()).field("file_digest", &d.0);
        }
        let mut settings = self.settings.clone();
        settings.sort();
        for s in &settings {
            e.field("setting", s.as_bytes());
        }
        TestKey(e.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> BuildInputs {
        BuildInputs {
            tree: TreeId::from_git("4b825dc642cb6eb9a060e54bf8d69288fbee4904"),
            config_digest: digest(b"CONFIG_X=y"),
            toolchain: "gcc (GCC) 12.2.0".into(),
            arch: "x86_64".into(),
            recipe_digest: Recipe::default().digest(),
            patches: Vec::new(),
        }
    }

    #[test]
    fn patches_change_the_key_in_order_and_no_patch_keeps_it() {
        // The key of a build without patches, as every earlier record has it.
        let plain = BuildKey(
            Encoder::new(BUILD_DOMAIN)
                .field("tree", inputs().tree.as_bytes())
                .field("config", &inputs().config_digest.0)
                .field("toolchain", inputs().toolchain.as_bytes())
                .field("arch", inputs().arch.as_bytes())
                .field("recipe", &inputs().recipe_digest.0)
                .finish(),
        );
        assert_eq!(inputs().key(), plain);
        let (a, b) = (digest(b"revert"), digest(b"fix"));
        let ab = inputs().with_patches(vec![a, b]).key();
        assert_ne!(inputs().with_patches(vec![a]).key(), plain);
        assert_ne!(ab, inputs().with_patches(vec![a]).key());
        assert_ne!(ab, inputs().with_patches(vec![b, a]).key(), "order matters");
        assert_eq!(ab, inputs().with_patches(vec![a, b]).key());
        let json = serde_json::to_string(&inputs()).unwrap();
        assert!(!json.contains("patches"), "{json}");
    }

    #[test]
    fn every_build_input_changes_the_key() {
        let base = inputs().key();
        let mut i = inputs();
        i.tree = TreeId::from_git("5b825dc642cb6eb9a060e54bf8d69288fbee4904");
        assert_ne!(i.key(), base);
        let mut i = inputs();
        i.config_digest = digest(b"CONFIG_X=n");
        assert_ne!(i.key(), base);
        let mut i = inputs();
        i.toolchain.push('x');
        assert_ne!(i.key(), base);
        let mut i = inputs();
        i.arch = "arm64".into();
        assert_ne!(i.key(), base);
        assert_eq!(inputs().key(), base);
    }

    #[test]
    fn encoding_is_unambiguous() {
        // Moving bytes between adjacent fields must change the key.
        let a = Encoder::new("d").field("a", b"xy").field("b", b"z").finish();
        let b = Encoder::new("d").field("a", b"x").field("b", b"yz").finish();
        assert_ne!(a, b);
    }

    #[test]
    fn test_key_ignores_order_of_files_and_settings() {
        let f1 = ("repro.c".to_string(), digest(b"1"));
        let f2 = ("image".to_string(), digest(b"2"));
        let a = TestInputs {
            command: "run".into(),
            files: vec![f1.clone(), f2.clone()],
            settings: vec!["A=1".into(), "B=2".into()],
        };
        let b = TestInputs {
            command: "run".into(),
            files: vec![f2, f1],
            settings: vec!["B=2".into(), "A=1".into()],
        };
        assert_eq!(a.key(), b.key());
        let c = TestInputs {
            command: "run2".into(),
            ..a.clone()
        };
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn a_script_the_command_runs_is_keyed_by_content_not_path() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a.sh"),
            dir.path().join("b.sh"),
            dir.path().join("c.sh"),
        );
        std::fs::write(&a, "make vmlinux\n").unwrap();
        std::fs::write(&b, "make vmlinux\n").unwrap();
        std::fs::write(&c, "make -j8 vmlinux\n").unwrap();
        let resolve = |cmd: String| {
            RecipeInputs::resolve(&cmd, None, &[], "gcc".into(), "x86_64".into())
                .unwrap()
                .recipe_digest
        };
        let keyed = |p: &Path| resolve(format!("sh {} --fast", p.display()));
        assert_eq!(keyed(&a), keyed(&b), "one script at two paths");
        assert_ne!(keyed(&a), keyed(&c), "an edited script");
        assert_eq!(resolve(format!("sh '{}' --fast", a.display())), keyed(&a), "quoted");
        assert_eq!(
            resolve(format!("cd /tmp && bash -x {} --fast", a.display())),
            resolve(format!("cd /tmp && bash -x {} --fast", b.display())),
            "after a separator and a runner's options"
        );
        // A path that is not a script the command runs is keyed as typed:
        // a flag file, a log written each build.
        for cmd in [
            format!("test -e {} || make", a.display()),
            format!("make | tee {}", a.display()),
        ] {
            assert_eq!(keyed_command(&cmd).unwrap(), (cmd.clone(), vec![]), "{cmd}");
        }
        // A command that names no file is keyed as typed (old keys stay).
        let (plain, scripts) = keyed_command("make -s  vmlinux").unwrap();
        assert_eq!((plain.as_str(), scripts.len()), ("make -s  vmlinux", 0));
        let (cmd, scripts) = keyed_command(&format!("sh {}", a.display())).unwrap();
        assert!(cmd.starts_with("sh @blake3:"), "{cmd}");
        assert_eq!(scripts, vec![(a.display().to_string(), file_digest(&a).unwrap())]);
    }

    #[test]
    fn recipe_make_var_order_does_not_matter() {
        let a = Recipe {
            command: "make".into(),
            make_vars: vec!["A=1".into(), "B=2".into()],
            key_files: vec![],
            scripts: vec![],
        };
        let b = Recipe {
            make_vars: vec!["B=2".into(), "A=1".into()],
            ..a.clone()
        };
        assert_eq!(a.digest(), b.digest());
    }
}
