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
    pub const ALL: [RpmIndex; 5] = [
        RpmIndex::RepoMd,
        RpmIndex::RepoMdAsc,
        RpmIndex::Primary,
        RpmIndex::Filelists,
        RpmIndex::Other,
    ];

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
        // A format that brings its own repodata (a hook's createrepo_c, say) is served as
        // uploaded: mixing in generated files would give a repomd.xml that names files
        // with other sums, or a signature of a repomd.xml that is not served.
        if RpmIndex::ALL
            .iter()
            .any(|i| super::files::exists(&fdir.join(i.name())))
        {
            return Err(StoreError::NotFound);
        }
        let time = super::bundles::format_time(&fdir)?;
        let meta = metadata(&fdir, time.max(0.0) as u64, &self.rpms)?;
        let bytes = match which {
            RpmIndex::Primary => meta.primary.clone(),
            RpmIndex::Filelists => meta.filelists.clone(),
            RpmIndex::Other => meta.other.clone(),
            RpmIndex::RepoMd | RpmIndex::RepoMdAsc => meta.repomd.clone(),
        };
        Ok(RpmRepoFile { bytes, time })
    }
}

/// The files of one format's `repodata/`, made together.
pub(crate) struct Metadata {
    primary: Vec<u8>,
    filelists: Vec<u8>,
    other: Vec<u8>,
    repomd: Vec<u8>,
}

/// What was read and made once is not again: each package's header and sums, by the
/// content digest `.digests` records, and each format's metadata, by its packages' paths
/// and digests and its time (so a format that changes gets a new entry, and formats with
/// the same content share one). Bounded: past its limit a map starts afresh.
#[derive(Default)]
pub(crate) struct RpmCache {
    packages: Mutex<HashMap<String, Arc<Rpm>>>,
    repos: Mutex<HashMap<String, Arc<Metadata>>>,
}

fn cached<T>(map: &Mutex<HashMap<String, Arc<T>>>, key: &str) -> Option<Arc<T>> {
    map.lock().ok()?.get(key).cloned()
}

fn remember<T>(map: &Mutex<HashMap<String, Arc<T>>>, max: usize, key: String, value: Arc<T>) {
    if let Ok(mut map) = map.lock() {
        if map.len() >= max {
            map.clear();
        }
        map.insert(key, value);
    }
}

impl RpmCache {
    const MAX_PACKAGES: usize = 20_000;
    const MAX_REPOS: usize = 256;
}

/// The format's metadata, from the cache when its content and time are known.
fn metadata(fdir: &Path, time: u64, cache: &RpmCache) -> io::Result<Arc<Metadata>> {
    let digests = super::digests::format_digests(fdir);
    let rpms: Vec<(String, Option<String>)> = digests
        .into_iter()
        .filter(|(rel, _)| rel.ends_with(".rpm"))
        .map(|(rel, d)| (rel, d.as_str().map(str::to_owned)))
        .collect();
    // Only when every package has a digest: else a file could change under the same key.
    let key = rpms.iter().all(|(_, d)| d.is_some()).then(|| {
        let mut h = sha2::Sha256::new();
        h.update(time.to_be_bytes());
        for (rel, d) in &rpms {
            h.update(format!("{rel}\0{}\n", d.as_deref().unwrap_or_default()));
        }
        hex::encode(h.finalize())
    });
    if let Some(meta) = key.as_deref().and_then(|k| cached(&cache.repos, k)) {
        return Ok(meta);
    }
    let packages = packages(fdir, rpms, cache);
    let primary = rpm_xml::primary(&packages, time);
    let filelists = rpm_xml::filelists(&packages);
    let other = rpm_xml::other(&packages);
    let meta = Arc::new(Metadata {
        repomd: repomd(&[&primary, &filelists, &other], time)?.into_bytes(),
        primary: gzip(primary.as_bytes())?,
        filelists: gzip(filelists.as_bytes())?,
        other: gzip(other.as_bytes())?,
    });
    if let Some(k) = key {
        remember(&cache.repos, RpmCache::MAX_REPOS, k, Arc::clone(&meta));
    }
    Ok(meta)
}

/// Every readable package of `rpms` (relative path, digest) with its path, in that order.
fn packages(
    fdir: &Path,
    rpms: Vec<(String, Option<String>)>,
    cache: &RpmCache,
) -> Vec<(String, Arc<Rpm>)> {
    let mut out = Vec::new();
    for (rel, digest) in rpms {
        if let Some(rpm) = digest.as_deref().and_then(|d| cached(&cache.packages, d)) {
            out.push((rel, rpm));
            continue;
        }
        match read_rpm(&fdir.join(&rel)) {
            Ok(rpm) => {
                let rpm = Arc::new(rpm);
                if let Some(d) = digest {
                    remember(&cache.packages, RpmCache::MAX_PACKAGES, d, Arc::clone(&rpm));
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

/// `repomd.xml`: the revision and timestamps are the format's time; each data file
/// (`primary`, `filelists`, `other`, in that order) with the SHA-256 and size of its
/// compressed and uncompressed bytes.
fn repomd(xml: &[&str; 3], time: u64) -> io::Result<String> {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <repomd xmlns=\"http://linux.duke.edu/metadata/repo\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n",
    );
    out.push_str(&format!("  <revision>{time}</revision>\n"));
    for (kind, xml) in ["primary", "filelists", "other"].iter().zip(xml) {
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
    fn junk_is_skipped_and_metadata_is_made_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.rpm"), b"junk").unwrap();
        std::fs::write(
            dir.path().join(".digests"),
            r#"{"bad.rpm": "sha256:bb", "x.txt": "sha256:cc"}"#,
        )
        .unwrap();
        let cache = RpmCache::default();
        let a = metadata(dir.path(), 1_700_000_000, &cache).unwrap();
        let repomd = String::from_utf8(a.repomd.clone()).unwrap();
        assert!(
            repomd.contains("<revision>1700000000</revision>"),
            "{repomd}"
        );
        assert!(
            repomd.contains("<location href=\"repodata/other.xml.gz\"/>"),
            "{repomd}"
        );
        let b = metadata(dir.path(), 1_700_000_000, &cache).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // Another time (a new upload): made again, the same way.
        let c = metadata(dir.path(), 1_700_000_001, &cache).unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        let fresh = metadata(dir.path(), 1_700_000_000, &RpmCache::default()).unwrap();
        assert_eq!(fresh.repomd, a.repomd);
        assert_eq!(fresh.primary, a.primary);
    }
}
