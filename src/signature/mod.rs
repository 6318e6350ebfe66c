//! Kernel signatures: syzkaller's "kernel signature" of an ELF file, bit for bit.
//!
//! The signature is SHA-256 over the concatenated SHA-256 digests of every
//! section that has `SHF_ALLOC` set and is neither `SHT_NOBITS` nor
//! `SHT_NOTE`, in section-header order (syzkaller `pkg/build`,
//! `elfBinarySignature`). Debug info is not allocated and notes carry the
//! build id, so two builds with the same machine code and data get the same
//! signature. A section stored `SHF_COMPRESSED` is hashed decompressed,
//! exactly `ch_size` bytes, as Go's `debug/elf` `Section.Data` does.
//!
//! The file is memory-mapped and only the hashed sections are touched, so
//! debug sections are never read. Sections are hashed in parallel; pages
//! already hashed are dropped from the mapping as hashing proceeds, so the
//! resident set stays bounded whatever the size of the vmlinux. Every
//! offset and size a header claims is checked against the file before use,
//! and nothing is allocated from a header field.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use object::elf;
use object::read::elf::{CompressionHeader, FileHeader, SectionHeader};
use object::{Endianness, FileKind};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub mod diff;
pub use diff::{diff_files, DiffReport, SectionChange, SymbolChange};

/// Hash this many bytes before releasing the mapped pages behind them.
const CHUNK: usize = 8 << 20;

/// Why a file could not be signed. Displayed as one line that names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct SignError {
    pub path: PathBuf,
    pub problem: Problem,
}

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("is a directory, not an ELF file")]
    Directory,
    #[error("is not a regular file ({0}), not an ELF file")]
    NotRegular(&'static str),
    #[error("empty file, not an ELF file")]
    Empty,
    #[error("not an ELF file ({0})")]
    NotElf(&'static str),
    #[error("malformed ELF: {0}")]
    Malformed(String),
}

impl SignError {
    fn new(path: &Path, problem: impl Into<Problem>) -> Self {
        SignError {
            path: path.to_path_buf(),
            problem: problem.into(),
        }
    }
}

/// Whether `s` is a kernel signature as syzkaller prints them: 64 hex
/// digits (SHA-256), or 40 in logs from the SHA-1 era.
pub fn is_signature(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

hex_string_id!(
    /// A kernel signature in the form syzkaller prints and kcache stores: 64
    /// lowercase hex digits (SHA-256), or 40 in logs from the SHA-1 era. A
    /// record holding something else still reads; `verify` flags it
    /// ([`is_signature`]).
    KernelSignature
);

/// Text that is not a kernel signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a kernel signature (40 or 64 lowercase hex digits)")]
pub struct NotASignature(pub String);

impl KernelSignature {
    pub fn parse(s: &str) -> Result<KernelSignature, NotASignature> {
        if is_signature(s) {
            Ok(KernelSignature(s.to_string()))
        } else {
            Err(NotASignature(s.to_string()))
        }
    }

    /// A stand-in for a kernel known only by a label (a simulated
    /// history's kernels, a log step that names no signature): SHA-256 of
    /// the label, so equal labels are one kernel and the search can treat
    /// it as any other. Never a record's signature.
    pub fn of_label(label: &str) -> KernelSignature {
        KernelSignature(hex::encode(Sha256::digest(label.as_bytes())))
    }
}

impl From<Signature> for KernelSignature {
    fn from(s: Signature) -> KernelSignature {
        KernelSignature(s.to_hex())
    }
}

impl std::str::FromStr for KernelSignature {
    type Err = NotASignature;
    fn from_str(s: &str) -> Result<KernelSignature, NotASignature> {
        KernelSignature::parse(s)
    }
}

/// What a special file is, or `None` for a regular file or directory.
fn special_file(kind: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        Some("a FIFO")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_char_device() {
        Some("a character device")
    } else if kind.is_block_device() {
        Some("a block device")
    } else {
        None
    }
}

fn malformed(what: impl fmt::Display) -> Problem {
    Problem::Malformed(what.to_string())
}

/// A 32-byte SHA-256 kernel signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature(pub [u8; 32]);

impl Signature {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Signature> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Signature(out))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", self.to_hex())
    }
}

