//! Format finalisation, `PATCH {format}/`: runs `DLREPO_POST_PROCESS_CMD` on private copies
//! of the files, then re-hashes and re-deduplicates what it left (spec/API.md §7).
//!
//! The command never touches the served format. It runs in a copy built aside, in a leased
//! directory of `.uploads/`; the copy is re-hashed, linked to its blobs, given its new
//! `.digests` and checked, and only then swapped with the format in one
//! `renameat2(RENAME_EXCHANGE)`. A crash at any point leaves the format as it was before
//! the command, or as it is after: never a file whose content does not match its digest,
//! nor one that is not a link of its blob. The old tree goes with the scratch directory.

use super::files::{self, At, DirLock, TempDir, exists, read_json_map, remove_flag};
use super::{Repo, StoreError};
use crate::model::{Algo, Digest, FormatRef};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// In a post-process scratch directory: the format's path relative to the root, written
/// once the new tree is complete and checked. See [`Repo::recover_post_process`]. (Names
/// in there start with a dot so that no format name can clash with them.)
const TARGET: &str = ".target";

/// ctime of each private copy, to tell the files the command left alone.
type Ctimes = HashMap<PathBuf, (i64, i64)>;

/// A post-process run to make: the command and the digests it starts from.
struct Run<'a> {
    cmd: &'a Path,
    digests: Map<String, Value>,
}

