//! A product branch as one APT archive (issue 15): `/products/P/V/PB/Packages` and the
//! other indexes list the packages of every version of the branch the caller may read,
//! taken from each format of it whose job is locked and which lists `.deb` files, with
//! `Filename: ./{version}/{format}/{path}` so that apt downloads them through the product
//! version format URLs. Made per caller from what that caller may read, and cached by the
//! list of formats taken (each by its own content key), so callers who see different
//! versions never share an entry.

use super::cache::{Key, Weigh as _};
use super::index::Indexes;
use super::{AptFile, AptIndex, Snapshot};
use crate::model::{FormatRef, Name, Scope, VersionRef};
use crate::storage::files::{exists, sort_time, stamp_time};
use crate::storage::visibility::Visibility;
use crate::storage::{Repo, StoreError};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What `/products/P/V/PB/{index name}` is.
pub enum BranchIndex {
    /// A version of the branch has that name (the caller may read it): the version wins,
    /// as an uploaded file wins over a format's generated index.
    Version(VersionRef),
    /// The archive's index file.
    File(AptFile),
}

/// A format the archive takes packages from.
struct Part {
    version: Name,
    format: Name,
    fdir: PathBuf,
    snap: Snapshot,
    /// The version's timestamp: the newest version keeps a package two versions hold.
    stamp: f64,
}

impl Repo {
    /// The index `which` of the product branch `path` as `acl` sees it; 404 when the
    /// branch does not exist or the caller may not see it.
    pub fn apt_branch_index(
        &self,
        scope: &Scope,
        path: &[Name; 3],
        which: AptIndex,
        acl: &Visibility,
    ) -> Result<BranchIndex, StoreError> {
        if let Ok(v) = self.resolve_version(scope, path, which.name(), false, acl)
            && acl.allows(|| v.url())
        {
            return Ok(BranchIndex::Version(v));
        }
        let parts = self.archive_parts(scope, path, acl)?;
        let time = parts.iter().map(|p| p.snap.time).fold(0.0, f64::max);
        let ix = self
            .apt
            .indexes
            .get_or_build(archive_key(&parts), || {
                let (text, complete) = self.archive_packages(&parts)?;
                Ok((Indexes::build(text, time)?, complete))
            })
            .map_err(super::cache::index_error)?;
        Ok(BranchIndex::File(AptFile::of(ix, which)))
    }

    /// The formats the archive takes, in version then format name order.
    fn archive_parts(
        &self,
        scope: &Scope,
        path: &[Name; 3],
        acl: &Visibility,
    ) -> Result<Vec<Part>, StoreError> {
        let mut parts = Vec::new();
        for name in self.product_level(scope, path, acl)? {
            let Ok(version) = Name::parse(&name) else {
                continue;
            };
            let v = VersionRef {
                scope: scope.clone(),
                product: path[0].clone(),
                variant: path[1].clone(),
                product_branch: path[2].clone(),
                version: version.clone(),
            };
            let stamp = sort_time(stamp_time(&self.version_dir(&v)));
            // A version removed meanwhile has no formats.
            for format in self.version_formats(&v, acl).unwrap_or_default() {
                let Ok(format) = Name::parse(&format) else {
                    continue;
                };
                let fref = FormatRef::Version {
                    version: v.clone(),
                    format: format.clone(),
                };
                let fdir = self.format_dir(&fref);
                // Its packages are listed with their digests: only for a caller who may
                // read every file of it, as the format's own index (docs/access.md).
                if !finished(&fdir) || !self.reads_every_file(&fref, acl).unwrap_or(false) {
                    continue;
                }
                match Snapshot::read(&fdir) {
                    Ok(snap) if snap.has_debs() => parts.push(Part {
                        version: version.clone(),
                        format,
                        fdir,
                        snap,
                        stamp,
                    }),
                    _ => {}
                }
            }
        }
        Ok(parts)
    }

    /// The archive's `Packages`: one stanza per package name, version and architecture;
    /// when several versions hold one, that of the newest version (by its timestamp; the
    /// first in name order among equals).
    /// The second value says whether every package could be read (see `Snapshot::packages`).
    fn archive_packages(&self, parts: &[Part]) -> std::io::Result<(String, bool)> {
        let (mut all, mut complete) = (Vec::new(), true);
        for p in parts {
            let (debs, read) = p.snap.packages(&p.fdir, &self.apt.debs);
            complete &= read;
            for (rel, deb) in debs {
                let rel = format!("{}/{}/{rel}", p.version, p.format);
                all.push((rel, deb.identity(), deb, p.stamp));
            }
        }
        let mut keep: HashMap<&(String, String, String), usize> = HashMap::new();
        for (i, (_, id, _, stamp)) in all.iter().enumerate() {
            keep.entry(id)
                .and_modify(|k| {
                    if *stamp > all[*k].3 {
                        *k = i;
                    }
                })
                .or_insert(i);
        }
        // What is listed, once per package: versions that keep shipping the same ones do
        // not add up.
        let kept = keep.values().map(|&i| all[i].2.weight()).sum();
        super::cache::check_index_input(kept)?;
        let mut text = String::new();
        for (i, (rel, id, deb, _)) in all.iter().enumerate() {
            if keep.get(id) == Some(&i) {
                text.push_str(&deb.stanza(rel));
                text.push('\n');
            }
        }
        Ok((text, complete))
    }
}

/// Whether the format's job is locked (finished) and the format not dirty.
fn finished(fdir: &Path) -> bool {
    let Ok(real) = fs::canonicalize(fdir) else {
        return false;
    };
    let locked = real
        .parent()
        .is_some_and(|job| exists(&job.join(".locked")));
    locked && !exists(&real.join(".dirty"))
}

/// What the archive is made from: each format taken, where, its content key and its
/// version's timestamp. `None` when a format has no key (it is then made every time).
fn archive_key(parts: &[Part]) -> Option<Key> {
    let mut h = Sha256::new();
    h.update(b"arbor apt archive 1\0");
    for p in parts {
        h.update(p.version.as_str().as_bytes());
        h.update(b"\0");
        h.update(p.format.as_str().as_bytes());
        h.update(b"\0");
        h.update(p.snap.key?);
        h.update(p.stamp.to_bits().to_le_bytes());
    }
    Some(h.finalize().into())
}
