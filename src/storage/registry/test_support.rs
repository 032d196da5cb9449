//! Helpers shared by the registry's unit tests: a repository on a temporary directory,
//! uploaders, uploaded blobs and image manifests.

use super::{ImageRepo, Uploader};
use crate::model::oci::OCI_MANIFEST;
use crate::model::{Algo, BranchRef, Digest, JobRef, Name, Scope, TagRef};
use crate::storage::Repo;
use std::fs;

pub(super) use crate::storage::fixture::repo;

/// `[u/{user}/]{branch}/{job}`.
pub(super) fn who(name: &str, login: Option<&str>) -> Uploader {
    let n = |s: &str| Name::parse(s).expect("a name");
    let segs: Vec<&str> = name.split('/').collect();
    let (scope, branch, job) = match segs.as_slice() {
        ["u", user, b, j] => (Scope::User(n(user)), n(b), n(j)),
        [b, j] => (Scope::Root, n(b), n(j)),
        _ => panic!("{name}"),
    };
    Uploader {
        repo: ImageRepo::Job {
            branch: BranchRef { scope, branch },
            job,
        },
        login: login.map(str::to_owned),
    }
}

/// Uploads `data` as a blob of the repository `who` pushes to.
pub(super) fn upload(repo: &Repo, who: &Uploader, data: &[u8]) -> Digest {
    let d = sha256(data);
    let id = repo.start_blob_upload(who).unwrap();
    fs::write(repo.uploads_dir().join(&id), data).unwrap();
    repo.finish_blob_upload(who, &id, &d).unwrap();
    d
}

/// An image manifest of a config and one layer, both uploaded first.
pub(super) fn image(repo: &Repo, who: &Uploader, layer: &[u8]) -> (Vec<u8>, Digest, Digest) {
    let (config, layer_len) = (b"{}", layer.len());
    let (c, l) = (upload(repo, who, config), upload(repo, who, layer));
    let body = format!(
        r#"{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {{"digest": "{c}", "size": 2}}, "layers": [{{"digest": "{l}", "size": {layer_len}}}]}}"#
    );
    (body.into_bytes(), c, l)
}

pub(super) fn job(who: &Uploader, tag: &str) -> JobRef {
    let ImageRepo::Job { branch, job } = &who.repo else {
        panic!("a job repository");
    };
    JobRef {
        tag: TagRef {
            branch: branch.clone(),
            tag: Name::parse(tag).unwrap(),
        },
        job: job.clone(),
    }
}

/// A caller who may do anything (access control off).
pub(super) fn everyone() -> crate::storage::visibility::Visibility {
    crate::storage::visibility::Visibility::everything()
}

pub(super) fn sha256(data: &[u8]) -> Digest {
    let mut h = Algo::Sha256.hasher();
    h.update(data);
    Digest::sha256_of_hex(h.finish_hex())
}
