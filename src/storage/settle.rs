//! A file newer than its `.digests` entry. A commit puts a batch's files in place, then the
//! new `.digests`, by one rename each (`files::Replace`): a reader between two of them sees
//! an overwritten file whose entry still names the content it replaced, and a crash between
//! them leaves it so. Whatever gives out a digest with a file (a download's `Digest` and
//! `ETag`, a bundle's `SHA256SUMS.txt`) first checks that the file is that digest's blob,
//! one `stat`, and when it is not, settles the file here under the format's lock. A commit
//! in progress then finishes first; what is still wrong after it is a crash's leftover, and
//! the entry is made true: the file is hashed and, when it is the blob of that hash, listed
//! under it. The upload that crashed was never acknowledged, so its file being there is
//! the "new" of old-or-new; its user's count is put right by `arbor gc` or `fsck --repair`.
//! A file that holds the listed content but is a copy, not a link (a restore without its
//! hard links), is made a link of its blob instead; in a locked job, whose `.digest` was
//! made from `.digests`, nothing is rewritten and the true digest is given out.

use super::digests::Digests;
use super::files::{self, DirLock};
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{Algo, Digest};
use serde_json::Value;
use std::fs::{self, File, Metadata};
use std::io;
use std::path::Path;

/// A file of a format opened under the format's lock, and the digest its entry gives, true
/// for that open file.
pub(crate) struct Settled {
    pub file: File,
    pub meta: Metadata,
    pub digest: Option<String>,
}

impl Repo {
    /// Whether `meta` (an open file's) is the blob of `digest`.
    pub(crate) fn is_blob_of(&self, digest: &str, meta: &Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        self.is_blob_identity(digest, (meta.dev(), meta.ino()))
    }

    /// Whether the file whose (device, inode) is `id` is the blob of `digest`.
    pub(crate) fn is_blob_identity(&self, digest: &str, id: (u64, u64)) -> bool {
        use std::os::unix::fs::MetadataExt;
        let Ok(d) = Digest::parse(Some(digest)) else {
            return false;
        };
        files::retry_stale(|| fs::metadata(self.blob_path(&d)))
            .is_ok_and(|b| (b.dev(), b.ino()) == id)
    }

    /// The file at `rel` of the format at `fdir` (a product version's link to it too), with
    /// its `.digests` entry made true first if it is not (see the module doc). An entry
    /// whose file is no blob at all (damaged by hand) is an error: `arbor fsck` names it.
    pub(crate) fn settle(&self, fdir: &Path, rel: &str) -> Result<Settled, StoreError> {
        let real = fs::canonicalize(fdir).map_err(not_found_if_missing)?;
        let job = real.parent().ok_or(StoreError::NotFound)?;
        // The locks of a commit to this format, in its order (`commit.rs`).
        let _job = DirLock::shared(&self.locks_dir(), job)?;
        self.settle_in_job(&real, rel)
    }

    /// Before a job is locked, every file of its formats is made true to `.digests`: the
    /// job's `.digest` is made from them, and a locked job's are never rewritten. The
    /// caller holds the job's lock.
    pub(crate) fn settle_formats(&self, jdir: &Path) -> Result<(), StoreError> {
        for f in Repo::list_entities(jdir)? {
            let fdir = jdir.join(&f);
            let map = files::read_json_map_to_update(&fdir.join(".digests"))?;
            for (rel, d) in &map {
                let (Some(d), Ok(meta)) = (d.as_str(), fs::metadata(fdir.join(rel))) else {
                    continue;
                };
                if self.is_blob_of(d, &meta) {
                    continue;
                }
                // A file no blob at all does not keep the job from being locked, as before:
                // `arbor fsck` names it.
                if let Err(e) = self.settle_in_job(&fdir, rel) {
                    tracing::warn!(error = %e, "locking a job with a damaged file");
                }
            }
        }
        Ok(())
    }

