//! Removing a directory tree so that no reader ever sees it half-deleted.

use super::files::{self, At};
use super::{Repo, StoreError, not_found_if_missing};
use std::fs;
use std::path::Path;

impl Repo {
    /// Removes a directory tree so that no reader sees it half-deleted: it is first renamed
    /// into `.uploads/` (atomic), then removed from there.
    /// In a user repository every file of the tree, dot-files included, is given back, under
    /// the user's lock from the rename to the count, so that no write lands in between.
    ///
    /// The trash takes no lease (making one could fail on a full disk, where deleting is
    /// what frees space): the collector may remove it too, which only does the same work.
    pub(crate) fn remove_tree(&self, dir: &Path) -> Result<(), StoreError> {
        self.remove_tree_then(dir, |_| Ok(()))
    }

    /// [`Repo::remove_tree`], with `moved` run on the tree once it is in the trash (and so
    /// out of reach of any new write) and before it is removed. Its failure is logged: the
    /// delete stands.
    pub(crate) fn remove_tree_then(
        &self,
        dir: &Path,
        moved: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.links.forget_all();
        let uploads = self.uploads_dir();
        files::create_dirs(&uploads).at("create", &uploads)?;
        let trash = uploads.join(format!("{}.deleting", files::random_hex()));
        let mut usage = self.usage_at(dir)?;
        // Counted before it moves: every write of the user holds the lock held here.
        let bytes = usage.as_ref().map(|_| files::tree_bytes(dir));
        fs::rename(dir, &trash).map_err(not_found_if_missing)?;
        let gone = || match fs::remove_dir_all(&trash) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::at("remove", &trash, e))
            }
            _ => Ok(()),
        };
        if let (Some(u), Some(bytes)) = (usage.as_mut(), bytes) {
            u.adjust(bytes, 0);
            if let Err(e) = u.save(self) {
                // On a full disk the count can be written once the tree is gone. If it
                // still cannot, the delete stands and the next full cleanup recounts.
                // (`moved` is left out: what it tidies, `arbor fsck --repair` finds.)
                gone()?;
                if let Err(again) = u.save(self) {
                    tracing::warn!(error = %again, first = %e, "deleted, but the user's disk usage could not be saved");
                }
                return Ok(());
            }
        }
        // After the user's lock is given back: `moved` may wait for a write that needs it.
        drop(usage);
        if let Err(e) = moved(&trash) {
            tracing::warn!(error = %e, dir = %dir.display(), "deleted; tidying after it failed");
        }
        gone()
    }
}
