//! The containers (tag or version dirs) that make up a registry repository, aliases
//! included, and where in them (or pending) a digest is held.

use super::container_layout::rel_of;
use super::{ImageRepo, RegistryError};
use crate::model::{Alias, Digest, Name, TagRef};
use crate::storage::Repo;
use crate::storage::aliases::pick_alias;
use crate::storage::files::{exists, same_inode, sort_time, stamp_time};
use crate::storage::visibility::Visibility;
use std::fs;
use std::path::{Path, PathBuf};

/// One container of a repository: the tag (or version) name and its dirs.
pub(super) struct Container {
    pub(super) name: Name,
    pub(super) dir: PathBuf,
    /// The tag or version dir, for `.stamp` ages.
    pub(super) parent: PathBuf,
}

impl Repo {
    pub(super) fn containers(&self, r: &ImageRepo) -> Vec<Container> {
        let mut out = Vec::new();
        match r {
            ImageRepo::Job { branch, job } => {
                let bdir = self.branch_dir(branch);
                for tag in Repo::list_entities(&bdir).unwrap_or_default() {
                    let parent = bdir.join(&tag);
                    let dir = parent.join(job).join("container");
                    if dir.is_dir() {
                        out.push(Container {
                            name: tag,
                            dir,
                            parent,
                        });
                    }
                }
            }
            ImageRepo::Product { scope, path } => {
                let pdir = self
                    .products_dir(scope)
                    .join(&path[0])
                    .join(&path[1])
                    .join(&path[2]);
                for version in Repo::list_entities(&pdir).unwrap_or_default() {
                    let parent = pdir.join(&version);
                    let dir = parent.join("container");
                    if dir.is_dir() {
                        out.push(Container {
                            name: version,
                            dir,
                            parent,
                        });
                    }
                }
            }
        }
        out
    }

    /// The URL whose read access decides whether a tag (or version) takes part in aliases.
    pub(super) fn container_url(r: &ImageRepo, name: &Name) -> String {
        match r {
            ImageRepo::Job { branch, .. } => TagRef {
                branch: branch.clone(),
                tag: name.clone(),
            }
            .url(),
            ImageRepo::Product { scope, path } => format!(
                "{}/products/{}/{}/{}/{name}/",
                scope.url(),
                path[0],
                path[1],
                path[2]
            ),
        }
    }

    /// The container a tag (or alias) names.
    pub(super) fn resolve_container(
        &self,
        r: &ImageRepo,
        tag: &str,
        acl: &Visibility,
    ) -> Result<Container, RegistryError> {
        let unknown = || RegistryError::ManifestUnknown(tag.to_owned());
        let lower = tag.to_lowercase();
        let all = self.containers(r);
        if let Some(alias) = Alias::parse(&lower) {
            let candidates = all
                .into_iter()
                .filter(|c| acl.allows(|| Repo::container_url(r, &c.name)))
                .map(|c| (sort_time(stamp_time(&c.parent)), c.dir.clone(), c.dir))
                .collect();
            // A container's tag dir is two levels up, through the product symlink if any.
            let dir = pick_alias(candidates, alias, |dir| {
                fs::canonicalize(dir)
                    .ok()
                    .and_then(|d| d.parent()?.parent().map(|t| exists(&t.join(".stable"))))
                    .unwrap_or(false)
            })
            .ok_or_else(unknown)?;
            return Ok(Container {
                name: Name::parse(&lower).map_err(|_| unknown())?,
                parent: dir.clone(),
                dir,
            });
        }
        all.into_iter()
            .find(|c| c.name.as_str() == lower)
            .ok_or_else(unknown)
    }

    /// Where the repository holds `d`: one of its containers (as a blob or a manifest), or
    /// a pending upload or manifest push.
    ///
    /// Only a link of the stored blob counts. A file's name under `container/` proves
    /// nothing about its bytes: the file API writes there for anyone who sends a publisher's
    /// `User-Agent` (spec/API.md §3.9), and a name taken from someone else's layer would
    /// otherwise make that layer readable here, or mountable, by its digest alone.
    pub(super) fn locate(&self, r: &ImageRepo, d: &Digest) -> Option<PathBuf> {
        let blob = fs::metadata(self.blob_path(d)).ok()?;
        let is_blob = |p: &Path| fs::metadata(p).is_ok_and(|m| same_inode(&m, &blob));
        if let Some(pending) = self.pending(r, d).filter(|p| is_blob(p)) {
            return Some(pending);
        }
        let rel = rel_of(d);
        self.containers(r).into_iter().find_map(|c| {
            ["blobs", "manifests"]
                .iter()
                .map(|kind| c.dir.join(kind).join(&rel))
                .find(|p| is_blob(p))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{everyone, repo, sha256, upload, who};
    use super::*;
    use crate::model::oci::OCI_MANIFEST;

    /// A file put under a container through the file API, named for the digest of another
    /// repository's layer, does not make that layer readable, mountable or pushable here;
    /// a link of the blob under the same name does.
    #[test]
    fn a_file_named_for_a_digest_is_not_that_content() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = repo(tmp.path());
        let secret = upload(&repo, &who("secret/img", None), b"SECRET-LAYER");
        let carol = who("u/carol/x/spy", Some("carol"));
        let ImageRepo::Job { branch, job } = &carol.repo else {
            unreachable!()
        };
        let planted = repo
            .branch_dir(branch)
            .join("t")
            .join(job.as_str())
            .join("container/blobs")
            .join(rel_of(&secret));
        fs::create_dir_all(planted.parent().unwrap()).unwrap();
        fs::write(&planted, b"dummy").unwrap();

        assert!(matches!(
            repo.open_image_blob(&carol.repo, &secret),
            Err(RegistryError::BlobUnknown)
        ));
        let other = who("u/carol/x/other", Some("carol"));
        assert!(!repo.mount_blob(&other.repo, &carol.repo, &secret).unwrap());
        let config = upload(&repo, &carol, b"{}");
        let manifest = format!(
            r#"{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{config}", "size": 2}}, "layers": [{{"digest": "{secret}", "size": 12}}]}}"#
        );
        assert!(matches!(
            repo.push_manifest(
                &carol.repo,
                "t2",
                manifest.as_bytes(),
                Some(OCI_MANIFEST),
                &everyone()
            ),
            Err(RegistryError::MissingBlob(_))
        ));

        // A pending link of some other file is not the content either, and marking the
        // blob pending again puts the blob in its place.
        let pending = repo.pending_path(&other.repo, &secret);
        fs::hard_link(&planted, &pending).unwrap();
        assert!(repo.open_image_blob(&other.repo, &secret).is_err());
        repo.mark_pending(&other.repo, &secret, &repo.blob_path(&secret))
            .unwrap();
        assert!(repo.open_image_blob(&other.repo, &secret).is_ok());

        // The same name as a link of the blob: held.
        fs::remove_file(&planted).unwrap();
        fs::hard_link(repo.blob_path(&secret), &planted).unwrap();
        assert!(repo.open_image_blob(&carol.repo, &secret).is_ok());
        assert_eq!(sha256(b"SECRET-LAYER"), secret);
    }
}
