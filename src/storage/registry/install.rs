//! Installing a pushed image into its job: the `container` dir built aside in a leased
//! staging dir, charged to the quota, then swapped in under the job lock.

use super::container_layout::rel_of;
use super::{ImageRepo, RegistryError};
use crate::model::{Digest, JobRef};
use crate::storage::durable::DirSyncs;
use crate::storage::files::{self, DirLock, exists, random_hex, same_file};
use crate::storage::link_targets;
use crate::storage::visibility::Visibility;
use crate::storage::{Repo, StoreError};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

impl Repo {
    /// Builds the new `container` dir aside, then swaps it in under the job's lock.
    pub(super) fn install_image(
        &self,
        r: &ImageRepo,
        j: &JobRef,
        digest: &Digest,
        data: &[u8],
        links: &[(Digest, PathBuf)],
        may_link: &Visibility,
    ) -> Result<(), RegistryError> {
        // A user's image that cannot fit is refused before anything is created or stored;
        // the swap below charges it again, exactly, under the user's lock.
        self.check_image_room(j, data.len() as u64, links)?;
        let _guard = self.blob_guard()?;
        let (jdir, _lock) = self.locked_job(j)?;
        if exists(&jdir.join(".locked")) {
            return Err(RegistryError::PushToLockedJob);
        }
        // Leased, so that the collector leaves it alone however long the build takes, and
        // removed with whatever is left in it however this ends.
        let stage = files::TempDir::create(&self.uploads_dir(), "container")?;
        let staging = stage.path.join("container");
        let total = self.stage_image(&staging, digest, data, links)?;
        let cdir = jdir.join("container");
        let mut usage = self.usage(&j.tag.branch.scope)?;
        if let Some(u) = usage.as_mut() {
            u.charge(files::tree_bytes(&cdir), total)
                .map_err(|e| RegistryError::OverQuota(e.to_string()))?;
        }
        // Written before the swap: a full disk refuses the push with the old image intact.
        let count = usage.as_ref().map(|u| u.staged(self)).transpose()?;
        let trash = self.swap_container(&staging, &cdir)?;
        if let Some(count) = count {
            count.persist()?;
        }
        // On disk before the push hears 201, as an artifact upload is: the new tree's
        // names, its place in the job (and the job's, which the push may have made), the
        // manifest's blob and the user's count.
        let mut dirs = DirSyncs::default();
        dirs.tree(&cdir);
        dirs.up_to(&cdir, &self.root);
        dirs.entry(&self.blob_path(digest));
        if usage.is_some() {
            dirs.dir(&self.scope_dir(&j.tag.branch.scope));
        }
        dirs.sync().map_err(|e| StoreError::at("sync", &cdir, e))?;
        drop(usage);
        if let Some(trash) = trash {
            let _ = fs::remove_dir_all(&trash);
        }
        self.link_container_product(j, may_link);
        for (d, _) in links {
            let _ = self.drop_pending(r, d);
        }
        self.request_gc(crate::storage::GcKind::Orphans);
        Ok(())
    }

    /// Refuses an image of a user repository that cannot fit in the quota: its files, each
    /// once, less the image it replaces.
    fn check_image_room(
        &self,
        j: &JobRef,
        manifest_len: u64,
        links: &[(Digest, PathBuf)],
    ) -> Result<(), RegistryError> {
        let Some(room) = self.room(&j.tag.branch.scope) else {
            return Ok(());
        };
        let mut seen = std::collections::HashSet::new();
        let mut total = manifest_len;
        for (d, p) in links {
            if seen.insert(rel_of(d)) {
                total += fs::metadata(p)?.len();
            }
        }
        let old = files::tree_bytes(&self.job_dir(j).join("container"));
        room.check(0, total.saturating_sub(old))
            .map_err(|e| RegistryError::OverQuota(e.to_string()))
    }

    /// Fills `staging` with the image: the manifest (stored as a blob) and every file it
    /// links, each a hard link of its `.blobs` inode. Returns the bytes it holds.
    fn stage_image(
        &self,
        staging: &Path,
        digest: &Digest,
        data: &[u8],
        links: &[(Digest, PathBuf)],
    ) -> Result<u64, RegistryError> {
        let mut total = 0;
        let manifest = self.store_bytes(digest, data)?;
        let mut all: Vec<(&str, &Digest, &Path)> = vec![("manifests", digest, &manifest)];
        all.extend(links.iter().map(|(d, p)| ("blobs", d, p.as_path())));
        for (kind, d, src) in all {
            let dest = staging.join(kind).join(rel_of(d));
            if dest.exists() {
                continue;
            }
            if let Some(dir) = dest.parent() {
                crate::storage::files::create_dirs(dir)?;
            }
            // Link the `.blobs` inode when it is there, so dedup holds.
            let blob = self.blob_path(d);
            let from = if blob.is_file() { blob.as_path() } else { src };
            fs::hard_link(from, &dest)?;
            total += fs::metadata(&dest)?.len();
        }
        Ok(total)
    }

