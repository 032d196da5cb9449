//! Removing a directory tree so that no reader ever sees it half-deleted.

use super::files::{self, At};
use super::{Repo, StoreError, not_found_if_missing};
use std::fs;
use std::path::Path;

/// The kind of `.uploads/` entry a tree being deleted is.
const TRASH: &str = "deleting";

impl Repo {
    /// Recounts every user's `.disk_usage` when a tree being deleted is still in the trash:
    /// a crash between its move there and the count it gives back leaves a count too high
    /// (a tree whose count was given back makes the recount find nothing to change). How
    /// many users were recounted.
    pub(crate) fn recount_after_cut_deletes(&self) -> Result<u64, StoreError> {
        let uploads = fs::read_dir(self.uploads_dir());
        let cut = uploads
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().extension().is_some_and(|x| x == TRASH));
        if !cut {
            return Ok(0);
        }
        self.refresh_quotas()
    }

    /// [`Repo::recount_after_cut_deletes`] on a thread of its own, so that a start after a
    /// crash is not held by a walk of every user's tree (the daily full cleanup would do
    /// the same, later).
    pub fn recount_in_background(self: &std::sync::Arc<Self>) {
        let repo = std::sync::Arc::clone(self);
        std::thread::spawn(move || match repo.recount_after_cut_deletes() {
            Ok(0) => {}
            Ok(users) => tracing::warn!(
                users,
                "recounted users' disk usage after a delete a crash cut short"
            ),
            Err(e) => tracing::error!(error = %e, "cannot recount users' disk usage"),
        });
    }

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
        let trash = uploads.join(format!("{}.{TRASH}", files::random_hex()));
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

#[cfg(test)]
mod tests {
    use crate::model::Scope;
    use crate::storage::fixture::{self, TestRepo};
    use std::fs;

    /// A delete killed after moving its tree into the trash and before giving its bytes
    /// back leaves the user's count too high; a start (this recount) makes it true again,
    /// and without such a tree there is nothing to do.
    #[test]
    fn a_delete_cut_short_is_recounted() {
        let repo = TestRepo::new();
        let carol = Scope::User(fixture::name("carol"));
        let j = fixture::job(carol.clone(), "b", "t", "j");
        fixture::upload(&repo, &j, "f", "a.bin", &[7u8; 10_000]);
        assert_eq!(repo.recount_after_cut_deletes().unwrap(), 0);
        let uploads = repo.uploads_dir();
        fs::rename(repo.job_dir(&j), uploads.join("cut.deleting")).unwrap();
        let (recorded, on_disk) = repo.recount_usage(&carol, false).unwrap().unwrap();
        assert!(recorded > on_disk + 10_000 - 1, "{recorded} {on_disk}");
        assert_eq!(repo.recount_after_cut_deletes().unwrap(), 1);
        let (recorded, on_disk) = repo.recount_usage(&carol, false).unwrap().unwrap();
        assert_eq!(recorded, on_disk);
    }
}
