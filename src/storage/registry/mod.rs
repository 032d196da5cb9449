//! Container images inside the tree (spec/CONTAINER.md): upload sessions in `.uploads/`,
//! manifests and blobs hard-linked into `{job}/container/{blobs,manifests}/{algo}/{xx}/{hex}`
//! from `.blobs/`. Owns every filesystem step of the registry; the HTTP side never sees a path.
//!
//! Blobs are scoped to a repository (CONTAINER.md §3.7, arbor's deviation): a digest is
//! readable under a name only when one of that repository's containers links it, or when it
//! was uploaded (or mounted) there and waits for its manifest. That waiting state is a
//! "pending" hard link `.uploads/reg-{key}-{algo}-{hex}`, `key` naming the repository, which
//! also keeps the blob away from the orphan collector until the manifest arrives; the
//! collector drops stale ones.
//!
//! Pending data of a user repository (`u/{user}/...`: its sessions and pending blobs) lies
//! outside `users/{user}/`, so `.disk_usage` does not count it, but it is reserved against
//! the quota: a chunk, a finished upload, a mount or a manifest pushed by digest that would
//! take the usage plus what the user has pending past the quota is refused (403 `DENIED`).
//! Pending links of a user repository end in `.{user}` so the reservation can be summed.
//!
//! Files: `sessions` (uploads), `pending` (waiting blobs, quota reservation), `containers`
//! (a repository's tag dirs), `blobs`, `manifests`, `install` (a push into its job),
//! `delete`, `referrers`, `tags`; `container_layout` names the files of a container dir and
//! imports nothing else of the registry. Failures are [`RegistryError`]s: no OCI codes here.

mod blobs;
pub(crate) mod container_layout;
mod containers;
mod delete;
mod error;
mod install;
mod manifests;
mod pending;
mod referrers;
mod sessions;
mod tags;
#[cfg(test)]
mod test_support;

pub use error::RegistryError;
pub(crate) use sessions::sidecar_session;

use super::BlobReader;
use crate::model::{BranchRef, Digest, Name, Scope};

/// A registry repository name, mapped onto the tree (spec/CONTAINER.md §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRepo {
    /// `[u/{user}/]{branch}/{job}`: the job `{job}` of every tag of the branch.
    Job { branch: BranchRef, job: Name },
    /// `[u/{user}/]{product}/{variant}/{product_branch}`: read-only.
    Product { scope: Scope, path: [Name; 3] },
}

impl ImageRepo {
    /// The repository (root or user) the name lives in.
    pub fn scope(&self) -> &Scope {
        match self {
            ImageRepo::Job { branch, .. } => &branch.scope,
            ImageRepo::Product { scope, .. } => scope,
        }
    }

    /// The name as clients spell it (lower case), e.g. `u/bob/main/myjob`.
    pub fn name(&self) -> String {
        let (scope, rest) = match self {
            ImageRepo::Job { branch, job } => (&branch.scope, format!("{}/{job}", branch.branch)),
            ImageRepo::Product { scope, path } => {
                (scope, format!("{}/{}/{}", path[0], path[1], path[2]))
            }
        };
        match scope {
            Scope::Root => rest,
            Scope::User(u) => format!("u/{u}/{rest}"),
        }
    }
}

/// A manifest ready to be sent.
pub struct ManifestFile {
    /// Opened with the manifest's digest.
    pub file: BlobReader,
    pub media_type: String,
}

/// A manifest stored by a push.
#[derive(Debug)]
pub struct Pushed {
    pub digest: Digest,
    /// The manifest's `subject`, which the referrers API lists it under.
    pub subject: Option<Digest>,
}

/// Where an upload session stands.
pub struct UploadState {
    pub size: u64,
}

/// Who works on an upload session: the repository named in the URL and the caller's login
/// (`None` when auth is disabled, or for an anonymous caller). A session answers only to the
/// pair that started it, so that its id alone gives no access (spec/API.md, issue 11).
#[derive(Debug, Clone)]
pub struct Uploader {
    pub repo: ImageRepo,
    pub login: Option<String>,
}

impl Uploader {
    /// The content of the session's owner file: canonical name and login, nothing else, so
    /// that the same pair always gives the same bytes.
    pub(super) fn owner_record(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "repo": self.repo.name(),
            "login": self.login,
        }))
        .expect("a JSON object of strings serialises")
    }
}
