use super::*;

#[derive(Debug, thiserror::Error)]
#[error("oracle")]
struct NoError;

fn table(text: &str) -> Table {
    Table::parse(text, Path::new("t.toml")).unwrap()
}

fn problem(text: &str) -> String {
    Table::parse(text, Path::new("envs/t.toml")).unwrap_err().to_string()
}

/// A commit that contains exactly `tags` (and knows `known` besides).
fn resolve(t: &Table, tags: &[&str], known: &[&str]) -> Result<Resolved, ResolveError<NoError>> {
    t.resolve(&mut |rev: &str| {
        Ok(match (tags.contains(&rev), known.contains(&rev)) {
            (true, _) => Reach::Contained,
            (false, true) => Reach::NotContained,
            (false, false) => Reach::Unknown,
        })
    })
}

const TWO: &str = r#"
version = 1
[[compiler]]
since = "v5.16"
cc = "gcc-12"
[[compiler]]
cc = "gcc-11"
env = { KBUILD_EXTRA = "1" }
[[config]]
off = ["DEBUG_INFO_BTF", "LOCALVERSION_AUTO"]
[[config]]
before = "v5.3"
off = ["UBSAN"]
[[config]]
since = "v5.16"
on = ["DEBUG_INFO_BTF"]
[[backport]]
name = "objtool: fix"
fixes = "1111111111111111111111111111111111111111"
fix = "2222222222222222222222222222222222222222"
"#;

const FIXED: &str = "1111111111111111111111111111111111111111";
const FIX: &str = "2222222222222222222222222222222222222222";

#[test]
fn the_first_compiler_rule_that_applies_wins_and_the_last_takes_the_rest() {
    let t = table(TWO);
    let new = resolve(&t, &["v5.3", "v5.16"], &[FIXED, FIX]).unwrap();
    assert_eq!(
        (new.compiler.cc.as_str(), new.compiler.package.as_str()),
        ("gcc-12", "gcc-12")
    );
    assert_eq!(new.compiler.rule, "[[compiler]] #1 (since v5.16)");
    let old = resolve(&t, &["v5.3"], &["v5.16", FIXED, FIX]).unwrap();
    assert_eq!(old.compiler.cc, "gcc-11");
    assert_eq!(old.compiler.env.get("KBUILD_EXTRA").map(String::as_str), Some("1"));
    assert_ne!(new, old);
}

#[test]
fn config_rules_apply_in_order_and_a_later_one_wins() {
    let t = table(TWO);
    let oldest = resolve(&t, &[], &["v5.3", "v5.16", FIXED, FIX]).unwrap();
    let off = |o: &str| (o.to_string(), false);
    assert_eq!(
        oldest.config,
        BTreeMap::from([off("DEBUG_INFO_BTF"), off("LOCALVERSION_AUTO"), off("UBSAN")])
    );
    let newest = resolve(&t, &["v5.3", "v5.16"], &[FIXED, FIX]).unwrap();
    assert_eq!(
        newest.config,
        BTreeMap::from([("DEBUG_INFO_BTF".to_string(), true), off("LOCALVERSION_AUTO")])
    );
}

#[test]
fn a_backport_applies_when_the_fixed_commit_is_contained_and_the_fix_is_not() {
    let t = table(TWO);
    let picked = |tags: &[&str], known: &[&str]| resolve(&t, tags, known).unwrap().backports.len();
    assert_eq!(picked(&[FIXED], &["v5.3", "v5.16", FIX]), 1, "broken, fix absent");
    assert_eq!(picked(&[FIXED, FIX], &["v5.3", "v5.16"]), 0, "fix present");
    assert_eq!(picked(&[], &["v5.3", "v5.16", FIXED, FIX]), 0, "not broken yet");
    // A repository without the fixed commit's history cannot contain it.
    assert_eq!(picked(&[], &["v5.3", "v5.16", FIX]), 0);
    // But a fix to pick must be in the repository.
    let e = resolve(&t, &[FIXED], &["v5.3", "v5.16"]).unwrap_err().to_string();
    assert!(e.contains(FIX) && e.contains("[[backport]] #1 (objtool: fix)"), "{e}");
}

#[test]
fn a_tag_the_table_names_must_be_in_the_repository() {
    let e = resolve(&table(TWO), &[], &[FIXED, FIX]).unwrap_err().to_string();
    assert!(
        e.contains("t.toml") && e.contains("v5.16") && e.contains("[[compiler]] #1"),
        "{e}"
    );
    assert!(e.contains("git fetch --tags"), "{e}");
}

