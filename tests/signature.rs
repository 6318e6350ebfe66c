//! Kernel signatures: the shared vectors, hostile input, and `diff` on real
//! gcc builds.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use kcache::signature::{self, ElfFile};

fn vectors() -> Vec<(String, PathBuf)> {
    let dir = shared_file("elf-vectors");
    std::fs::read_to_string(dir.join("EXPECTED"))
        .expect("EXPECTED is readable")
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(want, file)| (want.to_string(), dir.join(file)))
        .collect()
}

#[test]
fn every_vector_signs_as_expected_or_is_rejected() {
    let v = vectors();
    assert!(v.len() >= 12);
    for (want, path) in v {
        let got = signature::sign_file(&path);
        if want == "error" {
            let err = got.expect_err(&format!("{} must be rejected", path.display()));
            let msg = err.to_string();
            assert!(msg.contains(&*path.to_string_lossy()), "error names the file: {msg}");
            assert!(!msg.contains('\n'), "one line: {msg}");
        } else {
            assert_eq!(got.unwrap().to_hex(), want, "{}", path.display());
        }
    }
}

#[test]
fn cli_prints_like_sha256sum_and_exits_2_on_bad_files() {
    let dir = shared_file("elf-vectors");
    let out = kcache()
        .arg("sign")
        .arg(dir.join("be32-ppc.elf"))
        .arg(dir.join("vmlinux-6.1-tiny-i386.elf"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[1].starts_with("d0d469886351c18448230c234ac27cd4f877df5b9f728c358ff5448599b3ece2  "));

    let out = kcache()
        .arg("sign")
        .arg(dir.join("truncated.elf"))
        .arg(dir.join("le64-x86-debug.elf"))
        .arg(&dir) // a directory
        .arg(dir.join("does-not-exist"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "the good file is still signed");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    assert!(stderr.contains("truncated.elf: malformed ELF"));
    assert!(stderr.contains("is a directory"));
    assert!(stderr.contains("does-not-exist: cannot read"));
}

#[test]
fn json_lists_hashed_and_skipped_sections() {
    let path = shared_file("elf-vectors/le64-aarch64.elf");
    let out = run_ok(kcache().args(["sign", "--json"]).arg(&path));
    let v = json(&out);
    assert_eq!(
        v["signature"],
        "5da579f843c5cd3af421ce1520db831bd8b8bd9e1e59fdf5ac5196ff8a18bdc5"
    );
    assert_eq!(v["class"], "ELF64");
    assert_eq!(v["endianness"], "little");
    assert_eq!(v["machine"], "EM_AARCH64");
    let skipped = v["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|s| s["reason"] == "note"));
    assert!(skipped.iter().any(|s| s["reason"] == "nobits"));
    for s in v["sections"].as_array().unwrap() {
        assert!(s["sha256"].as_str().unwrap().len() == 64 && s["name"].is_string() && s["type"].is_string());
    }
    // The outer digest is SHA-256 over the listed section digests in order.
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for s in v["sections"].as_array().unwrap() {
        h.update(hex::decode(s["sha256"].as_str().unwrap()).unwrap());
    }
    assert_eq!(hex::encode(h.finalize()), v["signature"].as_str().unwrap());
}

fn compile(dir: &Path, name: &str, source: &str, extra: &[&str]) -> PathBuf {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(&src, source).unwrap();
    let out = dir.join(name);
    run_ok(
        Command::new("gcc")
            .args(["-O2", "-fno-pie", "-no-pie"])
            .args(extra)
            .arg(&src)
            .arg("-o")
            .arg(&out),
    );
    out
}

const PROGRAM: &str = r#"#include <stdio.h>
int scale(int x) { return x * 3 + 1; }
int offset(int x) { return x - 7; }
int main(int argc, char **argv) { (void)argv; printf("%d %d\n", scale(argc), offset(argc)); return 0; }
"#;

#[test]
fn diff_names_changed_symbols_and_ignores_comments_and_debug_info() {
    let dir = tempfile::tempdir().unwrap();
    let base = compile(dir.path(), "base", PROGRAM, &["-g"]);
    let comment = compile(
        dir.path(),
        "comment",
        &PROGRAM.replace("int offset", "/* why */\nint offset"),
        &[],
    );
    let code = compile(dir.path(), "code", &PROGRAM.replace("x * 3 + 1", "x * 5 + 1"), &["-g"]);

    // Comment-only change and no debug info: same signature, exit 0.
    let out = kcache().arg("diff").arg(&base).arg(&comment).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("signatures are equal"));

    // A one-line code change: exit 1, .text changed, `scale` named.
    let out = kcache()
        .args(["diff", "--json"])
        .arg(&base)
        .arg(&code)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["equal"], false);
    let text = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == ".text")
        .expect(".text changed");
    let names: Vec<&str> = text["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"scale"), "{names:?}");
    assert!(!names.contains(&"offset"), "{names:?}");

    let out = kcache()
        .arg("diff")
        .arg(&base)
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn hostile_headers_are_rejected_without_panic_or_huge_allocation() {
    let good = std::fs::read(shared_file("elf-vectors/le64-x86-nodebug.elf")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // e_shoff far past the end; e_shnum huge; a section size of 2^63.
    type Mutate = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Mutate)> = vec![
        (
            "shoff",
            Box::new(|b: &mut Vec<u8>| b[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes())),
        ),
        (
            "shnum",
            Box::new(|b: &mut Vec<u8>| b[0x3c..0x3e].copy_from_slice(&0xffffu16.to_le_bytes())),
        ),
        (
            "shentsize",
            Box::new(|b: &mut Vec<u8>| b[0x3a..0x3c].copy_from_slice(&1u16.to_le_bytes())),
        ),
        ("class", Box::new(|b: &mut Vec<u8>| b[4] = 9)),
        ("magic-only", Box::new(|b: &mut Vec<u8>| b.truncate(4))),
    ];
    for (name, mutate) in cases {
        let mut bytes = good.clone();
        mutate(&mut bytes);
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = ElfFile::open(&path).and_then(|f| f.signature()).expect_err(name);
        assert!(err.to_string().contains(name), "{err}");
    }
}

/// Rewrites `.rodata` of a real ELF as an `SHF_COMPRESSED` section (payload
/// appended at the end of the file): the signature must not change, since
/// syzkaller (Go's debug/elf) hashes compressed sections decompressed.
fn with_compressed_rodata(orig: &[u8], ch_type: u32, payload: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    use object::read::elf::{FileHeader, SectionHeader};
    let hdr = object::elf::FileHeader64::<object::Endianness>::parse(orig).unwrap();
    let endian = hdr.endian().unwrap();
    let sections = hdr.sections(endian, orig).unwrap();
    let (index, sh) = sections
        .iter()
        .enumerate()
        .find(|(_, s)| sections.section_name(endian, s).unwrap() == b".rodata")
        .expect("the vector has .rodata");
    let content = sh.data(endian, orig).unwrap();
    let mut chdr = Vec::new();
    chdr.extend_from_slice(&ch_type.to_le_bytes());
    chdr.extend_from_slice(&0u32.to_le_bytes());
    chdr.extend_from_slice(&(content.len() as u64).to_le_bytes());
    chdr.extend_from_slice(&sh.sh_addralign(endian).to_le_bytes());
    let mut out = orig.to_vec();
    while !out.len().is_multiple_of(8) {
        out.push(0);
    }
    let offset = out.len() as u64;
    out.extend_from_slice(&chdr);
    out.extend_from_slice(&payload(content));
    let size = out.len() as u64 - offset;
    let at = hdr.e_shoff(endian) as usize + index * hdr.e_shentsize(endian) as usize;
    let flags = sh.sh_flags(endian) | u64::from(object::elf::SHF_COMPRESSED);
    out[at + 8..at + 16].copy_from_slice(&flags.to_le_bytes());
    out[at + 24..at + 32].copy_from_slice(&offset.to_le_bytes());
    out[at + 32..at + 40].copy_from_slice(&size.to_le_bytes());
    out
}

#[test]
fn compressed_allocated_sections_are_hashed_decompressed() {
    use std::io::Write;
    let path = shared_file("elf-vectors/le64-x86-nodebug.elf");
    let orig = std::fs::read(&path).unwrap();
    let want = signature::sign_file(&path).unwrap();
    let zlib = |c: &[u8]| {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(c).unwrap();
        e.finish().unwrap()
    };
    let zstd = |c: &[u8]| zstd::encode_all(c, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Half a stream cannot yield ch_size bytes. (A stream missing only its
    // trailing checksum still does, and Go accepts it as well.)
    let cut = |v: Vec<u8>| v[..v.len() / 2].to_vec();
    let zlib_cut = |c: &[u8]| cut(zlib(c));
    let zstd_cut = |c: &[u8]| cut(zstd(c));
    use object::elf::{ELFCOMPRESS_ZLIB, ELFCOMPRESS_ZSTD};
    for (name, ch_type, bytes, broken) in [
        (
            "zlib.elf",
            ELFCOMPRESS_ZLIB,
            with_compressed_rodata(&orig, ELFCOMPRESS_ZLIB, zlib),
            with_compressed_rodata(&orig, ELFCOMPRESS_ZLIB, zlib_cut),
        ),
        (
            "zstd.elf",
            ELFCOMPRESS_ZSTD,
            with_compressed_rodata(&orig, ELFCOMPRESS_ZSTD, zstd),
            with_compressed_rodata(&orig, ELFCOMPRESS_ZSTD, zstd_cut),
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, &bytes).unwrap();
        let report = ElfFile::open(&p).unwrap().report().unwrap();
        assert_eq!(report.signature, want, "{name} (type {ch_type})");
        assert!(report
            .sections
            .iter()
            .any(|s| s.section.name == ".rodata" && s.section.uncompressed_size.is_some()));
        // A truncated stream is an error naming the file and the section.
        let q = dir.path().join(format!("broken-{name}"));
        std::fs::write(&q, &broken).unwrap();
        let err = signature::sign_file(&q).unwrap_err().to_string();
        assert!(
            err.contains("broken-") && err.contains(".rodata") && !err.contains("claims bytes"),
            "{err}"
        );
    }
}
