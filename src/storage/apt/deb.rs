//! One `.deb` as an index sees it: its control file (read from the `ar` member
//! `control.tar[.gz|.xz|.zst]`) and its sums, read once per content digest ([`DebCache`]).

use super::cache::{Cache, Weigh, digest_matches, key_of};
use sha1::Digest as _;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A control member (`control.tar*`, compressed, and the tar it holds) larger than this is
/// not one.
const CONTROL_MAX: u64 = 16 << 20;
/// A control file larger than this is refused: its text goes into every index listing the
/// package (real ones take a few KiB).
pub(crate) const CONTROL_FILE_MAX: u64 = 1 << 20;

/// Packages read once are not read again: their control file and sums, by the content
/// digest `.digests` records, once the file is seen to have that digest. Bounded by
/// [`DebCache::BUDGET`] bytes, the least recently used first.
pub(crate) struct DebCache {
    cache: Cache<Deb>,
    /// How many packages were read from disk (tests and the bench look at it).
    reads: AtomicU64,
}

impl Default for DebCache {
    fn default() -> Self {
        DebCache {
            cache: Cache::with_budget(Self::BUDGET),
            reads: AtomicU64::new(0),
        }
    }
}

/// A package whose bytes are not those `.digests` records (replaced since): neither kept
/// nor listed, and the index not kept, so that the next request reads it again.
#[derive(Debug)]
pub(crate) struct Changed;

impl std::fmt::Display for Changed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("its content is not the digest .digests records")
    }
}

impl std::error::Error for Changed {}

/// Whether `e` is [`Changed`]: worth trying again later, as a failed read.
pub(crate) fn is_changed(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Changed>())
}

/// What a package's stanza needs besides its path.
pub(crate) struct Deb {
    control: String,
    sums: Sums,
}

impl Weigh for Deb {
    fn weight(&self) -> usize {
        // The control text, the three sums and the bookkeeping around them.
        self.control.len() + 256
    }
}

impl DebCache {
    /// What the packages kept may take together.
    pub(crate) const BUDGET: usize = 32 << 20;

    /// The package at `path` whose content `.digests` records as `digest`: from memory
    /// when that content was read before; [`Changed`] when the file is not that content.
    pub(crate) fn load(&self, path: &Path, digest: Option<&str>) -> io::Result<Arc<Deb>> {
        let key = digest.map(key_of);
        if let Some(deb) = key.and_then(|k| self.cache.get(&k)) {
            return Ok(deb);
        }
        self.reads.fetch_add(1, Ordering::Relaxed);
        let deb = Arc::new(read_deb(path)?);
        if let Some(d) = digest {
            let sums = &deb.sums;
            let by_algo = [
                ("md5", &*sums.md5),
                ("sha1", &*sums.sha1),
                ("sha256", &*sums.sha256),
            ];
            match digest_matches(d, &by_algo) {
                Some(false) => return Err(io::Error::other(Changed)),
                Some(true) => self.cache.put(key_of(d), Arc::clone(&deb)),
                // Listed as `.digests` says, read again next time.
                None => {}
            }
        }
        Ok(deb)
    }

    /// Packages read from disk so far.
    #[cfg(test)]
    pub(crate) fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

impl Deb {
    /// The package's stanza: its control fields, then where it is (`./{rel}`) and its sums.
    pub(crate) fn stanza(&self, rel: &str) -> String {
        let sums = &self.sums;
        let mut s = self.control.trim_end().to_owned();
        s.push_str(&format!(
            "\nFilename: ./{rel}\nSize: {}\nMD5sum: {}\nSHA1: {}\nSHA256: {}\n",
            sums.size, sums.md5, sums.sha1, sums.sha256
        ));
        s
    }

    /// `Package`, `Version` and `Architecture`: what apt tells packages apart by.
    pub(crate) fn identity(&self) -> (String, String, String) {
        // Field names are case-insensitive (deb822), and each is there once (`clean`).
        let field = |name: &str| {
            self.control
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
                .unwrap_or_default()
        };
        (field("Package"), field("Version"), field("Architecture"))
    }
}

fn read_deb(path: &Path) -> io::Result<Deb> {
    let mut file = File::open(path)?;
    let control = read_control(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    let sums = Sums::of(&mut file)?;
    Ok(Deb { control, sums })
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_owned())
}

/// The `control` file of a `.deb`: an `ar` archive whose `control.tar[.gz|.xz|.zst]`
/// member holds it.
pub(crate) fn read_control<R: Read + Seek>(deb: &mut R) -> io::Result<String> {
    let mut magic = [0u8; 8];
    deb.read_exact(&mut magic)?;
    if &magic != b"!<arch>\n" {
        return Err(invalid("not an ar archive"));
    }
    loop {
        let mut header = [0u8; 60];
        deb.read_exact(&mut header)
            .map_err(|_| invalid("no control member"))?;
        let name = String::from_utf8_lossy(&header[..16]);
        let name = name.trim_end().trim_end_matches('/').to_owned();
        let size: u64 = String::from_utf8_lossy(&header[48..58])
            .trim()
            .parse()
            .map_err(|_| invalid("bad ar header"))?;
        if let Some(suffix) = name.strip_prefix("control.tar") {
            if size > CONTROL_MAX {
                return Err(invalid("control member too large"));
            }
            return control_from_tar(deb.take(size), suffix);
        }
        deb.seek(SeekFrom::Current((size + size % 2) as i64))?;
    }
}

fn control_from_tar<R: Read>(member: R, suffix: &str) -> io::Result<String> {
    let reader: Box<dyn Read + '_> = match suffix {
        "" => Box::new(member),
        ".gz" => Box::new(flate2::read::GzDecoder::new(member)),
        ".xz" => Box::new(liblzma::read::XzDecoder::new(member)),
        ".zst" => Box::new(zstd::stream::read::Decoder::new(member)?),
        _ => return Err(invalid("unknown control compression")),
    };
    let mut archive = tar::Archive::new(reader.take(CONTROL_MAX));
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?;
        let path = path.to_string_lossy();
        if path.trim_start_matches("./") == "control" {
            if entry.size() > CONTROL_FILE_MAX {
                return Err(invalid("control file larger than 1 MiB"));
            }
            let mut text = String::new();
            entry.take(CONTROL_FILE_MAX).read_to_string(&mut text)?;
            return super::control::clean(&text);
        }
    }
    Err(invalid("no control file"))
}

