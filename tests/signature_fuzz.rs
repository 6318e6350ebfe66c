//! Property test over the ELF reader: mutated real ELF files (bit flips,
//! header fields overwritten, truncation) are signed or rejected with an
//! error naming the file, never a panic. `PROPTEST_CASES` sets the count;
//! the README says how long it was run for.

use std::path::PathBuf;

use proptest::prelude::*;

mod common;

fn seeds() -> Vec<Vec<u8>> {
    let dir: PathBuf = common::shared_file("elf-vectors");
    [
        "le64-x86-debug.elf",
        "be32-ppc.elf",
        "be64-s390x.elf",
        "le64-aarch64.elf",
    ]
    .iter()
    .map(|f| std::fs::read(dir.join(f)).expect("vector readable"))
    .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Word { at: usize, value: u64 },
    Truncate { keep: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        // Header and section-table fields live early or at e_shoff: bias there.
        (0usize..256, any::<u64>()).prop_map(|(at, value)| Mutation::Word { at, value }),
        (any::<usize>(), prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()])
            .prop_map(|(at, value)| Mutation::Word { at, value }),
        any::<usize>().prop_map(|keep| Mutation::Truncate { keep }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match *m {
        Mutation::Flip { at, bit } => {
            let i = at % bytes.len();
            bytes[i] ^= 1 << bit;
        }
        Mutation::Word { at, value } => {
            let i = at % bytes.len();
            let end = (i + 8).min(bytes.len());
            bytes[i..end].copy_from_slice(&value.to_le_bytes()[..end - i]);
        }
        Mutation::Truncate { keep } => bytes.truncate(keep % (bytes.len() + 1)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_elf_files_never_panic(seed in 0usize..4, muts in proptest::collection::vec(mutation(), 1..6)) {
        let mut bytes = seeds()[seed].clone();
        for m in &muts {
            if bytes.is_empty() { break; }
            apply(&mut bytes, m);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzzed.elf");
        std::fs::write(&path, &bytes).unwrap();
        match kcache::signature::ElfFile::open(&path).and_then(|f| f.report()) {
            Ok(report) => prop_assert_eq!(report.signature.to_hex().len(), 64),
            Err(e) => prop_assert!(e.to_string().contains("fuzzed.elf")),
        }
    }
}

/// The first failure the fuzzer found: a section retyped to SHT_NULL kept
/// SHF_ALLOC and claimed bytes far past the end of the file.
#[test]
fn null_typed_allocated_section_past_the_end_is_rejected() {
    let mut bytes = seeds()[1].clone();
    apply(
        &mut bytes,
        &Mutation::Word {
            at: 18239682618767278688,
            value: 0,
        },
    );
    apply(
        &mut bytes,
        &Mutation::Word {
            at: 17673561032652977033,
            value: u64::MAX,
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fuzzed.elf");
    std::fs::write(&path, &bytes).unwrap();
    let err = kcache::signature::sign_file(&path).unwrap_err();
    assert!(err.to_string().contains("claims bytes"), "{err}");
}
