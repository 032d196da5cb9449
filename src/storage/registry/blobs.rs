//! Blobs of a repository: opened for a pull, mounted from another repository, and manifest
//! bytes stored as blobs.

use super::{ImageRepo, RegistryError};
use crate::model::Digest;
use crate::storage::files;
use crate::storage::{BlobReader, Repo};
use std::fs;
use std::path::PathBuf;

impl Repo {
    /// Opens a blob for HEAD/GET when the repository holds it (spec/CONTAINER.md §3.7).
    pub fn open_image_blob(&self, r: &ImageRepo, d: &Digest) -> Result<BlobReader, RegistryError> {
        // `locate` finds only links of the blob: serve the blob itself (the X-Sendfile
        // path) and touch it.
        self.locate(r, d).ok_or(RegistryError::BlobUnknown)?;
        let path = self.blob_path(d);
        let _ = files::touch(&path);
        Ok(BlobReader::open(self, &path, Some(d.to_string()))?)
    }

    /// Cross-repository mount: when `from` holds `d`, it becomes pending in `to` without a
    /// copy. `false` when `from` does not hold it (the client then uploads).
    pub fn mount_blob(
        &self,
        to: &ImageRepo,
        from: &ImageRepo,
        d: &Digest,
    ) -> Result<bool, RegistryError> {
        let Some(src) = self.locate(from, d) else {
            return Ok(false);
        };
        if self.pending(to, d).is_none() {
            self.check_pending_room(to, None, fs::metadata(&src)?.len())?;
        }
        let _guard = self.blob_guard()?;
        // `src` was the blob when `locate` looked; the blob itself is what is linked.
        let blob = self.blob_path(d);
        let _ = files::touch(&blob);
        self.mark_pending(to, d, &blob)?;
        Ok(true)
    }

    /// Writes `data`, whose SHA-256 is `d`, to `.blobs` unless there, returning the blob
    /// path. The caller holds the blob guard.
    pub(super) fn store_bytes(&self, d: &Digest, data: &[u8]) -> Result<PathBuf, RegistryError> {
        let blob = self.blob_path(d);
        if blob.is_file() {
            files::touch(&blob)?;
            return Ok(blob);
        }
        // The way artifact uploads store theirs: a synced temp file, linked (never over
        // another writer's blob).
        let upload = self.stage_bytes(d, data)?;
        self.store_blob_unguarded(upload)?;
        Ok(blob)
    }
}
