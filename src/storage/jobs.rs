//! Jobs: listing, creation, flags, locking with its digest, metadata and delete
//! (spec/LAYOUT.md §3.4, spec/API.md §3.6).

use super::files::{
    At, DirLock, create_dirs, create_flag, exists, remove_flag, set_flag, timestamp_json,
};
use super::layout::Scan;
use super::page_info::FormatSummary;
use super::stamp_cache::{Stamps, Weigh, map_weight, now_ns};
use super::visibility::Visibility;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{BranchRef, FormatRef, JobRef, Name};
use crate::pyjson;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// A job as its tag lists it (spec/API.md §3.5).
#[derive(Debug, Clone, Default)]
pub struct JobEntry {
    pub name: String,
    /// `.metadata`, keys sorted; empty when missing or not an object.
    pub metadata: Map<String, Value>,
    pub locked: bool,
    pub released: bool,
}

/// A job as GET shows it (spec/API.md §3.6).
#[derive(Debug, Clone, Default)]
pub struct JobInfo {
    pub entry: JobEntry,
    pub internal: bool,
    /// The `.stamp` time, or the integer 0 when there is none (spec/API.md Q39).
    pub timestamp: Value,
    /// `.digest`: empty until the job is locked.
    pub digest: String,
    /// The formats the caller may read, in name order.
    pub formats: Vec<String>,
    /// The JSON answer of the whole job (every format), made once by the HTTP layer for the
    /// answer kept by stamps and shared by every caller who sees all its formats; `None`
    /// for a view that hides some (as [`super::TagInfo::rendered`]).
    pub rendered: Option<Arc<OnceLock<Bytes>>>,
}

/// The job of a read URL, resolved, and what its JSON answer or its page shows.
pub struct JobView {
    pub job: JobRef,
    /// The kept answer itself when the caller sees every format.
    pub info: Arc<JobInfo>,
    /// What each listed format holds; filled for the page only.
    pub formats: Vec<FormatSummary>,
}

/// Job flags from `PUT {job}/`, applied in this order (spec/API.md §3.6).
#[derive(Debug, Default)]
pub struct JobUpdate {
    pub internal: Option<bool>,
    /// `Some(false)` is the v0.30 unlock spelling (spec/API.md §8).
    pub locked: Option<bool>,
}

impl Repo {
    pub fn job_exists(&self, j: &JobRef) -> bool {
        self.job_dir(j).is_dir()
    }

    /// A job's answer, with the formats `acl` lets the caller see (kept by stamps,
    /// `stamp_cache.rs`: everything it shows is in the job directory).
    pub fn job_info(&self, j: &JobRef, acl: &Visibility) -> Result<Arc<JobInfo>, StoreError> {
        let jdir = self.job_dir(j);
        let all = self.job_cache.get_or_read(&jdir, || read_job(j, &jdir))?;
        Ok(visible_formats(all, j, acl))
    }

