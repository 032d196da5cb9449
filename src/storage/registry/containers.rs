//! The containers (tag or version dirs) that make up a registry repository, aliases
//! included, and where in them (or pending) a digest is held.

use super::container_layout::rel_of;
use super::{ImageRepo, RegistryError};
use crate::model::{Alias, Digest, Name, TagRef};
use crate::storage::Repo;
use crate::storage::aliases::pick_alias;
use crate::storage::files::{exists, sort_time, stamp_time};
use crate::storage::visibility::Visibility;
use std::fs;
use std::path::PathBuf;

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
    pub(super) fn locate(&self, r: &ImageRepo, d: &Digest) -> Option<PathBuf> {
        if let Some(pending) = self.pending(r, d) {
            return Some(pending);
        }
        let rel = rel_of(d);
        self.containers(r).into_iter().find_map(|c| {
            ["blobs", "manifests"]
                .iter()
                .map(|kind| c.dir.join(kind).join(&rel))
                .find(|p| p.is_file())
        })
    }
}
