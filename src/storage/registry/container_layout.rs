//! Where a container dir keeps its files: `{blobs,manifests}/{algo}/{xx}/{hex}`. Imports
//! nothing else of the registry, so the tree side can read a container's manifest.

use crate::model::Digest;
use std::path::{Path, PathBuf};

pub(crate) fn rel_of(d: &Digest) -> String {
    format!("{}/{}/{}", d.algo().name(), &d.hex()[..2], d.hex())
}

/// The manifest a container serves by tag: the first under `manifests/*/*/*` (there is
/// one), as `(path, "{algo}:{hex}")`.
pub(crate) fn top_manifest(cdir: &Path) -> Option<(PathBuf, String)> {
    walkdir::WalkDir::new(cdir.join("manifests"))
        .min_depth(3)
        .max_depth(3)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file())
        .and_then(|e| {
            let algo = e
                .path()
                .parent()?
                .parent()?
                .file_name()?
                .to_str()?
                .to_owned();
            let hex = e.file_name().to_str()?.to_owned();
            Some((e.into_path(), format!("{algo}:{hex}")))
        })
}

/// The digest a file of a container names: `{algo}/{xx}/{hex}`.
pub(super) fn digest_of_link(path: &Path) -> Option<Digest> {
    let hex = path.file_name()?.to_str()?;
    let algo = path.parent()?.parent()?.file_name()?.to_str()?;
    Digest::parse(Some(&format!("{algo}:{hex}"))).ok()
}