impl Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// What the signature does with an allocated section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    Hashed,
    Nobits,
    Note,
}

/// How a section's bytes are stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    Plain,
    Zlib,
    Zstd,
}

/// One section header, validated against the file size.
#[derive(Debug, Clone, Serialize)]
pub struct Section {
    pub index: usize,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip)]
    pub sh_type: u32,
    pub flags: u64,
    pub addr: u64,
    pub offset: u64,
    /// Size in the file (compressed size for compressed sections).
    pub size: u64,
    pub storage: Storage,
    /// Decompressed size a compressed section claims.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uncompressed_size: Option<u64>,
}

impl Section {
    fn is_alloc(&self) -> bool {
        self.flags & u64::from(elf::SHF_ALLOC) != 0
    }

    /// Whether syzkaller's signature hashes this section, and if not why.
    pub fn disposition(&self) -> Option<Disposition> {
        if !self.is_alloc() {
            return None;
        }
        Some(match self.sh_type {
            elf::SHT_NOBITS => Disposition::Nobits,
            elf::SHT_NOTE => Disposition::Note,
            _ => Disposition::Hashed,
        })
    }

    fn file_range(&self) -> std::ops::Range<usize> {
        // Validated in `parse_sections`, so these fit in the file.
        self.offset as usize..(self.offset + self.size) as usize
    }
}

/// A section that went into the signature, with its own digest.
#[derive(Debug, Clone, Serialize)]
pub struct HashedSection {
    #[serde(flatten)]
    pub section: Section,
    #[serde(serialize_with = "hex_digest")]
    pub sha256: [u8; 32],
}

fn hex_digest<S: serde::Serializer>(d: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(d))
}

/// An allocated section the signature leaves out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedSection {
    pub name: String,
    pub reason: Disposition,
}

/// The full answer for one file: what `kcache sign --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub path: PathBuf,
    pub signature: Signature,
    pub class: &'static str,
    pub endianness: &'static str,
    pub machine: String,
    pub sections: Vec<HashedSection>,
    pub skipped: Vec<SkippedSection>,
}

/// A memory-mapped ELF file with its validated section table.
pub struct ElfFile {
    path: PathBuf,
    map: Mmap,
    pub class: &'static str,
    pub endianness: &'static str,
    pub machine: u16,
    pub sections: Vec<Section>,
}