    /// The JSON view of `GET {job}/` from kept answers and a few `stat`s only; `None` when
    /// that is not enough (the caller then uses [`Repo::job_view`] on the blocking pool).
    pub fn job_view_kept(
        &self,
        b: &BranchRef,
        tag: &str,
        job: Name,
        acl: &Visibility,
    ) -> Option<Result<JobView, StoreError>> {
        let t = match self.resolve_tag_kept(b, tag, acl)? {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let j = JobRef { tag: t, job };
        let all = self.job_cache.hit(&self.job_dir(&j))?;
        let info = visible_formats(all, &j, acl);
        Some(Ok(JobView {
            job: j,
            info,
            formats: Vec::new(),
        }))
    }

    /// `GET {job}/`: resolves the tag segment (aliases included), then reads the job; the
    /// page also says what each format holds.
    pub fn job_view(
        &self,
        b: &BranchRef,
        tag: &str,
        job: Name,
        acl: &Visibility,
        for_page: bool,
    ) -> Result<JobView, StoreError> {
        let t = self.resolve_tag(b, tag, true, acl)?;
        let j = JobRef { tag: t, job };
        let info = self.job_info(&j, acl)?;
        let formats = match for_page {
            true => self.format_summaries(&j, &info.formats),
            false => Vec::new(),
        };
        Ok(JobView {
            job: j,
            info,
            formats,
        })
    }

    /// `PUT {job}/`: the internal flag, then locking or unlocking.
    pub fn update_job(
        &self,
        j: &JobRef,
        upd: JobUpdate,
        may_link: &Visibility,
    ) -> Result<(), StoreError> {
        if let Some(internal) = upd.internal {
            self.set_job_internal(j, internal)?;
        }
        match upd.locked {
            Some(true) => self.lock_job(j, may_link),
            Some(false) => self.unlock_job(j),
            None => Ok(()),
        }
    }

    /// Creates branch, tag and job dirs as needed, with the tag and job `.stamp`s.
    pub(crate) fn ensure_job(&self, j: &JobRef) -> Result<PathBuf, StoreError> {
        let tdir = self.tag_dir(&j.tag);
        let jdir = tdir.join(&j.job);
        let make = || -> std::io::Result<()> {
            create_dirs(&jdir)?;
            for stamp in [tdir.join(".stamp"), jdir.join(".stamp")] {
                create_flag(&stamp)?;
            }
            Ok(())
        };
        // A delete of the tag or branch (in this process or another) may take directories
        // away between two of these steps: they are made again, as a write that finds its
        // parents missing makes them (spec/API.md §3.9), instead of failing with a 500.
        let mut attempt = 0;
        loop {
            match make() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
                other => return other.at("create", &jdir).map(|()| jdir),
            }
        }
    }

    pub fn set_job_internal(&self, j: &JobRef, internal: bool) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let _lock = DirLock::acquire(&self.locks_dir(), &jdir)?;
        if exists(&jdir.join(".locked")) {
            return Err(StoreError::bad("Job is locked"));
        }
        set_flag(&jdir.join(".internal"), internal)?;
        Ok(())
    }

    /// Locks a job: refreshes its product links, computes `.digest` and creates `.locked`
    /// (spec/API.md §3.6, spec/LAYOUT.md §3.4). Locking a locked job does nothing.
    /// `may_link` says which product versions the caller may link the job into (Q50).
    pub fn lock_job(&self, j: &JobRef, may_link: &Visibility) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let _lock = DirLock::acquire(&self.locks_dir(), &jdir)?;
        if exists(&jdir.join(".locked")) {
            return Ok(());
        }
        for f in Repo::list_entities(&jdir)? {
            if exists(&jdir.join(&f).join(".dirty")) {
                return Err(StoreError::bad("Job has dirty formats"));
            }
        }
        self.add_metadata_locked(j, &Map::new(), may_link)?;
        self.settle_formats(&jdir)?;
        let digest = self.job_digest(&jdir)?;
        self.write_counted(&jdir.join(".digest"), digest.as_bytes())?;
        create_flag(&jdir.join(".locked"))?;
        Ok(())
    }

    fn job_digest(&self, jdir: &Path) -> Result<String, StoreError> {
        use sha2::{Digest as _, Sha256};
        let mut d = Map::new();
        for f in Repo::list_entities(jdir)? {
            if self.is_internal_format(f.as_str()) {
                continue;
            }
            let fdir = jdir.join(&f);
            let value = if f.as_str() == "container" {
                container_manifest_digest(&fdir).ok_or(StoreError::NotFound)?
            } else {
                let bytes = super::files::retry_stale(|| fs::read(fdir.join(".digests")))
                    .map_err(not_found_if_missing)?;
                format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
            };
            d.insert(f.to_string(), value.into());
        }
        let meta = super::files::retry_stale(|| fs::read(jdir.join(".metadata")))
            .map_err(not_found_if_missing)?;
        d.insert(
            ".metadata".into(),
            format!("sha256:{}", hex::encode(Sha256::digest(&meta))).into(),
        );
        let text = pyjson::to_string_sorted(&Value::Object(d));
        Ok(hex::encode(Sha256::digest(text.as_bytes())))
    }

    pub fn unlock_job(&self, j: &JobRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        remove_flag(&jdir.join(".locked"))?;
        Ok(())
    }

    /// Metadata PATCH: creates the job when missing (spec/API.md Q15).
    pub fn patch_metadata(
        &self,
        j: &JobRef,
        new: &Map<String, Value>,
        may_link: &Visibility,
    ) -> Result<(), StoreError> {
        // Checked again under the lock; this first check keeps a refusal from creating
        // the job.
        self.check_product_access(j, new, may_link)?;
        let jdir = self.ensure_job(j)?;
        let _lock = DirLock::acquire(&self.locks_dir(), &jdir)?;
        self.add_metadata_locked(j, new, may_link)
    }

    pub fn delete_job(&self, j: &JobRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        // Exclusive with upload commits (they hold it shared): one that is linking a file
        // finishes first, one that waits finds the job gone (404), and none answers 201
        // for a file that went away with the job.
        let _job = DirLock::acquire(&self.locks_dir(), &jdir)?;
        self.cleanup_product_tree(j)?;
        self.remove_tree(&jdir)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }
}

