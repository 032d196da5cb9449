//! A real [`Repo`] on a temporary data root, for the unit tests beside the storage code.

use super::Repo;
use crate::config::Config;
use crate::model::{BranchRef, Digest, FormatRef, JobRef, Name, RelPath, Scope, TagRef};
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};

/// The repository and the directory that holds it (removed on drop).
pub(crate) struct TestRepo {
    pub repo: Repo,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for TestRepo {
    type Target = Repo;

    fn deref(&self) -> &Repo {
        &self.repo
    }
}

impl TestRepo {
    /// A repository with the default settings.
    pub fn new() -> TestRepo {
        TestRepo::with(Config::default())
    }

    /// A repository with `config`'s settings on a temporary root.
    pub fn with(config: Config) -> TestRepo {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            root_dir: dir.path().join("root"),
            ..config
        };
        let repo = Repo::new(&config).expect("a repository on a temp dir");
        TestRepo { repo, _dir: dir }
    }

    /// Stores `data` as a blob, as an upload would, and returns its path and digest.
    pub fn blob(&self, data: &[u8]) -> (PathBuf, Digest) {
        let digest = Digest::sha256_of_hex(hex::encode(Sha256::digest(data)));
        let path = self.blob_path(&digest);
        std::fs::create_dir_all(path.parent().expect("a blob has a directory")).expect("mkdir");
        std::fs::write(&path, data).expect("write blob");
        (path, digest)
    }
}

pub(crate) fn name(s: &str) -> Name {
    Name::parse(s).expect("a valid name")
}

/// The job `{branch}/{tag}/{job}` of `scope`.
pub(crate) fn job(scope: Scope, branch: &str, tag: &str, job: &str) -> JobRef {
    JobRef {
        tag: TagRef {
            branch: BranchRef {
                scope,
                branch: name(branch),
            },
            tag: name(tag),
        },
        job: name(job),
    }
}

/// The format `format` of `job`.
pub(crate) fn format(job: &JobRef, format: &str) -> FormatRef {
    FormatRef::Job {
        job: job.clone(),
        format: name(format),
    }
}

/// A repository with the default settings whose root is `dir` (kept by the caller).
pub(crate) fn repo(dir: &Path) -> Repo {
    Repo::new(&Config {
        root_dir: dir.to_path_buf(),
        ..Config::default()
    })
    .expect("a repo in a temp dir")
}

/// `main/{tag}/{job}` in the root repository.
pub(crate) fn main_job(tag: &str, job_name: &str) -> JobRef {
    job(Scope::Root, "main", tag, job_name)
}

/// Uploads `{format}/{rel}` to `j`, as a PUT would (the format is left dirty).
pub(crate) fn upload(r: &Repo, j: &JobRef, format_name: &str, rel: &str, data: &[u8]) {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    let digest = Digest::parse(Some(&digest)).expect("a sha256 digest");
    let rel = RelPath::parse(rel).expect("a valid path");
    let staged = r.stage_bytes(&digest, data).expect("staged");
    r.store_and_link(staged, &format(j, format_name), &rel)
        .expect("stored");
}
