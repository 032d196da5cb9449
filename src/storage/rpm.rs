//! A format of `.rpm` files as a dnf/yum repository (issue 15): `repodata/repomd.xml` and
//! the `primary`, `filelists` and `other` metadata it names (`repodata/*.xml.gz`, gzip as
//! createrepo_c makes them), made from the header of each package the format's `.digests`
//! lists (sub-directories included); the HTTP layer signs `repomd.xml` as
//! `repodata/repomd.xml.asc` when a key is set. Everything follows from the format's
//! content and its timestamp, so the same format always gives the same bytes. A file that is
//! not a readable package is skipped with a warning, and so is one past the limits of
//! `rpm_header.rs` or whose names have control characters.

use super::apt::cache::{Cache, Key, Weigh, digest_matches, key_of};
use super::rpm_header::{Rpm, read_header};
use super::rpm_xml;
use super::{Repo, StoreError};
use crate::model::FormatRef;
use sha2::Digest as _;
use std::collections::HashMap;
use std::fs::File;
use std::io;
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
    pub bytes: bytes::Bytes,
    pub time: f64,
    /// The cached metadata it comes from, which keeps its signatures.
    meta: Arc<Metadata>,
}

impl RpmRepoFile {
    /// `repomd.xml` signed by the key whose fingerprint is `key`: `sign` makes it from the
    /// `repomd.xml` bytes and time, once per content and key.
    pub fn signed(&self, key: &str, sign: impl FnOnce(&[u8], f64) -> Vec<u8>) -> Vec<u8> {
        if let Some(found) = self
            .meta
            .signed
            .lock()
            .ok()
            .and_then(|m| m.get(key).cloned())
        {
            return found;
        }
        let made = sign(&self.meta.repomd, self.time);
        if let Ok(mut m) = self.meta.signed.lock() {
            m.insert(key.to_owned(), made.clone());
        }
        made
    }
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
        let time = super::digests::format_time(&fdir)?;
        let meta = metadata(&fdir, time.max(0.0) as u64, &self.rpms)
            .map_err(super::apt::cache::index_error)?;
        let bytes = match which {
            RpmIndex::Primary => meta.primary.clone(),
            RpmIndex::Filelists => meta.filelists.clone(),
            RpmIndex::Other => meta.other.clone(),
            RpmIndex::RepoMd | RpmIndex::RepoMdAsc => meta.repomd.clone(),
        };
        Ok(RpmRepoFile { bytes, time, meta })
    }
}

/// The files of one format's `repodata/`, made together.
pub(crate) struct Metadata {
    // Shared with every answer that serves them (`Bytes` clones are a count, not a copy).
    primary: bytes::Bytes,
    filelists: bytes::Bytes,
    other: bytes::Bytes,
    repomd: bytes::Bytes,
    /// `repomd.xml` signed, by key fingerprint: made once, since the same bytes, key and
    /// time always give the same signature.
    signed: Mutex<HashMap<String, Vec<u8>>>,
}

impl Weigh for Metadata {
    fn weight(&self) -> usize {
        self.primary.len() + self.filelists.len() + self.other.len() + self.repomd.len()
    }
}

impl Weigh for Rpm {
    fn weight(&self) -> usize {
        self.header.weight + 256
    }
}

/// What was read and made once is not again: each package's header and sums, by the
/// content digest `.digests` records (once the file is seen to have it), and each format's
/// metadata, by its packages' paths and digests and its time (so a format that changes
/// gets a new entry, and formats with the same content share one; requests that miss
/// together wait for one build). Bounded in bytes, the least recently used first.
pub(crate) struct RpmCache {
    packages: Cache<Rpm>,
    repos: Cache<Metadata>,
}

impl Default for RpmCache {
    fn default() -> Self {
        RpmCache {
            packages: Cache::with_budget(Self::PACKAGES_BUDGET),
            repos: Cache::with_budget(Self::REPOS_BUDGET),
        }
    }
}

impl RpmCache {
    const PACKAGES_BUDGET: usize = 128 << 20;
    const REPOS_BUDGET: usize = 64 << 20;
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
    let key: Option<Key> = rpms.iter().all(|(_, d)| d.is_some()).then(|| {
        let mut h = sha2::Sha256::new();
        h.update(time.to_be_bytes());
        for (rel, d) in &rpms {
            h.update(format!("{rel}\0{}\n", d.as_deref().unwrap_or_default()));
        }
        h.finalize().into()
    });
    cache.repos.get_or_build(key, || {
        let (packages, complete) = packages(fdir, rpms, &cache.packages);
        super::apt::cache::check_index_input(packages.iter().map(|(_, r)| r.weight()).sum())?;
        let primary = rpm_xml::primary(&packages, time);
        let filelists = rpm_xml::filelists(&packages);
        let other = rpm_xml::other(&packages);
        let meta = Metadata {
            repomd: repomd(&[&primary, &filelists, &other], time)?
                .into_bytes()
                .into(),
            primary: gzip(primary.as_bytes())?.into(),
            filelists: gzip(filelists.as_bytes())?.into(),
            other: gzip(other.as_bytes())?.into(),
            signed: Mutex::default(),
        };
        Ok((meta, complete))
    })
}