impl ElfFile {
    /// Maps `path` and validates its header and every section header.
    pub fn open(path: &Path) -> Result<ElfFile, SignError> {
        let err = |p: Problem| SignError::new(path, p);
        // Looked at before opening: opening a FIFO blocks until a writer comes.
        let kind = std::fs::metadata(path).map_err(|e| err(e.into()))?.file_type();
        if let Some(what) = special_file(&kind) {
            return Err(err(Problem::NotRegular(what)));
        }
        let file = File::open(path).map_err(|e| err(e.into()))?;
        let meta = file.metadata().map_err(|e| err(e.into()))?;
        if meta.is_dir() {
            return Err(err(Problem::Directory));
        }
        if meta.len() == 0 {
            return Err(err(Problem::Empty));
        }
        // SAFETY: the map is read-only; a file truncated under us can fault,
        // which is the same contract every mmap-based hashing tool has.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| err(e.into()))?;
        let data: &[u8] = &map;
        if data.len() < 4 || data[..4] != elf::ELFMAG[..] {
            return Err(err(Problem::NotElf("no ELF magic")));
        }
        let kind = FileKind::parse(data).map_err(|_| err(Problem::NotElf("unknown ELF class")))?;
        let parsed = match kind {
            FileKind::Elf32 => parse::<elf::FileHeader32<Endianness>>(data, "ELF32"),
            FileKind::Elf64 => parse::<elf::FileHeader64<Endianness>>(data, "ELF64"),
            _ => Err(Problem::NotElf("unknown ELF class")),
        }
        .map_err(err)?;
        Ok(ElfFile {
            path: path.to_path_buf(),
            map,
            class: parsed.class,
            endianness: parsed.endianness,
            machine: parsed.machine,
            sections: parsed.sections,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The raw file bytes of a section (compressed form if compressed).
    pub fn raw(&self, section: &Section) -> &[u8] {
        &self.map[section.file_range()]
    }

    /// Defined, sized symbols of `.symtab` (empty when the file has none).
    pub fn symbols(&self) -> Result<Vec<Symbol>, SignError> {
        let data: &[u8] = &self.map;
        let result = if self.class == "ELF32" {
            symbols_of::<elf::FileHeader32<Endianness>>(data)
        } else {
            symbols_of::<elf::FileHeader64<Endianness>>(data)
        };
        result.map_err(|p| SignError::new(&self.path, p))
    }

    /// The signature alone.
    pub fn signature(&self) -> Result<Signature, SignError> {
        Ok(self.report()?.signature)
    }

    /// The signature with the digest of every hashed section.
    pub fn report(&self) -> Result<Report, SignError> {
        let hashed: Vec<&Section> = self
            .sections
            .iter()
            .filter(|s| s.disposition() == Some(Disposition::Hashed))
            .collect();
        if hashed.is_empty() {
            // The signature would be the SHA-256 of nothing, the same for
            // every such file: a header with no code or data is no kernel.
            return Err(SignError::new(
                &self.path,
                malformed(format!(
                    "no allocated section with contents ({} section header(s)): nothing to sign, not a kernel image",
                    self.sections.len()
                )),
            ));
        }
        let digests: Vec<[u8; 32]> = hashed
            .par_iter()
            .map(|s| self.section_digest(s))
            .collect::<Result<_, _>>()
            .map_err(|p| SignError::new(&self.path, p))?;
        let mut outer = Sha256::new();
        for d in &digests {
            outer.update(d);
        }
        let skipped = self
            .sections
            .iter()
            .filter_map(|s| match s.disposition() {
                Some(reason @ (Disposition::Nobits | Disposition::Note)) => Some(SkippedSection {
                    name: s.name.clone(),
                    reason,
                }),
                _ => None,
            })
            .collect();
        Ok(Report {
            path: self.path.clone(),
            signature: Signature(outer.finalize().into()),
            class: self.class,
            endianness: self.endianness,
            machine: machine_name(self.machine),
            sections: hashed
                .into_iter()
                .zip(digests)
                .map(|(s, sha256)| HashedSection {
                    section: s.clone(),
                    sha256,
                })
                .collect(),
            skipped,
        })
    }

    fn section_digest(&self, section: &Section) -> Result<[u8; 32], Problem> {
        let mut hasher = Sha256::new();
        match section.storage {
            Storage::Plain => self.hash_mapped(section.file_range(), &mut hasher),
            Storage::Zlib | Storage::Zstd => self.hash_compressed(section, &mut hasher)?,
        }
        Ok(hasher.finalize().into())
    }

    fn hash_mapped(&self, range: std::ops::Range<usize>, hasher: &mut Sha256) {
        let mut start = range.start;
        while start < range.end {
            let end = (start + CHUNK).min(range.end);
            hasher.update(&self.map[start..end]);
            self.release(start, end);
            start = end;
        }
    }

    /// Drops fully hashed pages from our mapping so RSS stays bounded; the
    /// page cache keeps them, so this costs nothing if they are read again.
    fn release(&self, start: usize, end: usize) {
        let page = page_size();
        let first = start.div_ceil(page) * page;
        let last = end / page * page;
        if last > first {
            // SAFETY: read-only file mapping; dropped pages are re-read from
            // the file on the next access, so no data is lost.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, first, last - first)
            };
        }
    }

    fn hash_compressed(&self, section: &Section, hasher: &mut Sha256) -> Result<(), Problem> {
        let (header_len, claimed) = compression_header(self.raw(section), self.class, self.endianness == "big")
            .ok_or_else(|| malformed(format!("section {}: bad compression header", section.name)))?;
        let payload = &self.raw(section)[header_len..];
        let reader: Box<dyn Read> = match section.storage {
            Storage::Zlib => Box::new(flate2::read::ZlibDecoder::new(payload)),
            _ => Box::new(
                zstd::stream::read::Decoder::with_buffer(payload)
                    .map_err(|e| malformed(format!("section {}: {e}", section.name)))?,
            ),
        };
        let mut writer = HashWriter(hasher);
        let copied = io::copy(&mut reader.take(claimed), &mut writer)
            .map_err(|e| malformed(format!("section {}: cannot decompress: {e}", section.name)))?;
        if copied != claimed {
            return Err(malformed(format!(
                "section {}: decompresses to {copied} bytes, header claims {claimed}",
                section.name
            )));
        }
        Ok(())
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Length of the `Elf{32,64}_Chdr` and the decompressed size it claims.
fn compression_header(raw: &[u8], class: &str, big: bool) -> Option<(usize, u64)> {
    let (len, size) = if class == "ELF32" {
        (12, read_uint(raw.get(4..8)?, big))
    } else {
        (24, read_uint(raw.get(8..16)?, big))
    };
    (raw.len() >= len).then_some((len, size))
}

fn read_uint(bytes: &[u8], big: bool) -> u64 {
    let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
    if big {
        bytes.iter().fold(0, fold)
    } else {
        bytes.iter().rev().fold(0, fold)
    }
}

struct Parsed {
    class: &'static str,
    endianness: &'static str,
    machine: u16,
    sections: Vec<Section>,
}

fn parse<Elf: FileHeader<Endian = Endianness>>(data: &[u8], class: &'static str) -> Result<Parsed, Problem> {
    let header = Elf::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let table = header.sections(endian, data).map_err(malformed)?;
    let file_len = data.len() as u64;
    let mut sections = Vec::with_capacity(table.len().min(1 << 16));
    for (index, sh) in table.iter().enumerate() {
        let name = table
            .section_name(endian, sh)
            .map_err(|_| malformed(format!("section {index}: name offset outside the section name table")))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let sh_type = sh.sh_type(endian);
        let offset: u64 = sh.sh_offset(endian).into();
        let size: u64 = sh.sh_size(endian).into();
        // Only NOBITS occupies no file bytes; anything else may be hashed
        // (even a NULL-typed section with SHF_ALLOC), so it must fit.
        let in_file = sh_type != elf::SHT_NOBITS;
        if in_file && offset.checked_add(size).is_none_or(|end| end > file_len) {
            return Err(malformed(format!(
                "section {index} ({name}) claims bytes {offset}..{} but the file has {file_len}",
                offset.saturating_add(size)
            )));
        }
        let flags: u64 = sh.sh_flags(endian).into();
        let storage = if in_file && flags & u64::from(elf::SHF_COMPRESSED) != 0 {
            compression_of::<Elf>(sh, endian, data, &name)?
        } else {
            (Storage::Plain, None)
        };
        sections.push(Section {
            index,
            kind: section_type_name(sh_type),
            sh_type,
            flags,
            addr: sh.sh_addr(endian).into(),
            offset,
            size,
            storage: storage.0,
            uncompressed_size: storage.1,
            name,
        });
    }
    Ok(Parsed {
        class,
        endianness: if endian == Endianness::Little { "little" } else { "big" },
        machine: header.e_machine(endian),
        sections,
    })
}

fn compression_of<Elf: FileHeader<Endian = Endianness>>(
    sh: &Elf::SectionHeader,
    endian: Endianness,
    data: &[u8],
    name: &str,
) -> Result<(Storage, Option<u64>), Problem> {
    let bad = |what: &str| malformed(format!("section {name}: {what}"));
    let (chdr, _, _) = sh
        .compression(endian, data)
        .map_err(|_| bad("bad compression header"))?
        .ok_or_else(|| bad("bad compression header"))?;
    let storage = match chdr.ch_type(endian) {
        elf::ELFCOMPRESS_ZLIB => Storage::Zlib,
        elf::ELFCOMPRESS_ZSTD => Storage::Zstd,
        other => return Err(bad(&format!("unknown compression type {other}"))),
    };
    Ok((storage, Some(chdr.ch_size(endian).into())))
}

fn section_type_name(t: u32) -> String {
    let name = match t {
        elf::SHT_NULL => "SHT_NULL",
        elf::SHT_PROGBITS => "SHT_PROGBITS",
        elf::SHT_SYMTAB => "SHT_SYMTAB",
        elf::SHT_STRTAB => "SHT_STRTAB",
        elf::SHT_RELA => "SHT_RELA",
        elf::SHT_HASH => "SHT_HASH",
        elf::SHT_DYNAMIC => "SHT_DYNAMIC",
        elf::SHT_NOTE => "SHT_NOTE",
        elf::SHT_NOBITS => "SHT_NOBITS",
        elf::SHT_REL => "SHT_REL",
        elf::SHT_DYNSYM => "SHT_DYNSYM",
        elf::SHT_INIT_ARRAY => "SHT_INIT_ARRAY",
        elf::SHT_FINI_ARRAY => "SHT_FINI_ARRAY",
        elf::SHT_PREINIT_ARRAY => "SHT_PREINIT_ARRAY",
        elf::SHT_GROUP => "SHT_GROUP",
        elf::SHT_GNU_HASH => "SHT_GNU_HASH",
        elf::SHT_GNU_VERSYM => "SHT_GNU_VERSYM",
        elf::SHT_GNU_VERNEED => "SHT_GNU_VERNEED",
        _ => return format!("{t:#x}"),
    };
    name.to_string()
}

fn machine_name(m: u16) -> String {
    let name = match m {
        elf::EM_386 => "EM_386",
        elf::EM_X86_64 => "EM_X86_64",
        elf::EM_AARCH64 => "EM_AARCH64",
        elf::EM_ARM => "EM_ARM",
        elf::EM_PPC => "EM_PPC",
        elf::EM_PPC64 => "EM_PPC64",
        elf::EM_S390 => "EM_S390",
        elf::EM_RISCV => "EM_RISCV",
        elf::EM_MIPS => "EM_MIPS",
        elf::EM_LOONGARCH => "EM_LOONGARCH",
        _ => return format!("{m}"),
    };
    name.to_string()
}

/// A defined symbol with a size, as `kcache diff` compares them.
#[derive(Debug, Clone)]
pub struct Symbol {
    pub name: String,
    pub section: usize,
    pub value: u64,
    pub size: u64,
}

fn symbols_of<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<Vec<Symbol>, Problem> {
    use object::read::elf::Sym;
    let header = Elf::parse(data).map_err(malformed)?;
    let endian = header.endian().map_err(malformed)?;
    let table = header.sections(endian, data).map_err(malformed)?;
    let symtab = table.symbols(endian, data, elf::SHT_SYMTAB).map_err(malformed)?;
    let mut out = Vec::new();
    for sym in symtab.iter() {
        let size: u64 = sym.st_size(endian).into();
        let shndx = usize::from(sym.st_shndx(endian));
        let defined = shndx != usize::from(elf::SHN_UNDEF) && shndx < usize::from(elf::SHN_LORESERVE);
        if size == 0 || !defined || sym.st_type() == elf::STT_SECTION || sym.st_type() == elf::STT_FILE {
            continue;
        }
        let name = symtab.symbol_name(endian, sym).map_err(malformed)?;
        out.push(Symbol {
            name: String::from_utf8_lossy(name).into_owned(),
            section: shndx,
            value: sym.st_value(endian).into(),
            size,
        });
    }
    Ok(out)
}

/// Signs one file.
pub fn sign_file(path: &Path) -> Result<Signature, SignError> {
    ElfFile::open(path)?.signature()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chdr_sizes_follow_class_and_endianness() {
        let mut raw = vec![0u8; 24];
        raw[8] = 0x10;
        assert_eq!(compression_header(&raw, "ELF64", false), Some((24, 0x10)));
        let mut raw32 = vec![0u8; 12];
        raw32[7] = 0x20;
        assert_eq!(compression_header(&raw32, "ELF32", true), Some((12, 0x20)));
        assert_eq!(compression_header(&raw32[..8], "ELF32", true), None);
    }

    #[test]
    fn signature_hex_round_trips() {
        let s = Signature([0xab; 32]);
        assert_eq!(Signature::from_hex(&s.to_hex()), Some(s));
        assert_eq!(Signature::from_hex("zz"), None);
    }
}
