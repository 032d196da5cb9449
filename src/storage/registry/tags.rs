//! Listing the tags of a repository and the catalog of repositories.

use super::{ImageRepo, RegistryError};
use crate::model::Scope;
use crate::storage::{Repo, StoreError};
use std::sync::Arc;

impl Repo {
    /// Tags of a repository, sorted, filtered by `visible(tag)`: only tags pushed (or
    /// versions), never the aliases, which a client could not delete (spec/CONTAINER.md
    /// §3.3 lists `latest`; the OCI spec lists tags). A repository with neither an image nor
    /// pending content is unknown (404 `NAME_UNKNOWN`).
    pub fn image_tags(
        &self,
        r: &ImageRepo,
        visible: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, RegistryError> {
        let containers = self.containers(r);
        if containers.is_empty() && self.pending_in(r).is_empty() {
            return Err(RegistryError::RepositoryUnknown);
        }
        let mut tags: Vec<String> = containers
            .into_iter()
            .map(|c| c.name.to_string())
            .filter(|t| visible(t))
            .collect();
        tags.sort();
        tags.dedup();
        Ok(tags)
    }

    /// [`Repo::image_catalog`] for requests: its walk reads every job of the root
    /// repository, so one runs at a time and the requests that wait for it share the next
    /// ([`SharedRun`](crate::storage::shared_run::SharedRun)); a flood of them cannot hold
    /// the blocking pool.
    pub async fn shared_catalog(self: &Arc<Self>) -> Result<Arc<Vec<String>>, StoreError> {
        let walk = || async { self.run(|r| Ok(Arc::new(r.image_catalog()))).await };
        self.catalog_runs.get(walk).await
    }

    /// Every repository with at least one container (spec/CONTAINER.md §3.2), root repo only.
    /// A root branch or product named `u` is left out: the registry does not serve it, as
    /// its names would be user repositories' (`http::registry::path::repo`).
    pub fn image_catalog(&self) -> Vec<String> {
        let mut out = Vec::new();
        let branches = self.branches_dir(&Scope::Root);
        let served = |first: &str| first != "u";
        for b in Repo::list_entities(&branches).unwrap_or_default() {
            if !served(b.as_str()) {
                continue;
            }
            let mut jobs = Vec::new();
            for t in Repo::list_entities(&branches.join(&b)).unwrap_or_default() {
                let tdir = branches.join(&b).join(&t);
                for j in Repo::list_entities(&tdir).unwrap_or_default() {
                    if tdir.join(&j).join("container").is_dir() {
                        jobs.push(format!("{b}/{j}"));
                    }
                }
            }
            out.extend(jobs);
        }
        for v in self.all_versions(&Scope::Root).unwrap_or_default() {
            if served(v.product.as_str()) && self.version_dir(&v).join("container").is_dir() {
                out.push(format!("{}/{}/{}", v.product, v.variant, v.product_branch));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}
