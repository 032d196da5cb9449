//! Deleting images by tag or digest (their blobs stay pending, see `pending.rs`), pruning
//! the job and tag dirs that empties, and deleting blobs no image of the repository links.

use super::container_layout::{digest_of_link, rel_of, top_manifest};
use super::containers::Container;
use super::{ImageRepo, RegistryError};
use crate::model::Digest;
use crate::storage::Repo;
use crate::storage::files::{self, DirLock, exists};
use std::fs;
use std::io;
use std::path::Path;

impl Repo {
    /// Deletes the image a tag names, or every image of the repository whose manifest is
    /// `reference` (a digest), and a manifest by that digest waiting in the repository.
    /// Locked jobs refuse, before anything changes.
    ///
    /// The blobs of a deleted image stay in the repository, waiting as uploaded blobs do
    /// (OCI distribution spec: blobs are deleted on their own, and the conformance suite
    /// deletes them after the manifest), until a blob `DELETE` or the orphan collector. A job
    /// the image was the only content of goes too, and then its tag if nothing else is left
    /// in it: a registry delete leaves no empty job behind.
    pub fn delete_manifest(&self, r: &ImageRepo, reference: &str) -> Result<(), RegistryError> {
        let ImageRepo::Job { .. } = r else {
            return Err(RegistryError::DeleteInProduct);
        };
        let (targets, by_digest) = self.images_named(r, reference)?;
        for c in &targets {
            let jdir = c.dir.parent().map(Path::to_path_buf).unwrap_or_default();
            if exists(&jdir.join(".locked")) {
                return Err(RegistryError::DeleteInLockedJob);
            }
        }
        // Pending first: a crash before the image goes leaves links the collector drops.
        for c in &targets {
            self.keep_blobs_pending(r, &c.dir)?;
        }
        if let Some(d) = &by_digest {
            self.drop_pending(r, d)?;
        }
        for c in targets {
            self.remove_image(c)?;
        }
        self.request_gc(crate::storage::GcKind::Orphans);
        Ok(())
    }

    /// The containers a manifest reference names: the one tagged so, or every one whose
    /// manifest has that digest (with the digest, whose pending manifest goes too). A digest
    /// that is neither is unknown.
    fn images_named(
        &self,
        r: &ImageRepo,
        reference: &str,
    ) -> Result<(Vec<Container>, Option<Digest>), RegistryError> {
        let unknown = || RegistryError::ManifestUnknown(reference.to_owned());
        if !reference.contains(':') {
            let lower = reference.to_lowercase();
            let hit = self
                .containers(r)
                .into_iter()
                .find(|c| c.name.as_str() == lower)
                .ok_or_else(unknown)?;
            return Ok((vec![hit], None));
        }
        let d = Digest::parse(Some(reference)).map_err(|e| RegistryError::InvalidDigest(e.0))?;
        let want = d.to_string();
        let hits: Vec<Container> = self
            .containers(r)
            .into_iter()
            .filter(|c| top_manifest(&c.dir).is_some_and(|(_, dg)| dg == want))
            .collect();
        if hits.is_empty() && self.pending(r, &d).is_none() {
            return Err(unknown());
        }
        Ok((hits, Some(d)))
    }

    /// Removes one image: its product link, its `container` dir, then the job (and tag)
    /// when nothing else is left in them.
    fn remove_image(&self, c: Container) -> Result<(), RegistryError> {
        if let Some(jdir) = c.dir.parent()
            && let Ok(vdir) = fs::canonicalize(jdir.join(".product"))
        {
            let link = vdir.join("container");
            if crate::storage::files::same_file(&link, &c.dir) {
                let _ = fs::remove_file(&link);
            }
        }
        self.remove_tree(&c.dir)?;
        // A registry delete leaves no empty job (nor tag) behind.
        if let Some(jdir) = c.dir.parent()
            && self.prune_job(jdir)
        {
            prune_dir(&c.parent);
        }
        Ok(())
    }

