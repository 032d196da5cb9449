//! A format of `.deb` files as a flat APT repository (issue 15): `Packages`,
//! `Packages.gz`, `Packages.xz` and `Release` (signed by the HTTP layer as `InRelease` and
//! `Release.gpg` when a key is set), made from the control file of
//! each package the format's `.digests` lists (sub-directories included). Everything follows
//! from the format's content and its timestamp, so the same format always gives the same
//! bytes. A file that is not a readable package is skipped with a warning.

use super::{Repo, StoreError};
use crate::model::FormatRef;
use sha1::Digest as _;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The index files a flat repository serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AptIndex {
    Packages,
    PackagesGz,
    PackagesXz,
    Release,
    /// `Release`, clearsigned.
    InRelease,
    /// A detached signature of `Release`.
    ReleaseGpg,
}

impl AptIndex {
    /// The index a file name (relative to the format) asks for, if any.
    pub fn parse(rel: &str) -> Option<AptIndex> {
        Some(match rel {
            "Packages" => AptIndex::Packages,
            "Packages.gz" => AptIndex::PackagesGz,
            "Packages.xz" => AptIndex::PackagesXz,
            "Release" => AptIndex::Release,
            "InRelease" => AptIndex::InRelease,
            "Release.gpg" => AptIndex::ReleaseGpg,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            AptIndex::Packages => "Packages",
            AptIndex::PackagesGz => "Packages.gz",
            AptIndex::PackagesXz => "Packages.xz",
            AptIndex::Release => "Release",
            AptIndex::InRelease => "InRelease",
            AptIndex::ReleaseGpg => "Release.gpg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            AptIndex::PackagesGz => "application/gzip",
            AptIndex::PackagesXz => "application/x-xz",
            AptIndex::ReleaseGpg => "application/pgp-signature",
            AptIndex::Packages | AptIndex::Release | AptIndex::InRelease => {
                "text/plain; charset=utf-8"
            }
        }
    }
}

/// A control member larger than this is not a control file.
const CONTROL_MAX: u64 = 16 << 20;

impl Repo {
    /// One index file of the format; 404 when the format is missing or still dirty. For
    /// the signed forms it is the `Release` to sign, with the format's timestamp to sign it
    /// at, so that the same content always gets the same signature.
    pub fn apt_index(&self, f: &FormatRef, which: AptIndex) -> Result<AptFile, StoreError> {
        if self.format_dirty(f)? {
            return Err(StoreError::NotFound);
        }
        let fdir = self.format_dir(f);
        let packages = packages_text(&fdir, &self.debs);
        let time = super::bundles::format_time(&fdir)?;
        let bytes = match which {
            AptIndex::Packages => packages.into_bytes(),
            AptIndex::PackagesGz => gzip(packages.as_bytes())?,
            AptIndex::PackagesXz => xz(packages.as_bytes())?,
            AptIndex::Release | AptIndex::InRelease | AptIndex::ReleaseGpg => {
                release(packages.as_bytes(), time)?.into_bytes()
            }
        };
        Ok(AptFile { bytes, time })
    }
}

/// An index file's bytes and the format's timestamp (Unix seconds).
pub struct AptFile {
    pub bytes: Vec<u8>,
    pub time: f64,
}

/// Packages read once are not read again: their control file and sums, by the content
/// digest `.digests` records. Bounded: past [`DebCache::MAX`] entries it starts afresh.
#[derive(Default)]
pub(crate) struct DebCache(Mutex<HashMap<String, Arc<Deb>>>);

/// What a package's stanza needs besides its path.
pub(crate) struct Deb {
    control: String,
    sums: Sums,
}

impl DebCache {
    const MAX: usize = 20_000;

    fn get(&self, digest: &str) -> Option<Arc<Deb>> {
        self.0.lock().ok()?.get(digest).cloned()
    }

    fn put(&self, digest: String, deb: Arc<Deb>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(digest, deb);
        }
    }
}

/// The `Packages` file: one stanza per readable `.deb`, sorted by relative path.
fn packages_text(fdir: &Path, cache: &DebCache) -> String {
    let mut out = String::new();
    for (rel, digest) in super::digests::format_digests(fdir) {
        if !rel.ends_with(".deb") {
            continue;
        }
        let digest = digest.as_str().map(str::to_owned);
        let cached = digest.as_deref().and_then(|d| cache.get(d));
        let deb = match cached {
            Some(deb) => deb,
            None => match read_deb(&fdir.join(&rel)) {
                Ok(deb) => {
                    let deb = Arc::new(deb);
                    if let Some(d) = digest {
                        cache.put(d, Arc::clone(&deb));
                    }
                    deb
                }
                Err(e) => {
                    tracing::warn!("apt: skipping {rel}: {e}");
                    continue;
                }
            },
        };
        out.push_str(&stanza(&deb, &rel));
        out.push('\n');
    }
    out
}

