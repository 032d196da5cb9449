//! The use cases of `PUT {format}/{artifact}` that take one trip to the blocking pool
//! (spec/API.md §5.1): link mode, and small bodies already read into memory.

use super::commit::Linked;
use super::visibility::Visibility;
use super::{Repo, StoreError};
use crate::model::{Digest, FormatRef, RelPath};

impl Repo {
    /// Link mode: links the blob `digest` to `{f}/{rel}` without a body. Only content the
    /// caller could download elsewhere is linked (spec/API.md Q49); any other digest gets
    /// the same 404 as an unknown blob.
    pub fn link_upload(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        digest: &Digest,
        acl: &Visibility,
        index: Option<&super::search::SearchIndex>,
    ) -> Result<(), StoreError> {
        self.check_upload_target(f, rel)?;
        super::blobs::check_container_name(f, rel, digest)?;
        let near = match f {
            FormatRef::Job { job, .. } => Some(job),
            FormatRef::Version { .. } => None,
        };
        if self.readable_blob(digest, near, acl, index)?.is_none() {
            return Err(StoreError::NotFound);
        }
        self.link_artifact(f, rel, digest)
    }

    /// A body already in memory: checked against `expected` (named by its sha256 without
    /// one, spec/API.md Q21), stored and linked. Returns the digest stored.
    pub fn store_small_upload(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        expected: Option<&Digest>,
        data: &[u8],
    ) -> Result<Digest, StoreError> {
        let (digest, linked) = self.queue_small_upload(f, rel, expected, data)?;
        linked.wait_blocking()?;
        Ok(digest)
    }

    /// [`Repo::store_small_upload`] up to queueing the link: the caller awaits its commit
    /// on the runtime, so a thread of the blocking pool never waits for another's batch.
    pub(crate) fn queue_small_upload(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        expected: Option<&Digest>,
        data: &[u8],
    ) -> Result<(Digest, Linked), StoreError> {
        let staged = self.stage(expected, data)?;
        let digest = staged.digest().clone();
        Ok((digest, self.store_and_queue(staged, f, rel)?))
    }
}