/// Every package of `rpms` (relative path, digest) that can be listed, with its path, in
/// that order, and whether the list is final: `false` when one could not be read this
/// time (missing, unreadable) or is not the content `.digests` records (replaced since).
fn packages(
    fdir: &Path,
    rpms: Vec<(String, Option<String>)>,
    cache: &Cache<Rpm>,
) -> (Vec<(String, Arc<Rpm>)>, bool) {
    let (mut out, mut complete) = (Vec::new(), true);
    for (rel, digest) in rpms {
        // Not even read: the path itself could not be listed (and may never be found).
        if rel.chars().any(char::is_control) {
            tracing::warn!("rpm: skipping {rel:?}: control character in its path");
            continue;
        }
        let key = digest.as_deref().map(key_of);
        if let Some(rpm) = key.and_then(|k| cache.get(&k)) {
            out.push((rel, rpm));
            continue;
        }
        let rpm = match read_rpm(&fdir.join(&rel)) {
            Ok(rpm) => rpm,
            Err(e) => {
                complete &= e.raw_os_error().is_none();
                tracing::warn!("rpm: skipping {rel:?}: {e}");
                continue;
            }
        };
        let checked = digest
            .as_deref()
            .and_then(|d| digest_matches(d, &[("sha256", &rpm.sha256)]));
        if checked == Some(false) {
            complete = false;
            tracing::warn!("rpm: skipping {rel:?}: not the content .digests records");
            continue;
        }
        if !rpm_xml::names_are_plain(&rel, &rpm.header) {
            tracing::warn!("rpm: skipping {rel:?}: control characters in its names");
            continue;
        }
        let rpm = Arc::new(rpm);
        // Kept only under a digest it was checked against (another algorithm's is listed
        // as `.digests` says, and read again next time).
        if let (Some(k), Some(true)) = (key, checked) {
            cache.put(k, Arc::clone(&rpm));
        }
        out.push((rel, rpm));
    }
    (out, complete)
}

fn read_rpm(path: &Path) -> io::Result<Rpm> {
    let mut file = File::open(path)?;
    let header = read_header(&mut io::BufReader::new(&mut file))?;
    // The size of the file that was read: a file replaced since is caught by the digest
    // check against `.digests`.
    let size = file.metadata()?.len();
    let sha256 = super::files::hash_file(crate::model::Algo::Sha256, path)?;
    Ok(Rpm {
        header,
        size,
        sha256,
    })
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    super::encodings::gzip_reproducible(data, flate2::Compression::default())
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
        let (size, sum) = (gz.len(), hex::encode(sha2::Sha256::digest(&gz)));
        let (open_size, open_sum) = (xml.len(), hex::encode(sha2::Sha256::digest(xml)));
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
    use std::io::Read as _;

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
        let repomd = String::from_utf8(a.repomd.to_vec()).unwrap();
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

    fn primary_of(meta: &Metadata) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&meta.primary[..])
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn a_package_that_is_not_its_digest_is_neither_kept_nor_listed() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = crate::storage::rpm_header::tests::rpm();
        std::fs::write(dir.path().join("a.rpm"), &bytes).unwrap();
        let digests = |d: &str| {
            let json = serde_json::json!({ "a.rpm": d, "b\n.rpm": d });
            std::fs::write(dir.path().join(".digests"), json.to_string()).unwrap();
        };
        let cache = RpmCache::default();
        digests(&format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(b"x"))
        ));
        let a = metadata(dir.path(), 1, &cache).unwrap();
        assert!(primary_of(&a).contains("packages=\"0\""));
        // Not kept: asked again, it is read again.
        let b = metadata(dir.path(), 1, &cache).unwrap();
        assert!(!Arc::ptr_eq(&a, &b));
        // With its real digest it is listed, and kept; the path with a newline never is.
        digests(&format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&bytes))
        ));
        let c = metadata(dir.path(), 1, &cache).unwrap();
        assert!(primary_of(&c).contains("packages=\"1\""));
        assert!(Arc::ptr_eq(&c, &metadata(dir.path(), 1, &cache).unwrap()));
    }

    #[test]
    fn the_signature_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = RpmRepoFile {
            bytes: bytes::Bytes::new(),
            time: 1.0,
            meta: metadata(dir.path(), 1, &RpmCache::default()).unwrap(),
        };
        let mut made = 0;
        for _ in 0..2 {
            file.signed("k", |_, _| {
                made += 1;
                b"sig".to_vec()
            });
        }
        assert_eq!(made, 1);
    }
}