    /// Marks the blobs of the image in `cdir` pending in `r`, fresh, so they outlive the
    /// image by the orphan lifetime.
    pub(super) fn keep_blobs_pending(
        &self,
        r: &ImageRepo,
        cdir: &Path,
    ) -> Result<(), RegistryError> {
        // Shared with uploads: the collector cannot take a blob between link and touch.
        let _guard = self.blob_guard()?;
        for entry in walkdir::WalkDir::new(cdir.join("blobs"))
            .min_depth(3)
            .max_depth(3)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let Some(d) = digest_of_link(entry.path()) else {
                continue;
            };
            self.mark_pending(r, &d, entry.path())?;
            files::touch(&self.pending_path(r, &d))?;
        }
        Ok(())
    }

    /// Removes a job dir left with nothing but its `.stamp`, under the job's lock (which a
    /// push holds from creating the job to swapping its image in; see
    /// [`Repo::locked_job`]). `true` when it went.
    pub(super) fn prune_job(&self, jdir: &Path) -> bool {
        let Ok(_lock) = DirLock::acquire(&self.locks_dir(), jdir) else {
            return false;
        };
        prune_dir(jdir)
    }

    /// Deletes a blob from a repository (`DELETE /v2/{name}/blobs/{digest}`): one waiting
    /// for a manifest, or left by a deleted image, goes at once (its file in `.blobs/` with
    /// the orphan collector, when no other repository or job holds it). A blob an image of
    /// the repository still links is refused (405 `DENIED`): removing it would leave that
    /// image, its job bundle and whatever was published from it unpullable.
    pub fn delete_image_blob(&self, r: &ImageRepo, d: &Digest) -> Result<(), RegistryError> {
        let rel = rel_of(d);
        let users: Vec<String> = self
            .containers(r)
            .into_iter()
            .filter(|c| {
                ["blobs", "manifests"]
                    .iter()
                    .any(|kind| c.dir.join(kind).join(&rel).is_file())
            })
            .map(|c| c.name.to_string())
            .collect();
        if !users.is_empty() {
            return Err(RegistryError::BlobInUse {
                digest: d.clone(),
                tags: users,
                repo: r.name(),
            });
        }
        if self.drop_pending(r, d)? {
            Ok(())
        } else {
            Err(RegistryError::MissingBlob(d.clone()))
        }
    }
}

/// Removes `dir` when it holds nothing but its `.stamp`. `rmdir` refuses a dir that is not
/// empty, so whatever a concurrent request puts in it meanwhile stays, and gets the stamp
/// back (with a new time: the one thing such a race changes).
pub(super) fn prune_dir(dir: &Path) -> bool {
    let Ok(entries) = fs::read_dir(dir) else {
        return false;
    };
    let only_stamp = entries
        .map(|e| e.map(|e| e.file_name() == ".stamp"))
        .all(|stamp| matches!(stamp, Ok(true)));
    if !only_stamp {
        return false;
    }
    let stamp = dir.join(".stamp");
    match fs::remove_file(&stamp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(_) => return false,
    }
    if fs::remove_dir(dir).is_ok() {
        return true;
    }
    let _ = files::create_flag(&stamp);
    false
}

#[cfg(test)]
mod tests {
    use super::super::test_support::repo;
    use super::*;
    use crate::model::{BranchRef, JobRef, Name, Scope, TagRef};

    /// A job dir pruned by a registry delete while a push waited for its lock is made
    /// again for the push; a dir with anything but its stamp is never pruned.
    #[test]
    fn a_push_survives_the_prune_of_its_job() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let n = |s: &str| Name::parse(s).unwrap();
        let j = JobRef {
            tag: TagRef {
                branch: BranchRef {
                    scope: Scope::Root,
                    branch: n("main"),
                },
                tag: n("t1"),
            },
            job: n("j"),
        };
        let jdir = repo.ensure_job(&j).unwrap();
        let waited = DirLock::acquire(&repo.locks_dir(), &jdir).unwrap();
        assert!(prune_dir(&jdir) && prune_dir(jdir.parent().unwrap()));
        assert!(!jdir.exists());
        drop(waited);
        let (again, lock) = repo.locked_job(&j).unwrap();
        assert!(again.join(".stamp").is_file());
        assert!(again.parent().unwrap().join(".stamp").is_file());
        drop(lock);
        fs::create_dir(again.join("docs")).unwrap();
        assert!(!repo.prune_job(&again));
        assert!(again.join(".stamp").is_file() && again.join("docs").is_dir());
    }
}