impl Repo {
    pub fn finalize_format(&self, f: &FormatRef) -> Result<(), StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        // Shared with uploads, exclusive with locking the job: a job is never locked while
        // one of its formats is being post-processed.
        let _job = match f {
            FormatRef::Job { job, .. } => {
                Some(DirLock::shared(&self.locks_dir(), &self.job_dir(job))?)
            }
            FormatRef::Version { .. } => None,
        };
        let _lock = DirLock::acquire(&self.locks_dir(), &fdir)?;
        match self.post_process_for(f, &fdir)? {
            Some(run) => self.post_process(f, &fdir, run.cmd, &run.digests),
            None => {
                let dirty = fdir.join(".dirty");
                remove_flag(&dirty).at("remove", &dirty)?;
                Ok(())
            }
        }
    }

    /// The command to run on the format and its current digests; `None` when it is
    /// finalised without one.
    fn post_process_for(&self, f: &FormatRef, fdir: &Path) -> Result<Option<Run<'_>>, StoreError> {
        let Some(cmd) = &self.post_process_cmd else {
            return Ok(None);
        };
        let digests = read_json_map(&fdir.join(".digests"));
        if let Some(filter) = &self.post_process_filter
            && !digests.keys().any(|k| filter.is_match(k))
        {
            return Ok(None);
        }
        // A locked job's format is frozen behind the job's digest (and is not dirty:
        // locking refuses dirty formats, uploads refuse locked jobs). Running the command
        // again would change it under that digest: it is finalised as without a command.
        if matches!(f, FormatRef::Job { .. }) && self.frozen(f)? {
            return Ok(None);
        }
        Ok(Some(Run {
            cmd: cmd.as_path(),
            digests,
        }))
    }

    /// Runs `cmd` on a private copy of the format, re-hashes what it left and swaps the
    /// copy in; the caller holds the format's lock.
    fn post_process(
        &self,
        f: &FormatRef,
        fdir: &Path,
        cmd: &Path,
        digests: &Map<String, Value>,
    ) -> Result<(), StoreError> {
        let stage = TempDir::create(&self.uploads_dir(), "post")?;
        // Named like the format, for commands that look at their working directory's name.
        let work = stage.path.join(fdir.file_name().unwrap_or_default());
        let ctimes = copy_tree(fdir, &work)?;
        // dlrepo ran commands in the format directory itself, and some read the job's
        // metadata as `../.metadata` (to name a signed release, say): a copy keeps them
        // working. (The stage's own entries start with a dot too, never this name.)
        if let FormatRef::Job { job, .. } = f {
            let meta = self.job_dir(job).join(".metadata");
            if meta.is_file() {
                fs::copy(&meta, stage.path.join(".metadata")).at("copy", &meta)?;
            }
        }
        let status = std::process::Command::new(cmd).current_dir(&work).status();
        let ok = match &status {
            Ok(s) => s.success(),
            Err(e) => {
                tracing::error!(cmd = %cmd.display(), error = %e, "cannot run post-process command");
                false
            }
        };
        self.test_hooks.pause("post-process-ran");
        // spec/API.md §7 step 3: the files are re-hashed even when the command failed.
        let digests = self.rehash_format(&work, digests, &ctimes, &stage.path)?;
        files::write_json_sorted(&self.uploads_dir(), &work.join(".digests"), &digests)?;
        if ok {
            remove_flag(&work.join(".dirty")).at("remove", &work)?;
        }
        self.check_linked(&work, &digests)?;
        self.swap_in(&stage, &work, fdir)?;
        if !ok {
            tracing::warn!(cmd = %cmd.display(), ?status, "post-process command failed");
            return Err(StoreError::PostProcessFailed);
        }
        Ok(())
    }

    /// Records a digest for every file the command left in `work`, keeping those of
    /// untouched files, and swaps each file for a link to its blob (or makes it the blob).
    fn rehash_format(
        &self,
        work: &Path,
        old: &Map<String, Value>,
        ctimes: &Ctimes,
        scratch: &Path,
    ) -> Result<Map<String, Value>, StoreError> {
        let mut digests = Map::new();
        for entry in walkdir::WalkDir::new(work).min_depth(1).sort_by_file_name() {
            let entry = entry.map_err(io::Error::from).at("walk", work)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let path = entry.path();
            let Some(rel) = path.strip_prefix(work).ok().and_then(Path::to_str) else {
                continue;
            };
            if rel == ".digests" || rel == ".dirty" {
                continue;
            }
            let m = entry.metadata().map_err(io::Error::from).at("stat", path)?;
            let unchanged = ctimes.get(path) == Some(&(m.ctime(), m.ctime_nsec()));
            let kept = old
                .get(rel)
                .and_then(Value::as_str)
                .filter(|_| unchanged)
                .and_then(|d| Digest::parse(Some(d)).ok());
            let digest = match kept {
                Some(d) => d,
                None => {
                    Digest::sha256_of_hex(files::hash_file(Algo::Sha256, path).at("hash", path)?)
                }
            };
            self.link_to_blob(path, &digest, scratch)?;
            digests.insert(rel.to_owned(), digest.to_string().into());
        }
        Ok(digests)
    }

    /// The check before the swap: every listed file of the new tree is its blob. (A
    /// command that left a process behind, still writing, could break that.)
    fn check_linked(&self, work: &Path, digests: &Map<String, Value>) -> Result<(), StoreError> {
        for (rel, value) in digests {
            let path = work.join(rel);
            let file = fs::metadata(&path).at("stat", &path)?;
            let linked = value
                .as_str()
                .and_then(|d| Digest::parse(Some(d)).ok())
                .and_then(|d| fs::metadata(self.blob_path(&d)).ok())
                .is_some_and(|blob| files::same_inode(&blob, &file));
            if !linked {
                return Err(StoreError::at(
                    "post-process check",
                    &path,
                    io::Error::other("changed after it was hashed"),
                ));
            }
        }
        Ok(())
    }

    /// Puts the finished tree `work` in the place of the format `fdir` (whose lock the
    /// caller holds) and charges its user the difference. The old tree ends up in `stage`,
    /// removed with it.
    fn swap_in(&self, stage: &TempDir, work: &Path, fdir: &Path) -> Result<(), StoreError> {
        // The command may change what the format holds; its user is charged the
        // difference, but never refused: the command is the operator's, and what it made
        // is there either way.
        let mut usage = self.usage_at(fdir)?;
        let (before, after) = (files::tree_bytes(fdir), files::tree_bytes(work));
        let rel = fdir.strip_prefix(&self.root).unwrap_or(fdir);
        files::write_atomic(
            &self.uploads_dir(),
            &stage.path.join(TARGET),
            rel.as_os_str().as_encoded_bytes(),
        )?;
        // The caller's lock is the old tree's: once exchanged, the format's path names the
        // new tree, which a commit would lock as another directory and stage into while
        // this may still put the old one back. Holding the new tree's lock until the end
        // makes such a commit wait, then see the format as it ends up.
        let _new = DirLock::acquire(&self.locks_dir(), work)?;
        self.test_hooks.pause("post-process-staged");
        let exchanged = exchange(work, fdir)?;
        self.test_hooks.pause("post-process-swapped");
        self.links.forget_all();
        if let Some(u) = usage.as_mut() {
            u.adjust(before, after);
            if let Err(e) = u.save(self) {
                // Not counted, not kept: the format goes back to what it was.
                if exchanged {
                    let _ = exchange(work, fdir);
                } else if fs::rename(fdir, work).is_ok() {
                    let _ = fs::rename(aside(work), fdir);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Finishes the swaps a crash interrupted on a filesystem without
    /// `RENAME_EXCHANGE`: a format moved away whose post-processed tree was ready is put
    /// back in its place. Scratch directories still leased belong to a live process.
    /// (With `RENAME_EXCHANGE` the format is never missing, and this finds nothing.)
    pub fn recover_post_process(&self) {
        let uploads = self.uploads_dir();
        let Ok(entries) = fs::read_dir(&uploads) else {
            return;
        };
        for entry in entries.flatten() {
            let stage = entry.path();
            if stage.extension().is_none_or(|e| e != "post") {
                continue;
            }
            let Ok(target) = fs::read(stage.join(TARGET)) else {
                continue;
            };
            let Some(_claim) = files::Claim::take(&stage) else {
                continue;
            };
            let Ok(target) = String::from_utf8(target) else {
                continue;
            };
            let fdir = self.root.join(&target);
            let Some(name) = fdir.file_name() else {
                continue;
            };
            let work = stage.join(name);
            if exists(&fdir) || !work.is_dir() {
                continue;
            }
            match fs::rename(&work, &fdir) {
                Ok(()) => tracing::warn!(format = %target, "finished an interrupted post-process"),
                Err(e) => {
                    tracing::error!(format = %target, error = %e, "cannot finish an interrupted post-process")
                }
            }
        }
    }
}

/// Swaps two directories atomically. Filesystems without `RENAME_EXCHANGE` (NFS, say) get
/// two renames, `fdir` aside then `work` in place; a crash between them leaves the format
/// missing until [`Repo::recover_post_process`] runs (at start-up). Returns whether it
/// was a true exchange (the old tree is then at `work`; else it is gone with the stage).
fn exchange(work: &Path, fdir: &Path) -> Result<bool, StoreError> {
    if files::rename_exchange(work, fdir).at("exchange", fdir)? {
        return Ok(true);
    }
    let aside = aside(work);
    fs::rename(fdir, &aside).at("rename", fdir)?;
    if let Err(e) = fs::rename(work, fdir) {
        let _ = fs::rename(&aside, fdir);
        return Err(StoreError::at("rename", fdir, e));
    }
    Ok(false)
}

/// Where the two-rename swap puts the old tree.
fn aside(work: &Path) -> PathBuf {
    work.with_file_name(".old")
}

/// Copies the format into `work`: directories, every file (dot-files included, as the
/// command saw them in dlrepo) as a private copy, symlinks as they are. Returns each
/// copy's ctime.
fn copy_tree(fdir: &Path, work: &Path) -> Result<Ctimes, StoreError> {
    let mut ctimes = HashMap::new();
    for entry in walkdir::WalkDir::new(fdir).sort_by_file_name() {
        let entry = entry.map_err(io::Error::from).at("walk", fdir)?;
        let rel = entry.path().strip_prefix(fdir).unwrap_or(entry.path());
        let dest = work.join(rel);
        let kind = entry.file_type();
        if kind.is_dir() {
            fs::create_dir(&dest).at("create", &dest)?;
        } else if kind.is_symlink() {
            let to = fs::read_link(entry.path()).at("read", entry.path())?;
            std::os::unix::fs::symlink(to, &dest).at("create", &dest)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &dest).at("copy", entry.path())?;
            let m = fs::metadata(&dest).at("stat", &dest)?;
            ctimes.insert(dest, (m.ctime(), m.ctime_nsec()));
        }
    }
    Ok(ctimes)
}

#[cfg(test)]
#[path = "hooks_tests.rs"]
mod tests;