fn read_deb(path: &Path) -> io::Result<Deb> {
    let mut file = File::open(path)?;
    let control = read_control(&mut file)?;
    file.seek(SeekFrom::Start(0))?;
    let sums = Sums::of(&mut file)?;
    Ok(Deb { control, sums })
}

/// A package's stanza: its control fields, then where it is and its sums.
fn stanza(deb: &Deb, rel: &str) -> String {
    let sums = &deb.sums;
    let mut s = deb.control.trim_end().to_owned();
    s.push_str(&format!(
        "\nFilename: ./{rel}\nSize: {}\nMD5sum: {}\nSHA1: {}\nSHA256: {}\n",
        sums.size, sums.md5, sums.sha1, sums.sha256
    ));
    s
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
        let mut entry = entry?;
        let path = entry.path()?;
        let path = path.to_string_lossy();
        if path.trim_start_matches("./") == "control" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            if !text.lines().any(|l| l.starts_with("Package:")) {
                return Err(invalid("control file without Package"));
            }
            return Ok(text);
        }
    }
    Err(invalid("no control file"))
}

struct Sums {
    size: u64,
    md5: String,
    sha1: String,
    sha256: String,
}

impl Sums {
    fn of(r: &mut impl Read) -> io::Result<Sums> {
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

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    // No name and a zero mtime in the header: the same Packages gives the same bytes.
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    enc.write_all(data)?;
    enc.finish()
}

fn xz(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = liblzma::write::XzEncoder::new(Vec::new(), 6);
    enc.write_all(data)?;
    enc.finish()
}

/// The `Release` file: the format's time as `Date`, and the sums of the three indexes.
fn release(packages: &[u8], time: f64) -> io::Result<String> {
    let date = std::time::UNIX_EPOCH + std::time::Duration::from_secs(time.max(0.0) as u64);
    let date = httpdate::fmt_http_date(date).replace("GMT", "UTC");
    let files = [
        ("Packages", packages.to_vec()),
        ("Packages.gz", gzip(packages)?),
        ("Packages.xz", xz(packages)?),
    ];
    let mut sums = Vec::new();
    for (name, data) in &files {
        let s = Sums::of(&mut &data[..])?;
        sums.push((*name, s));
    }
    let mut out = format!("Date: {date}\n");
    for field in ["MD5Sum", "SHA1", "SHA256"] {
        out.push_str(&format!("{field}:\n"));
        for (name, s) in &sums {
            let sum = match field {
                "MD5Sum" => &s.md5,
                "SHA1" => &s.sha1,
                _ => &s.sha256,
            };
            out.push_str(&format!(" {sum} {:>8} {name}\n", s.size));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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

    fn control_tar_gz(control: &str) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(control.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, "./control", control.as_bytes())
            .unwrap();
        gzip(&tar.into_inner().unwrap()).unwrap()
    }

    fn deb(control: &str) -> Vec<u8> {
        let mut out = b"!<arch>\n".to_vec();
        out.extend(member("debian-binary", b"2.0\n"));
        out.extend(member("control.tar.gz", &control_tar_gz(control)));
        out.extend(member("data.tar.gz", &gzip(b"").unwrap()));
        out
    }

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
    fn a_package_is_read_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let text = "Package: hello\nVersion: 1.0\n";
        std::fs::write(dir.path().join("sub/a.deb"), deb(text)).unwrap();
        std::fs::write(dir.path().join("bad.deb"), b"junk").unwrap();
        std::fs::write(
            dir.path().join(".digests"),
            r#"{"sub/a.deb": "sha256:aa", "bad.deb": "sha256:bb", "x.txt": "sha256:cc"}"#,
        )
        .unwrap();
        let cache = DebCache::default();
        let first = packages_text(dir.path(), &cache);
        assert!(first.starts_with(text), "{first}");
        assert!(first.contains("\nFilename: ./sub/a.deb\n"), "{first}");
        assert_eq!(first.matches("Package:").count(), 1);
        // Same digest, so the file is not read again.
        std::fs::write(dir.path().join("sub/a.deb"), b"junk").unwrap();
        assert_eq!(packages_text(dir.path(), &cache), first);
    }

    #[test]
    fn release_is_deterministic_and_lists_the_indexes() {
        let a = release(b"Package: x\n\n", 1_700_000_000.5).unwrap();
        assert_eq!(a, release(b"Package: x\n\n", 1_700_000_000.5).unwrap());
        assert!(a.starts_with("Date: Tue, 14 Nov 2023 22:13:20 UTC\nMD5Sum:\n"));
        assert_eq!(a.matches(" Packages.xz\n").count(), 3);
    }
}