/// A file's size and the three sums `Packages` and `Release` list.
pub(crate) struct Sums {
    pub size: u64,
    pub md5: String,
    pub sha1: String,
    pub sha256: String,
}

impl Sums {
    pub(crate) fn of(r: &mut impl Read) -> io::Result<Sums> {
        let (mut md5, mut sha1, mut sha256) =
            (md5::Md5::new(), sha1::Sha1::new(), sha2::Sha256::new());
        let mut buf = vec![0u8; 64 << 10];
        let mut size = 0u64;
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            md5.update(&buf[..n]);
            sha1.update(&buf[..n]);
            sha256.update(&buf[..n]);
        }
        Ok(Sums {
            size,
            md5: hex::encode(md5.finalize()),
            sha1: hex::encode(sha1.finalize()),
            sha256: hex::encode(sha256.finalize()),
        })
    }
}

/// Builds small `.deb` files in memory for the unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::Write;

    /// An `ar` member header and its (padded) data.
    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut out = format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            name,
            0,
            0,
            0,
            "100644",
            data.len()
        )
        .into_bytes();
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn control_tar_gz(control: &str) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(control.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "./control", control.as_bytes())
            .unwrap();
        gz(&tar.into_inner().unwrap())
    }

    /// A `.deb` whose control file is `control` and whose data is empty.
    pub(crate) fn deb(control: &str) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        out.extend(member("debian-binary", b"2.0\n"));
        out.extend(member("control.tar.gz", &control_tar_gz(control)));
        out.extend(member("data.tar.gz", &gz(b"")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::deb;
    use super::*;
    use std::io::Cursor;

    #[test]
    fn control_is_read_from_the_ar_member() {
        let text = "Package: hello\nVersion: 1.0\nArchitecture: all\n";
        let got = read_control(&mut Cursor::new(deb(text))).unwrap();
        assert_eq!(got, text);
    }

    #[test]
    fn non_packages_are_refused_not_panicked_on() {
        for bytes in [
            b"hello".to_vec(),
            b"!<arch>\n".to_vec(),
            b"!<arch>\nshort".to_vec(),
            deb("Description: no package field\n"),
        ] {
            assert!(read_control(&mut Cursor::new(bytes)).is_err());
        }
    }

    #[test]
    fn a_control_file_past_1_mib_is_refused() {
        let big = format!("Package: a\nDescription: x\n {}\n", "a".repeat(1 << 20));
        let err = read_control(&mut Cursor::new(deb(&big))).unwrap_err();
        assert!(err.to_string().contains("larger than 1 MiB"), "{err}");
        let fits = format!("Package: a\nDescription: x\n {}\n", "a".repeat(1000));
        assert!(read_control(&mut Cursor::new(deb(&fits))).is_ok());
    }

    #[test]
    fn a_file_that_is_not_its_digest_is_neither_kept_nor_listed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.deb");
        let bytes = deb("Package: a\n");
        std::fs::write(&path, &bytes).unwrap();
        let cache = DebCache::default();
        let real = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        let other = format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"x")));
        let err = cache.load(&path, Some(&other)).err().unwrap();
        assert!(is_changed(&err), "{err}");
        assert!(cache.load(&path, Some(&other)).is_err());
        assert!(cache.load(&path, Some(&real)).is_ok());
        assert!(cache.load(&path, Some(&real)).is_ok());
        assert_eq!(cache.reads(), 3);
    }

    #[test]
    fn identity_is_name_version_and_architecture() {
        let deb = Deb {
            control: "Package: foo\nVersion: 1:2.0-1\nArchitecture: amd64\nDepends: bar\n".into(),
            sums: Sums::of(&mut &b""[..]).unwrap(),
        };
        let want = ("foo".into(), "1:2.0-1".into(), "amd64".into());
        assert_eq!(deb.identity(), want);
    }
}