#[test]
fn the_package_is_named_after_the_program_unless_given() {
    let t = table("version = 1\n[[compiler]]\ncc = \"/usr/bin/clang-15\"\nenv = { LLVM = \"1\" }\n");
    let c = t.compilers().next().unwrap();
    assert_eq!((c.cc.as_str(), c.package.as_str()), ("/usr/bin/clang-15", "clang-15"));
    let t = table("version = 1\n[[compiler]]\ncc = \"cc\"\npackage = \"gcc\"\n");
    assert_eq!(t.compilers().next().unwrap().package, "gcc");
}

#[test]
fn bad_tables_name_the_file_and_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("version = 2\n[[compiler]]\ncc = \"gcc\"\n", "version 2"),
        ("version = 1\n", "no [[compiler]]"),
        (
            "version = 1\n[[compiler]]\nsince = \"v5.16\"\ncc = \"gcc\"\n",
            "the last [[compiler]] (#1)",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc 12\"\n",
            "[[compiler]] #1: `cc` must name one program",
        ),
        ("version = 1\n[[compiler]]\ncc = \"\"\n", "`cc` must name one program"),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\nenv = { CC = \"x\" }\n",
            "env CC is set by kcache",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\nenv = { \"a b\" = \"x\" }\n",
            "not a variable name",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\nflags = 1\n",
            "unknown field `flags`",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\n[[config]]\n",
            "[[config]] #1: neither `on` nor `off`",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\n[[config]]\noff = [\"CONFIG_KCOV\"]\n",
            "write CONFIG_KCOV without CONFIG_",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\n[[config]]\non = [\"KCOV\"]\noff = [\"KCOV\"]\n",
            "KCOV is named twice",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\n[[config]]\nsince = \"\"\non = [\"KCOV\"]\n",
            "`since` must name one tag",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\n[[backport]]\nname = \"x\"\nfix = \"abc\"\n",
            "[[backport]] #1 (x): `fix` \"abc\" is not a full 40-hex",
        ),
        (
            "version = 1\n[[compiler]]\ncc = \"gcc\"\n[[backport]]\nfix = \"abc\"\n",
            "missing field `name`",
        ),
        ("version = 1\n[[compiler]\n", "line 2, column 12"),
    ];
    for (text, want) in cases {
        let e = problem(text);
        assert!(e.starts_with("build environment table envs/t.toml: "), "{e}");
        assert!(e.contains(want), "{text:?}: {e}");
    }
    let e = Table::load(Path::new("/nonexistent/env.toml")).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/env.toml") && e.contains("No such file"), "{e}");
}

#[test]
fn the_shipped_table_loads_and_splits_at_v5_16() {
    let t = Table::load(Path::new(DEFAULT_NAME)).unwrap();
    let ccs: Vec<&str> = t.compilers().map(|c| c.cc.as_str()).collect();
    assert_eq!(ccs, ["gcc-12", "gcc-11"]);
    // The commit contains the tags listed and no other revision the table names.
    let with_tags = |tags: &'static [&'static str]| {
        move |rev: &str| -> Result<Reach, NoError> {
            Ok(match tags.contains(&rev) {
                true => Reach::Contained,
                false => Reach::NotContained,
            })
        }
    };
    let new = t.resolve(&mut with_tags(&["v5.3", "v5.4", "v5.16", "v6.0"])).unwrap();
    assert_eq!(new.compiler.cc, "gcc-12");
    assert_eq!(new.config.get("LOCALVERSION_AUTO"), Some(&false));
    assert_eq!(new.config.get("DEBUG_INFO_BTF"), Some(&false));
    let old = t.resolve(&mut with_tags(&["v5.3", "v5.4"])).unwrap();
    assert_eq!(old.compiler.cc, "gcc-11");
}

#[test]
fn fix_config_replaces_named_options_and_keeps_the_rest() {
    let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=m\nCONFIG_CC=\"x\"\n";
    let fixups = BTreeMap::from([
        ("A".to_string(), false),
        ("B".to_string(), true),
        ("D".to_string(), false),
    ]);
    assert_eq!(
        fix_config(config, &fixups),
        "CONFIG_C=m\nCONFIG_CC=\"x\"\n# CONFIG_A is not set\nCONFIG_B=y\n# CONFIG_D is not set\n"
    );
    assert_eq!(fix_config(config, &BTreeMap::new()), config);
}

#[test]
fn the_summary_names_compiler_rule_fixups_and_backports() {
    let t = table(TWO);
    let r = resolve(&t, &[FIXED], &["v5.3", "v5.16", FIX]).unwrap();
    assert_eq!(
        r.summary(),
        "gcc-11 ([[compiler]] #2 (always)) KBUILD_EXTRA=1; config -DEBUG_INFO_BTF -LOCALVERSION_AUTO -UBSAN; \
         backports: objtool: fix"
    );
}
