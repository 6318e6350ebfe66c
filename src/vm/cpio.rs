//! The initramfs format: a `newc` cpio archive (the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`), written
//! in memory. Uncompressed: the kernel unpacks it as it is, whatever
//! decompressors its config has.

/// One archive entry.
pub enum Entry<'a> {
    Dir {
        path: &'a str,
    },
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    /// A character device node (`/dev/console` before devtmpfs is mounted).
    CharDev {
        path: &'a str,
        major: u32,
        minor: u32,
    },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// The archive of `entries`, in order (parents before children), then the
/// trailer. Paths are relative (`init`, `dev/console`), as the kernel's own
/// `gen_init_cpio` writes them.
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match *entry {
            Entry::Dir { path } => push(&mut out, ino, S_IFDIR | 0o755, 2, (0, 0), path, &[]),
            Entry::File { path, mode, data } => push(&mut out, ino, S_IFREG | mode, 1, (0, 0), path, data),
            Entry::CharDev { path, major, minor } => push(&mut out, ino, S_IFCHR | 0o600, 1, (major, minor), path, &[]),
        }
    }
    push(&mut out, 0, 0, 1, (0, 0), "TRAILER!!!", &[]);
    out
}

/// One header (`070701` and 13 eight-digit hex fields), the name with its
/// NUL padded to 4 bytes, the data padded to 4 bytes.
fn push(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, rdev: (u32, u32), name: &str, data: &[u8]) {
    let fields = [
        ino,
        mode,
        0, // uid: root
        0, // gid
        nlink,
        0, // mtime: fixed, so equal inputs make equal archives
        data.len() as u32,
        0, // devmajor
        0, // devminor
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0, // check (only for the 070702 format)
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the archive back the way the kernel does, field by field.
    fn names_and_sizes(mut a: &[u8]) -> Vec<(String, u32, usize)> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            assert_eq!(&a[..6], b"070701", "magic at offset {offset}");
            let field =
                |i: usize| u32::from_str_radix(std::str::from_utf8(&a[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap();
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&a[110..110 + namesize - 1]).unwrap().to_string();
            assert_eq!(a[110 + namesize - 1], 0);
            let data_at = (110 + namesize).next_multiple_of(4);
            let next = (data_at + size).next_multiple_of(4);
            assert!((offset + data_at) % 4 == 0);
            if name == "TRAILER!!!" {
                assert_eq!(next, a.len());
                return out;
            }
            out.push((name, mode, size));
            offset += next;
            a = &a[next..];
        }
    }

    #[test]
    fn archive_reads_back_with_modes_sizes_and_alignment() {
        let a = archive(&[
            Entry::Dir { path: "dev" },
            Entry::CharDev {
                path: "dev/console",
                major: 5,
                minor: 1,
            },
            Entry::File {
                path: "init",
                mode: 0o755,
                data: b"12345",
            },
            Entry::File {
                path: "repro",
                mode: 0o755,
                data: b"",
            },
        ]);
        assert_eq!(a.len() % 4, 0);
        assert_eq!(
            names_and_sizes(&a),
            [
                ("dev".to_string(), 0o040755, 0),
                ("dev/console".to_string(), 0o020600, 0),
                ("init".to_string(), 0o100755, 5),
                ("repro".to_string(), 0o100755, 0),
            ]
        );
        // The same inputs give the same bytes (the initramfs is cached by content).
        assert_eq!(
            a,
            archive(&[
                Entry::Dir { path: "dev" },
                Entry::CharDev {
                    path: "dev/console",
                    major: 5,
                    minor: 1
                },
                Entry::File {
                    path: "init",
                    mode: 0o755,
                    data: b"12345"
                },
                Entry::File {
                    path: "repro",
                    mode: 0o755,
                    data: b""
                }
            ])
        );
    }
}