    /// [`Repo::settle`] of the format at `real` (resolved), its job's lock held.
    fn settle_in_job(&self, real: &Path, rel: &str) -> Result<Settled, StoreError> {
        let _lock = DirLock::acquire(&self.locks_dir(), real)?;
        let path = real.join(rel);
        let file = File::open(&path).map_err(not_found_if_missing)?;
        let meta = file.metadata()?;
        let digests_path = real.join(".digests");
        let map = files::read_json_map_to_update(&digests_path)?;
        let listed = map.get(rel).and_then(Value::as_str).map(str::to_owned);
        let Some(listed) = listed.filter(|d| !self.is_blob_of(d, &meta)) else {
            return Ok(Settled {
                file,
                meta,
                digest: map.get(rel).and_then(Value::as_str).map(str::to_owned),
            });
        };
        let algo = Digest::parse(Some(&listed)).map_or(Algo::Sha256, |d| d.algo());
        let hex = files::hash_file(algo, &path).map_err(not_found_if_missing)?;
        let actual = format!("{}:{hex}", algo.name());
        if actual == listed {
            // The right content, only not a link of its blob (a copy restored without its
            // hard links, say): made one, as `fsck --repair` does, so that the next
            // request does not hash it again. The bytes and the entry stay as they are.
            let digest = Digest::parse(Some(&listed)).map_err(StoreError::InvalidDigest)?;
            let scratch = files::TempDir::create(&self.uploads_dir(), "settle")?;
            self.link_to_blob(&path, &digest, &scratch.path)?;
            return Ok(Settled {
                file,
                meta,
                digest: Some(listed),
            });
        }
        if !self.is_blob_of(&actual, &meta) {
            return Err(StoreError::Io(io::Error::other(format!(
                "{}: holds {actual}, which is not a stored blob, where .digests says {listed}",
                path.display()
            ))));
        }
        // A locked job's `.digest` was made from `.digests` as it is: the true digest is
        // given out, and `.digests` is left for someone who unlocks the job to repair.
        if self.frozen_format(real) {
            tracing::warn!(
                file = %path.display(),
                listed = %listed,
                holds = %actual,
                "a file of a locked job is newer than its .digests entry: run arbor fsck"
            );
            return Ok(Settled {
                file,
                meta,
                digest: Some(actual),
            });
        }
        let mut digests = Digests::new(map);
        digests.insert(rel, Value::String(actual.clone()));
        files::write_atomic(
            &self.uploads_dir(),
            &digests_path,
            digests.text().as_bytes(),
        )?;
        // The commit path keeps the maps it wrote: this one it did not.
        self.links.forget_all();
        tracing::warn!(
            file = %path.display(),
            was = %listed,
            now = %actual,
            "a commit that did not finish left this file newer than .digests: listed it as it is"
        );
        Ok(Settled {
            file,
            meta,
            digest: Some(actual),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Digest, RelPath};
    use crate::storage::fixture::{self, TestRepo};
    use crate::storage::{Artifact, Visibility};
    use sha2::{Digest as _, Sha256};
    use std::fs;

    fn sha256(data: &[u8]) -> Digest {
        Digest::sha256_of_hex(hex::encode(Sha256::digest(data)))
    }

    /// What a crash between a commit's renames leaves: the file replaced by the new blob,
    /// `.digests` still naming the old content. A download gets the file with its true
    /// digest, and `.digests` says so from then on; a bundle's sums too.
    #[test]
    fn a_file_left_newer_than_its_entry_is_listed_as_it_is() {
        let repo = TestRepo::new();
        let j = fixture::main_job("t", "j");
        fixture::upload(&repo, &j, "fmt", "a.txt", b"old");
        fixture::upload(&repo, &j, "fmt", "b.txt", b"new");
        let (old, new) = (sha256(b"old"), sha256(b"new"));
        let f = fixture::format(&j, "fmt");
        let fdir = repo.format_dir(&f);
        let everything = Visibility::everything();
        // The crash: a.txt is now the new blob, its entry still the old digest.
        fs::remove_file(fdir.join("a.txt")).unwrap();
        fs::hard_link(repo.blob_path(&new), fdir.join("a.txt")).unwrap();

        let rel = RelPath::parse("a.txt").unwrap();
        let Artifact::File(file) = repo.open_artifact(&f, &rel, &everything).unwrap() else {
            panic!("a file");
        };
        assert_eq!(file.digest(), Some(new.to_string().as_str()));
        let listed = crate::storage::digests::format_digests(&fdir);
        assert_eq!(listed["a.txt"], new.to_string());

        // The same in a bundle, planned from `.digests`.
        fs::remove_file(fdir.join("b.txt")).unwrap();
        fs::hard_link(repo.blob_path(&old), fdir.join("b.txt")).unwrap();
        let sums = repo.format_tar(&f, &everything).unwrap().sha256sums();
        assert!(sums.contains(&format!("{}  b.txt", old.hex())), "{sums}");
        let listed = crate::storage::digests::format_digests(&fdir);
        assert_eq!(listed["b.txt"], old.to_string());

        // `fsck --repair` lists such a file as it is too, where no reader went first.
        fs::remove_file(fdir.join("b.txt")).unwrap();
        fs::hard_link(repo.blob_path(&new), fdir.join("b.txt")).unwrap();
        let found = repo.fsck(false).unwrap();
        assert!(!found.healthy());
        let repaired = repo.fsck(true).unwrap();
        assert!(repaired.healthy(), "{:?}", repaired.findings);
        assert!(repo.fsck(false).unwrap().healthy());
        let listed = crate::storage::digests::format_digests(&fdir);
        assert_eq!(listed["b.txt"], new.to_string());

        // A copy of the listed content, not a link of its blob: served under its digest,
        // and a link of the blob from then on.
        fs::remove_file(fdir.join("b.txt")).unwrap();
        fs::write(fdir.join("b.txt"), b"new").unwrap();
        let b = RelPath::parse("b.txt").unwrap();
        let Artifact::File(file) = repo.open_artifact(&f, &b, &everything).unwrap() else {
            panic!("a file");
        };
        assert_eq!(file.digest(), Some(new.to_string().as_str()));
        let blob = fs::metadata(repo.blob_path(&new)).unwrap();
        let now = fs::metadata(fdir.join("b.txt")).unwrap();
        assert!(crate::storage::files::same_inode(&blob, &now));

        // In a locked job the true digest is given out and `.digests` left as it is.
        fs::remove_file(fdir.join("b.txt")).unwrap();
        fs::hard_link(repo.blob_path(&old), fdir.join("b.txt")).unwrap();
        fs::write(repo.job_dir(&j).join(".locked"), b"").unwrap();
        let Artifact::File(file) = repo.open_artifact(&f, &b, &everything).unwrap() else {
            panic!("a file");
        };
        assert_eq!(file.digest(), Some(old.to_string().as_str()));
        let listed = crate::storage::digests::format_digests(&fdir);
        assert_eq!(listed["b.txt"], new.to_string());
        fs::remove_file(repo.job_dir(&j).join(".locked")).unwrap();

        // Locking the job settles its files first: its `.digest` is made from `.digests`.
        let _ = fs::remove_file(fdir.join(".dirty"));
        repo.lock_job(&j, &everything).unwrap();
        let listed = crate::storage::digests::format_digests(&fdir);
        assert_eq!(listed["b.txt"], old.to_string());
        assert!(repo.fsck(false).unwrap().healthy());
        repo.unlock_job(&j).unwrap();

        // A file that is no blob at all is not listed as anything.
        fs::remove_file(fdir.join("a.txt")).unwrap();
        fs::write(fdir.join("a.txt"), b"by hand").unwrap();
        assert!(repo.open_artifact(&f, &rel, &everything).is_err());
    }
}
