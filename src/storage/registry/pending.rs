//! Pending links (`.uploads/reg-{key}-{algo}-{hex}[.{user}]`): blobs and manifests that wait
//! in a repository for the manifest that uses them, and the quota room they reserve.

use super::sessions::{is_session_id, owner_file};
use super::{ImageRepo, RegistryError};
use crate::model::{Algo, Digest, Name, Scope};
use crate::storage::Repo;
use crate::storage::files;
use serde_json::Value;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A key naming a repository in `.uploads/` file names: 128 bits of the SHA-256 of its
/// name, so names of any length and case fit, and no two repositories share one.
pub(super) fn repo_key(r: &ImageRepo) -> String {
    let mut h = Algo::Sha256.hasher();
    h.update(r.name().as_bytes());
    let mut key = h.finish_hex();
    key.truncate(32);
    key
}

pub(super) fn pending_prefix(r: &ImageRepo) -> String {
    format!("reg-{}-", repo_key(r))
}

/// `name.{user}` for a user repository: the quota sums pending links by that suffix.
pub(super) fn with_user(name: String, r: &ImageRepo) -> String {
    match r.scope() {
        Scope::Root => name,
        Scope::User(u) => format!("{name}.{u}"),
    }
}

impl Repo {
    /// The pending link that keeps `d` in the repository `r`:
    /// `.uploads/reg-{key}-{algo}-{hex}[.{user}]`, `key` naming the repository (see
    /// [`repo_key`]), so that its pending content can be listed, and the user suffix
    /// letting the quota sum a user's reservation.
    pub(super) fn pending_path(&self, r: &ImageRepo, d: &Digest) -> PathBuf {
        let base = format!("{}{}-{}", pending_prefix(r), d.algo().name(), d.hex());
        self.uploads_dir().join(with_user(base, r))
    }

    /// The name arbor gave pending links before they named their repository
    /// (`reg-{sha256(name, digest)}`): still honoured, so that a push waiting for its
    /// manifest across an upgrade completes. The collector drops them like any other.
    pub(super) fn legacy_pending_path(&self, r: &ImageRepo, d: &Digest) -> PathBuf {
        let mut h = Algo::Sha256.hasher();
        h.update(r.name().as_bytes());
        h.update(b"\n");
        h.update(d.to_string().as_bytes());
        self.uploads_dir()
            .join(with_user(format!("reg-{}", h.finish_hex()), r))
    }

