//! Shared by the storage unit tests: a real [`Repo`] on a temporary root, and entities
//! made the way requests make them.

use super::Repo;
use crate::config::Config;
use crate::model::{BranchRef, Digest, FormatRef, JobRef, Name, RelPath, Scope, TagRef};
use sha2::{Digest as _, Sha256};
use std::path::Path;

pub(super) fn repo(dir: &Path) -> Repo {
    Repo::new(&Config {
        root_dir: dir.to_path_buf(),
        ..Config::default()
    })
    .expect("a repo in a temp dir")
}

pub(super) fn name(s: &str) -> Name {
    Name::parse(s).expect("a valid name")
}

/// `main/{tag}/{job}` in the root repository.
pub(super) fn job(tag: &str, job: &str) -> JobRef {
    JobRef {
        tag: TagRef {
            branch: BranchRef {
                scope: Scope::Root,
                branch: name("main"),
            },
            tag: name(tag),
        },
        job: name(job),
    }
}

/// Uploads `{format}/{rel}` to `j`, as a PUT would (the format is left dirty).
pub(super) fn upload(r: &Repo, j: &JobRef, format: &str, rel: &str, data: &[u8]) {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    let digest = Digest::parse(Some(&digest)).expect("a sha256 digest");
    let f = FormatRef::Job {
        job: j.clone(),
        format: name(format),
    };
    let rel = RelPath::parse(rel).expect("a valid path");
    let staged = r.stage_bytes(&digest, data).expect("staged");
    r.store_and_link(staged, &f, &rel).expect("stored");
}
