//! Format finalisation, `PATCH {format}/`: runs `DLREPO_POST_PROCESS_CMD` on private copies
//! of the files, then re-hashes and re-deduplicates what it left (spec/API.md §7).

use super::files::{self, DirLock, read_json_map, remove_flag};
use super::{Repo, StoreError};
use crate::model::{Algo, Digest, FormatRef};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

impl Repo {
    pub fn finalize_format(&self, f: &FormatRef) -> Result<(), StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        // Shared with uploads, exclusive with locking the job: a job is never locked while
        // one of its formats is being post-processed.
        let _job = match f {
            FormatRef::Job { job, .. } => Some(DirLock::shared(&self.job_dir(job))?),
            FormatRef::Version { .. } => None,
        };
        let _lock = DirLock::acquire(&fdir)?;
        let dirty = fdir.join(".dirty");
        let Some(cmd) = &self.post_process_cmd else {
            remove_flag(&dirty)?;
            return Ok(());
        };
        let digests = read_json_map(&fdir.join(".digests"));
        if let Some(filter) = &self.post_process_filter
            && !digests.keys().any(|k| filter.is_match(k))
        {
            remove_flag(&dirty)?;
            return Ok(());
        }
        // A locked job's format is frozen behind the job's digest (and is not dirty:
        // locking refuses dirty formats, uploads refuse locked jobs). Running the command
        // again would change it under that digest: it is finalised as without a command.
        if matches!(f, FormatRef::Job { .. }) && self.frozen(f)? {
            remove_flag(&dirty)?;
            return Ok(());
        }
        // The command may change what the format holds; its user is charged the difference
        // afterwards, but never refused: the command is the operator's, and what it made is
        // there either way.
        let before = files::tree_bytes(&fdir);
        // Private copies, so the command cannot change content shared with other formats.
        let mut ctimes: HashMap<PathBuf, (i64, i64)> = HashMap::new();
        for rel in digests.keys() {
            let path = fdir.join(rel);
            if !path.is_file() {
                continue;
            }
            let tmp = files::TempFile::create(&self.uploads_dir())?;
            fs::copy(&path, &tmp.path)?;
            tmp.persist(&path)?;
            let m = fs::metadata(&path)?;
            ctimes.insert(path, (m.ctime(), m.ctime_nsec()));
        }
        let status = std::process::Command::new(cmd).current_dir(&fdir).status();
        let ok = match &status {
            Ok(s) => s.success(),
            Err(e) => {
                tracing::error!(cmd = %cmd.display(), error = %e, "cannot run post-process command");
                false
            }
        };
        let scratch = files::TempDir::create(&self.uploads_dir(), "post")?;
        let rehashed = self.rehash_format(&fdir, &digests, &ctimes, &scratch.path);
        if let Some(mut usage) = self.usage_at(&fdir)? {
            usage.adjust(before, files::tree_bytes(&fdir));
            usage.save(self)?;
        }
        rehashed?;
        if !ok {
            tracing::warn!(cmd = %cmd.display(), ?status, "post-process command failed");
            return Err(StoreError::PostProcessFailed);
        }
        remove_flag(&dirty)?;
        Ok(())
    }

    /// Records a digest for every file the command left, keeping those of untouched files,
    /// and swaps each file for a link to its blob (or makes it the blob).
    fn rehash_format(
        &self,
        fdir: &Path,
        old: &Map<String, Value>,
        ctimes: &HashMap<PathBuf, (i64, i64)>,
        scratch: &Path,
    ) -> Result<(), StoreError> {
        let mut digests = Map::new();
        for entry in walkdir::WalkDir::new(fdir).min_depth(1).sort_by_file_name() {
            let entry = entry.map_err(io::Error::from)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let Some(rel) = path.strip_prefix(fdir).ok().and_then(Path::to_str) else {
                continue;
            };
            if rel == ".digests" || rel == ".dirty" {
                continue;
            }
            let m = entry.metadata().map_err(io::Error::from)?;
            let unchanged = ctimes.get(path) == Some(&(m.ctime(), m.ctime_nsec()));
            let kept = old
                .get(rel)
                .and_then(Value::as_str)
                .filter(|_| unchanged)
                .and_then(|d| Digest::parse(Some(d)).ok());
            let digest = match kept {
                Some(d) => d,
                None => Digest::sha256_of_hex(files::hash_file(Algo::Sha256, path)?),
            };
            self.link_to_blob(path, &digest, scratch)?;
            digests.insert(rel.to_owned(), digest.to_string().into());
        }
        self.links.forget_all();
        files::write_json_sorted(&self.uploads_dir(), &fdir.join(".digests"), &digests)
    }
}