    /// The pending link of `d` in `r`, if there is one.
    pub(super) fn pending(&self, r: &ImageRepo, d: &Digest) -> Option<PathBuf> {
        [self.pending_path(r, d), self.legacy_pending_path(r, d)]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// Removes the pending link of `d` in `r`; `false` when there was none.
    pub(super) fn drop_pending(&self, r: &ImageRepo, d: &Digest) -> io::Result<bool> {
        let mut dropped = false;
        for p in [self.pending_path(r, d), self.legacy_pending_path(r, d)] {
            match fs::remove_file(p) {
                Ok(()) => dropped = true,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(dropped)
    }

    /// Every digest pending in `r`, with its link.
    pub(super) fn pending_in(&self, r: &ImageRepo) -> Vec<(Digest, PathBuf)> {
        let prefix = pending_prefix(r);
        let mut out = Vec::new();
        for entry in fs::read_dir(self.uploads_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let rest = rest.split_once('.').map_or(rest, |(d, _)| d);
            let Some((algo, hex)) = rest.split_once('-') else {
                continue;
            };
            if let Ok(d) = Digest::parse(Some(&format!("{algo}:{hex}"))) {
                out.push((d, entry.path()));
            }
        }
        out
    }

    /// Bytes a user has pending in the registry: its sessions (but `except`) and its
    /// pending blobs, each pending link in full as the usage counts links.
    pub(super) fn reserved(&self, user: &Name, except: Option<&str>) -> u64 {
        let repo_prefix = format!("u/{user}/");
        let mut total = 0;
        for entry in fs::read_dir(self.uploads_dir())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let counts = if let Some(rest) = name.strip_prefix("reg-") {
                rest.split_once('.')
                    .is_some_and(|(_, u)| u == user.as_str())
            } else if is_session_id(name) && except != Some(name) {
                fs::read(owner_file(&entry.path()))
                    .ok()
                    .and_then(|o| serde_json::from_slice::<Value>(&o).ok())
                    .and_then(|o| o.get("repo")?.as_str().map(str::to_owned))
                    .is_some_and(|repo| repo.starts_with(&repo_prefix))
            } else {
                false
            };
            if counts && let Ok(m) = entry.metadata() {
                total += m.len();
            }
        }
        total
    }

    /// Refuses `more` bytes of new pending data in `r` when the user's usage plus what it
    /// has pending (sessions other than `except` included) would pass the quota.
    pub(super) fn check_pending_room(
        &self,
        r: &ImageRepo,
        except: Option<&str>,
        more: u64,
    ) -> Result<(), RegistryError> {
        let (Some(room), Scope::User(user)) = (self.room(r.scope()), r.scope()) else {
            return Ok(());
        };
        room.check(self.reserved(user, except), more)
            .map_err(|e| RegistryError::OverQuota(e.to_string()))
    }

    pub(super) fn mark_pending(
        &self,
        r: &ImageRepo,
        d: &Digest,
        blob: &Path,
    ) -> Result<(), RegistryError> {
        let pending = self.pending_path(r, d);
        let legacy = self.legacy_pending_path(r, d);
        if legacy.is_file() {
            // One link per blob and repository, under today's name.
            fs::rename(&legacy, &pending)?;
        }
        if crate::storage::stale::link_shared(blob, &pending)? {
            return Ok(());
        }
        if files::same_file(&pending, blob) {
            // Refresh it: the collector drops pending links by age.
            files::touch(&pending)?;
            return Ok(());
        }
        // Some other file under that name (left by a version that took any file named for
        // a digest as its content): replaced in one rename.
        let mut swap = files::Replace::new(&self.uploads_dir())?;
        swap.link(blob, &pending)?;
        swap.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Uploader;
    use super::super::test_support::{repo, sha256, who};
    use super::*;

    /// Pending links name their repository, so its pending content can be listed without
    /// hashing blobs, and a link named the old way (before an upgrade) still counts.
    #[test]
    fn pending_links_are_listed_per_repository() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let (x, bob_x, y) = (
            who("main/x", None),
            who("u/bob/main/x", None),
            who("main/y", None),
        );
        let d = sha256(b"layer");
        let id = repo.start_blob_upload(&x).unwrap();
        fs::write(repo.uploads_dir().join(&id), b"layer").unwrap();
        repo.finish_blob_upload(&x, &id, &d).unwrap();
        let listed = |w: &Uploader| -> Vec<String> {
            repo.pending_in(&w.repo)
                .into_iter()
                .map(|(d, _)| d.to_string())
                .collect()
        };
        assert_eq!(listed(&x), [d.to_string()]);
        assert!(listed(&bob_x).is_empty() && listed(&y).is_empty());
        assert!(repo.open_image_blob(&y.repo, &d).is_err());

        // A user repository's link ends in the user, for the quota.
        let id = repo.start_blob_upload(&bob_x).unwrap();
        fs::write(repo.uploads_dir().join(&id), b"layer").unwrap();
        repo.finish_blob_upload(&bob_x, &id, &d).unwrap();
        let link = repo.pending_path(&bob_x.repo, &d);
        assert!(link.to_str().unwrap().ends_with(".bob"), "{link:?}");
        assert_eq!(listed(&bob_x), [d.to_string()]);
        assert_eq!(repo.reserved(&Name::parse("bob").unwrap(), None), 5);

        // An old-style link is found, and renamed when the blob is marked pending again.
        let old = repo.legacy_pending_path(&y.repo, &d);
        fs::hard_link(repo.blob_path(&d), &old).unwrap();
        assert!(repo.open_image_blob(&y.repo, &d).is_ok());
        repo.mark_pending(&y.repo, &d, &repo.blob_path(&d)).unwrap();
        assert!(!old.exists());
        assert_eq!(listed(&y), [d.to_string()]);
        repo.delete_image_blob(&y.repo, &d).unwrap();
        assert!(repo.open_image_blob(&y.repo, &d).is_err());
    }
}