/// Everything a job's answer shows, every format included, and the stamp of the job
/// directory it was read from.
fn read_job(j: &JobRef, jdir: &Path) -> Result<(JobInfo, Stamps), StoreError> {
    let read_ns = now_ns();
    let scan = Scan::open(jdir).map_err(not_found_if_missing)?;
    let stamps = Stamps::new(read_ns, scan.stamp);
    let stamp = scan
        .has(".stamp")
        .then(|| scan.mtime_at(".stamp"))
        .flatten();
    let digest = scan.read_at(".digest").unwrap_or_default();
    let info = JobInfo {
        entry: job_entry(j, &scan, ""),
        internal: scan.has(".internal"),
        timestamp: timestamp_json(stamp),
        digest: String::from_utf8_lossy(&digest).into_owned(),
        formats: scan.entities.iter().map(|f| f.to_string()).collect(),
        rendered: Some(Arc::default()),
    };
    Ok((info, stamps))
}

/// `all` with only the formats `acl` lets the caller see: `all` itself when that is every
/// one of them.
fn visible_formats(all: Arc<JobInfo>, j: &JobRef, acl: &Visibility) -> Arc<JobInfo> {
    let sees = |f: &String| {
        acl.allows_named(f, |format| {
            FormatRef::Job {
                job: j.clone(),
                format,
            }
            .url()
        })
    };
    let seen: Vec<bool> = all.formats.iter().map(sees).collect();
    if seen.iter().all(|&s| s) {
        return all;
    }
    let formats = all.formats.iter().zip(seen).filter(|(_, s)| *s);
    Arc::new(JobInfo {
        entry: all.entry.clone(),
        internal: all.internal,
        timestamp: all.timestamp.clone(),
        digest: all.digest.clone(),
        formats: formats.map(|(f, _)| f.clone()).collect(),
        rendered: None,
    })
}

impl Weigh for JobInfo {
    fn weight(&self) -> usize {
        let formats: usize = self.formats.iter().map(|f| 24 + f.len()).sum();
        let fields = self.entry.name.len() + map_weight(&self.entry.metadata) + self.digest.len();
        // Once rendered, the JSON takes about as much again.
        2 * (256 + fields + formats)
    }
}

/// A job as its tag lists it. `prefix` locates the job in `dir`.
pub(super) fn job_entry(j: &JobRef, dir: &Scan, prefix: &str) -> JobEntry {
    let mut metadata = dir
        .read_at(&format!("{prefix}.metadata"))
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    metadata.sort_keys();
    let flag = |name: &str| dir.exists_at(&format!("{prefix}{name}"));
    JobEntry {
        name: j.job.to_string(),
        metadata,
        locked: flag(".locked"),
        released: flag(".released"),
    }
}

/// `{algo}:{hex}` of the first manifest under `container/manifests/*/*/*`.
fn container_manifest_digest(fdir: &Path) -> Option<String> {
    super::registry::container_layout::top_manifest(fdir).map(|(_, digest)| digest)
}

#[cfg(test)]
#[path = "entity_tests.rs"]
mod tests;
