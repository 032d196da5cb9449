//! The header of an `.rpm` file, read by hand (issue 15): the 96-byte lead, the signature
//! header (padded to 8 bytes), then the main header, each a magic `8eade801`, an index of
//! 16-byte entries and a data store. Only the tags repository metadata needs are kept.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{self, Read};

/// A header larger than this is not one (rpm itself refuses headers past 256 MiB; real
/// ones are a few hundred KiB at most).
const HEADER_MAX: usize = 64 << 20;
/// A package with more entries than this in one tag (files, requires...) is refused.
pub(crate) const TAG_ENTRIES_MAX: usize = 1 << 20;
/// What one package's metadata may take, in bytes: each string's length plus
/// [`ENTRY_COST`], each number 8. A package past it is refused (the XML it would make is of
/// that size; real packages take a few MiB at most).
pub(crate) const METADATA_MAX: usize = 64 << 20;
/// What each string costs besides its bytes: about its memory, and its XML markup.
const ENTRY_COST: usize = 32;

/// A package as the metadata needs it: its header, and the size and SHA-256 of the file.
pub(crate) struct Rpm {
    pub header: RpmHeader,
    pub size: u64,
    pub sha256: String,
}

/// What `primary.xml`, `filelists.xml` and `other.xml` say of a package.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct RpmHeader {
    pub name: String,
    pub arch: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    pub summary: String,
    pub description: String,
    pub packager: String,
    pub url: String,
    pub license: String,
    pub vendor: String,
    pub group: String,
    pub buildhost: String,
    pub sourcerpm: String,
    pub build_time: u64,
    pub installed_size: u64,
    pub archive_size: u64,
    /// Byte offsets of the main header in the file: `<rpm:header-range>`.
    pub header_start: u64,
    pub header_end: u64,
    /// `provides`, `requires`, `conflicts`, `obsoletes`, then the weak dependencies (see
    /// `DEP_TAGS`), each with its entries in header order.
    pub deps: Vec<(&'static str, Vec<Dep>)>,
    pub files: Vec<RpmFile>,
    /// (author, time, text), newest first as rpm stores them.
    pub changelogs: Vec<(String, u64, String)>,
    /// What it takes in memory, about (see [`METADATA_MAX`]).
    pub weight: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Dep {
    pub name: String,
    pub flags: u32,
    /// `[epoch:]version[-release]`, empty when unversioned.
    pub evr: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RpmFile {
    pub path: String,
    pub dir: bool,
    pub ghost: bool,
}

/// The dependency kinds, as (element name, name tag, flags tag, version tag), in the
/// order createrepo_c writes them.
const DEP_TAGS: [(&str, u32, u32, u32); 8] = [
    ("provides", 1047, 1112, 1113),
    ("requires", 1049, 1048, 1050),
    ("conflicts", 1054, 1053, 1055),
    ("obsoletes", 1090, 1114, 1115),
    ("suggests", 5049, 5051, 5050),
    ("enhances", 5055, 5057, 5056),
    ("recommends", 5046, 5048, 5047),
    ("supplements", 5052, 5054, 5053),
];

const RPMFILE_GHOST: u32 = 1 << 6;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// Reads the lead and both headers from the start of an `.rpm` file.
pub(crate) fn read_header(r: &mut impl Read) -> io::Result<RpmHeader> {
    let mut lead = [0u8; 96];
    r.read_exact(&mut lead)
        .map_err(|_| invalid("shorter than an rpm lead"))?;
    if lead[..4] != [0xed, 0xab, 0xee, 0xdb] {
        return Err(invalid("not an rpm file"));
    }
    let (sig, sig_len) = Header::read(r)?;
    let pad = (8 - sig_len % 8) % 8;
    io::copy(&mut r.take(pad as u64), &mut io::sink())?;
    let header_start = (96 + sig_len + pad) as u64;
    let (main, main_len) = Header::read(r)?;
    let mut h = main.package()?;
    h.header_start = header_start;
    h.header_end = header_start + main_len as u64;
    // The payload size lives in the signature header (PAYLOADSIZE, LONGARCHIVESIZE); old
    // packages also have it in the main header (ARCHIVESIZE).
    h.archive_size = sig
        .number(271)
        .or_else(|| sig.number(1007))
        .or_else(|| main.number(1046))
        .unwrap_or(0);
    Ok(h)
}

/// One parsed header: its index entries and its data store, and what is left of the
/// package's [`METADATA_MAX`] as its values are read.
struct Header {
    entries: HashMap<u32, Entry>,
    store: Vec<u8>,
    left: Cell<usize>,
    /// A tag or the whole went past its limit: the package is refused.
    over: Cell<bool>,
}

#[derive(Clone, Copy)]
struct Entry {
    typ: u32,
    offset: usize,
    count: usize,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Header {
    /// A header and its length in bytes (intro, index and store).
    fn read(r: &mut impl Read) -> io::Result<(Header, usize)> {
        let mut intro = [0u8; 16];
        r.read_exact(&mut intro)
            .map_err(|_| invalid("truncated header"))?;
        if intro[..4] != [0x8e, 0xad, 0xe8, 0x01] {
            return Err(invalid("bad header magic"));
        }
        let n = be32(&intro[8..12]) as usize;
        let size = be32(&intro[12..16]) as usize;
        if n.saturating_mul(16).saturating_add(size) > HEADER_MAX {
            return Err(invalid("header too large"));
        }
        let mut index = vec![0u8; n * 16];
        r.read_exact(&mut index)
            .map_err(|_| invalid("truncated header index"))?;
        let mut store = vec![0u8; size];
        r.read_exact(&mut store)
            .map_err(|_| invalid("truncated header store"))?;
        // By tag, the first of each (a lookup per tag read, not a scan of millions).
        let entries = index
            .chunks_exact(16)
            .rev()
            .map(|e| {
                let entry = Entry {
                    typ: be32(&e[4..8]),
                    offset: be32(&e[8..12]) as usize,
                    count: be32(&e[12..16]) as usize,
                };
                (be32(&e[0..4]), entry)
            })
            .collect();
        let header = Header {
            entries,
            store,
            left: Cell::new(METADATA_MAX),
            over: Cell::new(false),
        };
        Ok((header, 16 + n * 16 + size))
    }

    /// Takes `bytes` from what is left; `false` (and the package refused) past it.
    fn charge(&self, bytes: usize) -> bool {
        match self.left.get().checked_sub(bytes) {
            Some(left) if !self.over.get() => {
                self.left.set(left);
                true
            }
            _ => {
                self.over.set(true);
                false
            }
        }
    }

    /// The entry count of a tag, refusing the package past [`TAG_ENTRIES_MAX`].
    fn count(&self, e: &Entry) -> usize {
        if e.count > TAG_ENTRIES_MAX {
            self.over.set(true);
            return 0;
        }
        e.count
    }

    fn entry(&self, tag: u32) -> Option<Entry> {
        self.entries.get(&tag).copied()
    }

    /// The strings of a STRING, STRING_ARRAY or I18NSTRING entry (the first locale's
    /// for the latter, as rpm's default `C` locale picks it), at most `max`.
    fn strings_up_to(&self, tag: u32, max: usize) -> Vec<String> {
        let Some(e) = self.entry(tag) else {
            return Vec::new();
        };
        if !matches!(e.typ, 6 | 8 | 9) {
            return Vec::new();
        }
        let count = if e.typ == 8 { self.count(&e) } else { 1 };
        // Each string takes at least its NUL in the store.
        let count = count
            .min(max)
            .min(self.store.len().saturating_sub(e.offset));
        let mut out = Vec::with_capacity(count);
        let mut at = e.offset;
        for _ in 0..count {
            let Some(rest) = self.store.get(at..).filter(|r| !r.is_empty()) else {
                break;
            };
            let len = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            if !self.charge(len + ENTRY_COST) {
                return Vec::new();
            }
            out.push(String::from_utf8_lossy(&rest[..len]).into_owned());
            at += len + 1;
        }
        out
    }

    fn strings(&self, tag: u32) -> Vec<String> {
        self.strings_up_to(tag, usize::MAX)
    }

    fn string(&self, tag: u32) -> String {
        self.strings_up_to(tag, 1)
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The integers of an INT16, INT32 or INT64 entry (INT8 and CHAR too).
    fn numbers(&self, tag: u32) -> Vec<u64> {
        let Some(e) = self.entry(tag) else {
            return Vec::new();
        };
        let width = match e.typ {
            1 | 2 => 1,
            3 => 2,
            4 => 4,
            5 => 8,
            _ => return Vec::new(),
        };
        let count = self.count(&e);
        if !self.charge(count * 8) {
            return Vec::new();
        }
        let Some(bytes) = count
            .checked_mul(width)
            .and_then(|len| self.store.get(e.offset..e.offset.checked_add(len)?))
        else {
            return Vec::new();
        };
        bytes
            .chunks_exact(width)
            .map(|c| c.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
            .collect()
    }

    fn number(&self, tag: u32) -> Option<u64> {
        self.numbers(tag).first().copied()
    }

    /// The main header as a package.
    fn package(&self) -> io::Result<RpmHeader> {
        let name = self.string(1000);
        if name.is_empty() {
            return Err(invalid("header without a name"));
        }
        let deps = DEP_TAGS
            .iter()
            .map(|&(kind, n, f, v)| (kind, self.deps(n, f, v)))
            .collect();
        let h = RpmHeader {
            name,
            version: self.string(1001),
            release: self.string(1002),
            epoch: self.number(1003).unwrap_or(0) as u32,
            summary: self.string(1004),
            description: self.string(1005),
            build_time: self.number(1006).unwrap_or(0),
            buildhost: self.string(1007),
            installed_size: self.number(5009).or_else(|| self.number(1009)).unwrap_or(0),
            vendor: self.string(1011),
            license: self.string(1014),
            packager: self.string(1015),
            group: self.string(1016),
            url: self.string(1020),
            // A source package has no SOURCERPM: its arch is `src`, as rpm and createrepo say.
            arch: match self.entry(1044) {
                Some(_) => self.string(1022),
                None => "src".to_owned(),
            },
            sourcerpm: self.string(1044),
            deps,
            files: self.files(),
            changelogs: self.changelogs(),
            weight: METADATA_MAX - self.left.get(),
            ..RpmHeader::default()
        };
        if self.over.get() {
            return Err(invalid(
                "metadata past its limits (1M entries in a tag, 64 MiB in all)",
            ));
        }
        Ok(h)
    }

    fn deps(&self, names: u32, flags: u32, versions: u32) -> Vec<Dep> {
        let flags = self.numbers(flags);
        let versions = self.strings(versions);
        self.strings(names)
            .into_iter()
            .enumerate()
            .map(|(i, name)| Dep {
                name,
                flags: flags.get(i).copied().unwrap_or(0) as u32,
                evr: versions.get(i).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The file list: BASENAMES with DIRNAMES by DIRINDEXES, or OLDFILENAMES.
    fn files(&self) -> Vec<RpmFile> {
        let dirs = self.strings(1118);
        let indexes = self.numbers(1116);
        let mut paths: Vec<String> = self
            .strings(1117)
            .into_iter()
            .enumerate()
            .map_while(|(i, base)| {
                let dir = indexes
                    .get(i)
                    .and_then(|&d| dirs.get(d as usize))
                    .map_or("", String::as_str);
                // One long directory named by many files is as many copies of it.
                self.charge(dir.len()).then(|| format!("{dir}{base}"))
            })
            .collect();
        if paths.is_empty() {
            paths = self.strings(1027);
        }
        let modes = self.numbers(1030);
        let flags = self.numbers(1037);
        paths
            .into_iter()
            .enumerate()
            .map(|(i, path)| RpmFile {
                path,
                dir: modes.get(i).is_some_and(|&m| m as u32 & S_IFMT == S_IFDIR),
                ghost: flags.get(i).is_some_and(|&f| f as u32 & RPMFILE_GHOST != 0),
            })
            .collect()
    }

    fn changelogs(&self) -> Vec<(String, u64, String)> {
        let times = self.numbers(1080);
        let texts = self.strings(1082);
        self.strings(1081)
            .into_iter()
            .zip(times)
            .zip(texts)
            .map(|((author, time), text)| (author, time, text))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A header from (tag, type, count, data) entries, data placed in order.
    pub(crate) fn header(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut index = Vec::new();
        let mut store = Vec::new();
        for (tag, typ, count, data) in entries {
            for v in [*tag, *typ, store.len() as u32, *count] {
                index.extend_from_slice(&v.to_be_bytes());
            }
            store.extend_from_slice(data);
        }
        let mut out = vec![0x8e, 0xad, 0xe8, 0x01, 0, 0, 0, 0];
        out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        out.extend_from_slice(&(store.len() as u32).to_be_bytes());
        out.extend(index);
        out.extend(store);
        out
    }

    fn strs(items: &[&str]) -> Vec<u8> {
        items
            .iter()
            .flat_map(|s| [s.as_bytes(), b"\0"].concat())
            .collect()
    }

    /// A small package: `hello-1.0-1.noarch`.
    pub(crate) fn rpm() -> Vec<u8> {
        let mut out = vec![0xed, 0xab, 0xee, 0xdb];
        out.resize(96, 0);
        // 16 + 16 + 4 = 36 bytes: padded with 4 to 40.
        out.extend(header(&[(1007, 4, 1, 1234u32.to_be_bytes().to_vec())]));
        out.extend([0u8; 4]);
        out.extend(header(&[
            (1000, 6, 1, strs(&["hello"])),
            (1001, 6, 1, strs(&["1.0"])),
            (1002, 6, 1, strs(&["1"])),
            (1004, 9, 1, strs(&["a <greeting>"])),
            (1022, 6, 1, strs(&["noarch"])),
            (1044, 6, 1, strs(&["hello-1.0-1.src.rpm"])),
            (1049, 8, 2, strs(&["rpmlib(X)", "other"])),
            (1050, 8, 2, strs(&["1", "2.0-1"])),
            (
                1048,
                4,
                2,
                [16777224u32, 12]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
            ),
            (
                1116,
                4,
                2,
                [0u32, 1].iter().flat_map(|v| v.to_be_bytes()).collect(),
            ),
            (1117, 8, 2, strs(&["hello", "doc"])),
            (1118, 8, 2, strs(&["/usr/bin/", "/usr/share/"])),
            (1030, 3, 2, vec![0x81, 0xed, 0x41, 0xed]),
        ]));
        out
    }

    #[test]
    fn a_header_is_read() {
        let bytes = rpm();
        let h = read_header(&mut &bytes[..]).unwrap();
        assert_eq!((h.name.as_str(), h.version.as_str()), ("hello", "1.0"));
        assert_eq!(
            (h.summary.as_str(), h.arch.as_str()),
            ("a <greeting>", "noarch")
        );
        assert_eq!(
            (h.header_start, h.header_end),
            (96 + 40, bytes.len() as u64)
        );
        assert_eq!(h.archive_size, 1234);
        let requires = &h.deps[1];
        assert_eq!(requires.0, "requires");
        assert_eq!(requires.1[1].evr, "2.0-1");
        assert_eq!(requires.1[1].flags, 12);
        assert_eq!(h.files[0].path, "/usr/bin/hello");
        assert!(!h.files[0].dir && h.files[1].dir);
        assert_eq!(h.files[1].path, "/usr/share/doc");
    }

    #[test]
    fn no_truncation_or_flipped_byte_panics() {
        let whole = rpm();
        for len in 0..whole.len() {
            let _ = read_header(&mut &whole[..len]);
        }
        for at in 96..whole.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut bytes = whole.clone();
                bytes[at] ^= flip;
                let _ = read_header(&mut &bytes[..]);
            }
        }
    }

    /// An rpm whose main header has `entries` besides a name.
    fn rpm_with(entries: &[(u32, u32, u32, Vec<u8>)]) -> Vec<u8> {
        let mut out = vec![0xed, 0xab, 0xee, 0xdb];
        out.resize(96, 0);
        out.extend(header(&[]));
        let mut all = vec![(1000, 6, 1, strs(&["x"]))];
        all.extend_from_slice(entries);
        out.extend(header(&all));
        out
    }

    #[test]
    fn bombs_are_refused_not_read() {
        let nuls = |n: usize| vec![0u8; n];
        let ints = |n: usize| vec![0u8; n * 4];
        let refused = |entries: &[(u32, u32, u32, Vec<u8>)]| {
            let err = read_header(&mut &rpm_with(entries)[..]).err().unwrap();
            assert!(err.to_string().contains("past its limits"), "{err}");
        };
        // Past 1M entries in one tag: each NUL would be one empty file name.
        refused(&[(1117, 8, 2 << 20, nuls(2 << 20))]);
        // 1M entries in each of two tags: past 64 MiB in all.
        let m = 1 << 20;
        refused(&[
            (1117, 8, m, nuls(m as usize)),
            (1047, 8, m, nuls(m as usize)),
        ]);
        // One 1 MiB directory named by 100 files: 100 MiB of paths.
        refused(&[
            (1118, 8, 1, [vec![b'd'; 1 << 20], vec![0]].concat()),
            (1117, 8, 100, nuls(100)),
            (1116, 4, 100, ints(100)),
        ]);
        // A real-sized package is not.
        let h = read_header(&mut &rpm()[..]).unwrap();
        assert!(h.weight > 0 && h.weight < 4096, "{}", h.weight);
    }

    #[test]
    fn broken_files_are_refused_not_panicked_on() {
        let whole = rpm();
        for bytes in [
            b"hello".to_vec(),
            whole[..100].to_vec(),
            whole[..150].to_vec(),
        ] {
            assert!(read_header(&mut &bytes[..]).is_err());
        }
        // Offsets and counts that point past the store give nothing, not a panic; without
        // a SOURCERPM it is a source package.
        let mut out = vec![0xed, 0xab, 0xee, 0xdb];
        out.resize(96, 0);
        out.extend(header(&[]));
        out.extend(header(&[
            (1000, 6, 1, strs(&["x"])),
            (1117, 8, 1_000_000, vec![]),
            (1030, 3, 1_000_000, vec![]),
        ]));
        let h = read_header(&mut &out[..]).unwrap();
        assert!(h.files.is_empty());
        assert_eq!(h.arch, "src");
    }
}