    /// Puts `staging` in place of the job's `cdir`. Returns where the old image went, for
    /// the caller to delete once the new one is accounted for.
    fn swap_container(
        &self,
        staging: &Path,
        cdir: &Path,
    ) -> Result<Option<PathBuf>, RegistryError> {
        let trash = self
            .uploads_dir()
            .join(format!("{}.deleting", random_hex()));
        let had_old = cdir.is_dir();
        // One step where the filesystem can: a crash then leaves the old image or the new
        // one, never a job without its container. The old one is then in `staging`.
        if had_old && files::rename_exchange(staging, cdir)? {
            fs::rename(staging, &trash)?;
            return Ok(Some(trash));
        }
        if had_old {
            fs::rename(cdir, &trash)?;
        }
        if let Err(e) = fs::rename(staging, cdir) {
            if had_old {
                let _ = fs::rename(&trash, cdir);
            }
            return Err(StoreError::at("rename", cdir, e).into());
        }
        Ok(had_old.then_some(trash))
    }

    /// Creates the job as needed and takes its lock. A registry delete may remove the job
    /// dir it emptied (see [`Repo::prune_job`]) between the two, or while the lock is
    /// awaited (`DirLock` then finds the path gone: `NotFound`); the job is then made
    /// again, so the push never fails for it.
    pub(super) fn locked_job(&self, j: &JobRef) -> Result<(PathBuf, DirLock), RegistryError> {
        for _ in 0..5 {
            let jdir = self.ensure_job(j)?;
            match DirLock::acquire(&self.locks_dir(), &jdir) {
                Ok(lock) => return Ok((jdir, lock)),
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NotFound.into())
    }

    /// A job already in a product version gets its new `container` linked there too, so
    /// the image is pullable by product path without setting the metadata again; only when
    /// the pusher may add to that version, as setting the metadata needs (spec/API.md Q50).
    /// Otherwise the image waits for someone who may to set the metadata again.
    pub(super) fn link_container_product(&self, j: &JobRef, may_link: &Visibility) {
        let Ok(vdir) = fs::canonicalize(self.job_dir(j).join(".product")) else {
            return;
        };
        let version = self
            .merged_metadata(j, &Default::default())
            .ok()
            .and_then(|(_, v)| v);
        // The link and the metadata agree unless someone edited the tree by hand: then
        // nobody's push links anything.
        match version {
            Some(v) if same_file(&self.version_dir(&v), &vdir) => {
                if !may_link.allows(|| v.url()) {
                    return;
                }
            }
            _ => return,
        }
        let link = vdir.join("container");
        if fs::symlink_metadata(&link).is_ok() {
            return;
        }
        let _ = symlink(link_targets::format_target(j, "container"), link);
    }
}

#[cfg(test)]
mod tests {
    use super::super::container_layout::{rel_of, top_manifest};
    use super::super::test_support::{everyone, image, job, repo, sha256, who};
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Whether the container links `d` as `kind`, as a hard link of its `.blobs` file.
    fn links(repo: &Repo, cdir: &Path, kind: &str, d: &Digest) -> bool {
        let Ok(linked) = fs::metadata(cdir.join(kind).join(rel_of(d))) else {
            return false;
        };
        fs::metadata(repo.blob_path(d)).is_ok_and(|blob| blob.ino() == linked.ino())
    }

