//! A format of `.rpm` files as a dnf/yum repository (issue 15): `repodata/repomd.xml` and
//! the `primary`, `filelists` and `other` metadata it names (`repodata/*.xml.gz`, gzip as
//! createrepo_c makes them), made from the header of each package the format's `.digests`
//! lists (sub-directories included); the HTTP layer signs `repomd.xml` as
//! `repodata/repomd.xml.asc` when a key is set. Everything follows from the format's
//! content and its timestamp, so the same format always gives the same bytes. A file that is
//! not a readable package is skipped with a warning.

use super::rpm_header::{Rpm, read_header};
use super::rpm_xml;
use super::{Repo, StoreError};
use crate::model::FormatRef;
use sha2::Digest as _;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The files of `repodata/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RpmIndex {
    RepoMd,
    /// `repomd.xml`, as an armored detached signature.
    RepoMdAsc,
    Primary,
    Filelists,
    Other,
}

impl RpmIndex {
    /// The index a file name (relative to the format) asks for, if any.
    pub fn parse(rel: &str) -> Option<RpmIndex> {
        Some(match rel.strip_prefix("repodata/")? {
            "repomd.xml" => RpmIndex::RepoMd,
            "repomd.xml.asc" => RpmIndex::RepoMdAsc,
            "primary.xml.gz" => RpmIndex::Primary,
            "filelists.xml.gz" => RpmIndex::Filelists,
            "other.xml.gz" => RpmIndex::Other,
            _ => return None,
        })
    }

    /// Its path relative to the format.
    pub fn name(self) -> &'static str {
        match self {
            RpmIndex::RepoMd => "repodata/repomd.xml",
            RpmIndex::RepoMdAsc => "repodata/repomd.xml.asc",
            RpmIndex::Primary => "repodata/primary.xml.gz",
            RpmIndex::Filelists => "repodata/filelists.xml.gz",
            RpmIndex::Other => "repodata/other.xml.gz",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            RpmIndex::RepoMd => "application/xml",
            RpmIndex::RepoMdAsc => "application/pgp-signature",
            RpmIndex::Primary | RpmIndex::Filelists | RpmIndex::Other => "application/gzip",
        }
    }
}

/// A `repodata/` file's bytes and the format's timestamp (Unix seconds). For
/// [`RpmIndex::RepoMdAsc`] the bytes are `repomd.xml`, to be signed at that time.
pub struct RpmRepoFile {
    pub bytes: Vec<u8>,
    pub time: f64,
}

impl Repo {
    /// One `repodata/` file of the format; 404 when the format is missing or still dirty.
    pub fn rpm_index(&self, f: &FormatRef, which: RpmIndex) -> Result<RpmRepoFile, StoreError> {
        if self.format_dirty(f)? {
            return Err(StoreError::NotFound);
        }
        let fdir = self.format_dir(f);
        let time = super::bundles::format_time(&fdir)?;
        let packages = packages(&fdir, &self.rpms);
        let secs = time.max(0.0) as u64;
        let bytes = match which {
            RpmIndex::Primary => gzip(rpm_xml::primary(&packages, secs).as_bytes())?,
            RpmIndex::Filelists => gzip(rpm_xml::filelists(&packages).as_bytes())?,
            RpmIndex::Other => gzip(rpm_xml::other(&packages).as_bytes())?,
            RpmIndex::RepoMd | RpmIndex::RepoMdAsc => repomd(&packages, secs)?.into_bytes(),
        };
        Ok(RpmRepoFile { bytes, time })
    }
}

/// Packages read once are not read again: their header and sums, by the content digest
/// `.digests` records. Bounded: past [`RpmCache::MAX`] entries it starts afresh.
#[derive(Default)]
pub(crate) struct RpmCache(Mutex<HashMap<String, Arc<Rpm>>>);

impl RpmCache {
    const MAX: usize = 20_000;

    fn get(&self, digest: &str) -> Option<Arc<Rpm>> {
        self.0.lock().ok()?.get(digest).cloned()
    }

    fn put(&self, digest: String, rpm: Arc<Rpm>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= Self::MAX {
                map.clear();
            }
            map.insert(digest, rpm);
        }
    }
}

/// Every readable `.rpm` of the format with its relative path, sorted by that path.
fn packages(fdir: &Path, cache: &RpmCache) -> Vec<(String, Arc<Rpm>)> {
    let mut out = Vec::new();
    for (rel, digest) in super::digests::format_digests(fdir) {
        if !rel.ends_with(".rpm") {
            continue;
        }
        let digest = digest.as_str().map(str::to_owned);
        if let Some(rpm) = digest.as_deref().and_then(|d| cache.get(d)) {
            out.push((rel, rpm));
            continue;
        }
        match read_rpm(&fdir.join(&rel)) {
            Ok(rpm) => {
                let rpm = Arc::new(rpm);
                if let Some(d) = digest {
                    cache.put(d, Arc::clone(&rpm));
                }
                out.push((rel, rpm));
            }
            Err(e) => tracing::warn!("rpm: skipping {rel}: {e}"),
        }
    }
    out
}

fn read_rpm(path: &Path) -> io::Result<Rpm> {
    let mut file = File::open(path)?;
    let header = read_header(&mut io::BufReader::new(&mut file))?;
    file.seek(SeekFrom::Start(0))?;
    let (size, sha256) = sha256_of(&mut file)?;
    Ok(Rpm {
        header,
        size,
        sha256,
    })
}

fn sha256_of(r: &mut impl Read) -> io::Result<(u64, String)> {
    let mut hash = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hash.update(&buf[..n]);
    }
    Ok((size, hex::encode(hash.finalize())))
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    // No name and a zero mtime in the header: the same XML gives the same bytes.
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    enc.write_all(data)?;
    enc.finish()
}

/// `repomd.xml`: the revision and timestamps are the format's time; each data file with
/// the SHA-256 and size of its compressed and uncompressed bytes.
fn repomd(packages: &[(String, Arc<Rpm>)], time: u64) -> io::Result<String> {
    let files = [
        ("primary", rpm_xml::primary(packages, time)),
        ("filelists", rpm_xml::filelists(packages)),
        ("other", rpm_xml::other(packages)),
    ];
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <repomd xmlns=\"http://linux.duke.edu/metadata/repo\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n",
    );
    out.push_str(&format!("  <revision>{time}</revision>\n"));
    for (kind, xml) in &files {
        let gz = gzip(xml.as_bytes())?;
        let (size, sum) = sha256_of(&mut &gz[..])?;
        let (open_size, open_sum) = sha256_of(&mut xml.as_bytes())?;
        out.push_str(&format!(
            "  <data type=\"{kind}\">\n    <checksum type=\"sha256\">{sum}</checksum>\n    \
             <open-checksum type=\"sha256\">{open_sum}</open-checksum>\n    \
             <location href=\"repodata/{kind}.xml.gz\"/>\n    <timestamp>{time}</timestamp>\n    \
             <size>{size}</size>\n    <open-size>{open_size}</open-size>\n  </data>\n"
        ));
    }
    out.push_str("</repomd>\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_round_trip() {
        for which in [
            RpmIndex::RepoMd,
            RpmIndex::RepoMdAsc,
            RpmIndex::Primary,
            RpmIndex::Filelists,
            RpmIndex::Other,
        ] {
            assert_eq!(RpmIndex::parse(which.name()), Some(which));
        }
        assert_eq!(RpmIndex::parse("repomd.xml"), None);
        assert_eq!(RpmIndex::parse("repodata/x.xml.gz"), None);
    }

    #[test]
    fn junk_is_skipped_and_repomd_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.rpm"), b"junk").unwrap();
        std::fs::write(
            dir.path().join(".digests"),
            r#"{"bad.rpm": "sha256:bb", "x.txt": "sha256:cc"}"#,
        )
        .unwrap();
        let cache = RpmCache::default();
        let found = packages(dir.path(), &cache);
        assert!(found.is_empty());
        let a = repomd(&found, 1_700_000_000).unwrap();
        assert_eq!(a, repomd(&found, 1_700_000_000).unwrap());
        assert!(a.contains("<revision>1700000000</revision>"), "{a}");
        assert!(
            a.contains("<location href=\"repodata/other.xml.gz\"/>"),
            "{a}"
        );
    }
}
