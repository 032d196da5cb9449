//! A format of `.deb` files as a flat APT repository, and a product branch as one archive
//! of the packages of all its versions (issue 15): `Packages`, `Packages.gz`, `Packages.xz`
//! and `Release` (signed by the HTTP layer as `InRelease` and `Release.gpg` when a key is
//! set), made from the control file of each package a format's `.digests` lists
//! (sub-directories included). Everything follows from the formats' content and timestamps,
//! so the same content always gives the same bytes, and is cached by that content
//! (`cache.rs`). A file that is not a readable package is skipped with a warning.

mod archive;
pub(crate) mod cache;
mod control;
mod deb;
mod index;

pub use archive::BranchIndex;

use super::files::mtime_of;
use super::{Repo, StoreError};
use crate::model::FormatRef;
use cache::{Key, Weigh as _};
use deb::{Deb, DebCache};
use index::{IndexCache, Indexes};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// The index files a repository serves.
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
    pub const ALL: [AptIndex; 6] = [
        AptIndex::Packages,
        AptIndex::PackagesGz,
        AptIndex::PackagesXz,
        AptIndex::Release,
        AptIndex::InRelease,
        AptIndex::ReleaseGpg,
    ];

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

/// An index file's bytes and the repository's timestamp (Unix seconds). For the signed
/// forms the bytes are the `Release` to sign, to be signed at that time, so that the same
/// content always gets the same signature.
pub struct AptFile {
    pub bytes: bytes::Bytes,
    pub time: f64,
    /// The cached indexes it comes from, which keep its signatures.
    ix: Arc<Indexes>,
}

impl AptFile {
    fn of(ix: Arc<Indexes>, which: AptIndex) -> AptFile {
        let bytes = match which {
            AptIndex::Packages => &ix.packages,
            AptIndex::PackagesGz => &ix.gz,
            AptIndex::PackagesXz => &ix.xz,
            AptIndex::Release | AptIndex::InRelease | AptIndex::ReleaseGpg => &ix.release,
        };
        AptFile {
            bytes: bytes.clone(),
            time: ix.time,
            ix,
        }
    }

    /// `which` (`InRelease` or `Release.gpg`) signed by the key whose fingerprint is `key`:
    /// `sign` makes it from the `Release` bytes and time, once per content and key (an
    /// RSA signature takes milliseconds).
    pub fn signed(
        &self,
        which: AptIndex,
        key: &str,
        sign: impl FnOnce(&[u8], f64) -> Vec<u8>,
    ) -> Vec<u8> {
        let id = (which.name(), key.to_owned());
        if let Some(found) = self.ix.signed.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return found;
        }
        let made = sign(&self.ix.release, self.ix.time);
        if let Ok(mut m) = self.ix.signed.lock() {
            m.insert(id, made.clone());
        }
        made
    }
}

/// What the server keeps in memory between requests: packages read (by content digest)
/// and indexes made (by what they were made from).
#[derive(Default)]
pub(crate) struct AptCache {
    debs: DebCache,
    indexes: IndexCache,
}

impl Repo {
    /// One index file of the format; 404 when the format is missing or still dirty.
    pub fn apt_index(&self, f: &FormatRef, which: AptIndex) -> Result<AptFile, StoreError> {
        if self.format_dirty(f)? {
            return Err(StoreError::NotFound);
        }
        let fdir = self.format_dir(f);
        // A format that brings its own index (a hook's dpkg-scanpackages, say) is served
        // as uploaded: a generated InRelease would sign a Release that is not the one its
        // Packages match, and apt would refuse the mix.
        if AptIndex::ALL
            .iter()
            .any(|i| super::files::exists(&fdir.join(i.name())))
        {
            return Err(StoreError::NotFound);
        }
        let snap = Snapshot::read(&fdir)?;
        let ix = self
            .apt
            .indexes
            .get_or_build(snap.key, || {
                let (debs, complete) = snap.packages(&fdir, &self.apt.debs);
                cache::check_index_input(debs.iter().map(|(_, d)| d.weight()).sum())?;
                let mut text = String::new();
                for (rel, deb) in debs {
                    text.push_str(&deb.stanza(&rel));
                    text.push('\n');
                }
                Ok((Indexes::build(text, snap.time)?, complete))
            })
            .map_err(cache::index_error)?;
        Ok(AptFile::of(ix, which))
    }
}

/// A format's `.digests` as read once: its bytes (parsed only when indexes are made), the
/// format's timestamp (its mtime) and the cache key the two make.
struct Snapshot {
    digests: Digests,
    time: f64,
    /// `None` for a format without `.digests` (a container format): never cached.
    key: Option<Key>,
}

enum Digests {
    Bytes(Vec<u8>),
    /// Made up from the files of a container format without `.digests`.
    Map(Map<String, Value>),
}

impl Snapshot {
    fn read(fdir: &Path) -> Result<Snapshot, StoreError> {
        // One open file: its bytes and its mtime belong together even while another
        // process replaces it (by rename).
        let mut file = match File::open(fdir.join(".digests")) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Snapshot {
                    digests: Digests::Map(super::digests::format_digests(fdir)),
                    time: super::digests::format_time(fdir)?,
                    key: None,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let time = mtime_of(&file.metadata()?);
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut h = Sha256::new();
        h.update(b"arbor apt format 1\0");
        h.update(time.to_bits().to_le_bytes());
        h.update(&bytes);
        Ok(Snapshot {
            digests: Digests::Bytes(bytes),
            time,
            key: Some(h.finalize().into()),
        })
    }

    /// Whether the format may list a `.deb` (a key ending so, then its closing quote).
    fn has_debs(&self) -> bool {
        match &self.digests {
            Digests::Bytes(b) => b.windows(5).any(|w| w == b".deb\""),
            Digests::Map(m) => m.keys().any(|rel| rel.ends_with(".deb")),
        }
    }

    /// The entries, sorted by path.
    fn entries(&self) -> Map<String, Value> {
        let mut m = match &self.digests {
            Digests::Bytes(b) => serde_json::from_slice(b).unwrap_or_default(),
            Digests::Map(m) => m.clone(),
        };
        m.sort_keys();
        m
    }

    /// Every readable package, by relative path (sorted), and whether the list is final:
    /// `false` when the system failed to read one (missing, unreadable) or it was not the
    /// content `.digests` records (replaced meanwhile), which may work next time; a file that is not a package is never one.
    fn packages(&self, fdir: &Path, debs: &DebCache) -> (Vec<(String, Arc<Deb>)>, bool) {
        let (mut out, mut complete) = (Vec::new(), true);
        for (rel, digest) in &self.entries() {
            if !rel.ends_with(".deb") {
                continue;
            }
            // `Filename: ./{rel}` is one line of the stanza.
            if rel.chars().any(char::is_control) {
                tracing::warn!("apt: skipping {rel:?}: control character in its path");
                continue;
            }
            match debs.load(&fdir.join(rel), digest.as_str()) {
                Ok(deb) => out.push((rel.clone(), deb)),
                Err(e) => {
                    complete &= e.raw_os_error().is_none() && !deb::is_changed(&e);
                    tracing::warn!("apt: skipping {rel}: {e}");
                }
            }
        }
        (out, complete)
    }
}

#[cfg(test)]
mod tests;