    /// A push into a job that is in a product version links the image there only for a
    /// pusher who may add to that version: writing a branch is not publishing.
    #[test]
    fn a_push_links_into_the_product_only_for_who_may_add_to_it() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("dev/app", None);
        let j = job(&w, "t1");
        let meta: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"product": "pub", "product_variant": "v", "product_branch": "pb", "version": "5.0"}"#,
        )
        .unwrap();
        repo.patch_metadata(&j, &meta, &everyone()).unwrap();
        let vdir = repo.products_dir(&j.tag.branch.scope).join("pub/v/pb/5.0");
        assert!(vdir.is_dir());

        let (body, _, _) = image(&repo, &w, b"layer");
        let nobody = Visibility::new(|_| false);
        repo.push_manifest(&w.repo, "t1", &body, None, &nobody)
            .unwrap();
        assert!(repo.job_dir(&j).join("container").is_dir());
        assert!(fs::symlink_metadata(vdir.join("container")).is_err());

        let only_it = Visibility::new(|url| url == "/products/pub/v/pb/5.0/");
        let (body, _, _) = image(&repo, &w, b"layer two");
        repo.push_manifest(&w.repo, "t1", &body, None, &only_it)
            .unwrap();
        assert!(vdir.join("container").is_dir());
    }

    #[test]
    fn a_push_is_on_disk_before_it_is_answered() {
        use crate::storage::durable::tests::take_synced;
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        take_synced();
        let (body, _, layer) = image(&repo, &w, b"layer one");
        // Each blob's name, when its upload is finished.
        let synced = take_synced();
        let layer_dir = repo.blob_path(&layer).parent().unwrap().to_path_buf();
        assert!(synced.contains(&layer_dir), "{synced:?}");
        // The image's tree, its place in the job, the job's up to the branch, the manifest.
        let pushed = repo
            .push_manifest(&w.repo, "t1", &body, None, &everyone())
            .unwrap();
        let synced = take_synced();
        let jdir = repo.job_dir(&job(&w, "t1"));
        let cdir = jdir.join("container");
        for dir in [
            cdir.clone(),
            cdir.join("blobs"),
            jdir.clone(),
            jdir.parent().unwrap().into(),
        ] {
            assert!(synced.contains(&dir), "{dir:?} not in {synced:?}");
        }
        let manifest_dir = repo
            .blob_path(&pushed.digest)
            .parent()
            .unwrap()
            .to_path_buf();
        assert!(synced.contains(&manifest_dir), "{synced:?}");
    }

    #[test]
    fn a_pushed_manifest_installs_its_image_in_the_job() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        let (body, config, layer) = image(&repo, &w, b"layer one");
        let pushed = repo
            .push_manifest(&w.repo, "t1", &body, None, &everyone())
            .unwrap();
        // Complete sizes: stored byte for byte, so the client's digest holds.
        assert_eq!(pushed.digest, sha256(&body));
        let cdir = repo.job_dir(&job(&w, "t1")).join("container");
        let top = top_manifest(&cdir).map(|(_, d)| d);
        assert_eq!(top, Some(pushed.digest.to_string()));
        assert!(links(&repo, &cdir, "manifests", &pushed.digest));
        assert!(links(&repo, &cdir, "blobs", &config) && links(&repo, &cdir, "blobs", &layer));
        // Installed, the blobs no longer wait for a manifest.
        assert!(repo.pending_in(&w.repo).is_empty());
        assert_eq!(repo.image_tags(&w.repo, |_| true).unwrap(), ["t1"]);
    }

    #[test]
    fn a_second_push_replaces_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        let (first, _, old_layer) = image(&repo, &w, b"layer one");
        let old = repo
            .push_manifest(&w.repo, "t1", &first, None, &everyone())
            .unwrap();
        let (second, _, new_layer) = image(&repo, &w, b"layer two");
        let new = repo
            .push_manifest(&w.repo, "t1", &second, None, &everyone())
            .unwrap();
        let cdir = repo.job_dir(&job(&w, "t1")).join("container");
        assert_eq!(
            top_manifest(&cdir).map(|(_, d)| d),
            Some(new.digest.to_string())
        );
        assert!(links(&repo, &cdir, "blobs", &new_layer));
        assert!(!links(&repo, &cdir, "blobs", &old_layer));
        assert!(!links(&repo, &cdir, "manifests", &old.digest));
        // The old image went whole, with no trash left behind in `.uploads/`.
        let leftovers: Vec<_> = fs::read_dir(repo.uploads_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".deleting") || name.ends_with(".container")
            })
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_locked_job_refuses_a_push_and_keeps_its_image() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let w = who("main/app", None);
        let (first, _, _) = image(&repo, &w, b"layer one");
        let old = repo
            .push_manifest(&w.repo, "t1", &first, None, &everyone())
            .unwrap();
        let jdir = repo.job_dir(&job(&w, "t1"));
        files::create_flag(&jdir.join(".locked")).unwrap();
        let (second, _, new_layer) = image(&repo, &w, b"layer two");
        let refused = repo.push_manifest(&w.repo, "t1", &second, None, &everyone());
        assert!(
            matches!(refused, Err(RegistryError::PushToLockedJob)),
            "{refused:?}"
        );
        let cdir = jdir.join("container");
        assert_eq!(
            top_manifest(&cdir).map(|(_, d)| d),
            Some(old.digest.to_string())
        );
        // The refused image's layer still waits in the repository for a push that fits.
        let pending: Vec<Digest> = repo.pending_in(&w.repo).into_iter().map(|p| p.0).collect();
        assert!(pending.contains(&new_layer), "{pending:?}");
    }
}
