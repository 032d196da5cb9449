//! Tags: alias resolution, listing, state changes and deletes (spec/LAYOUT.md §3.3,
//! spec/API.md §3.5, §4).

use super::files::{exists, set_flag};
use super::jobs::{JobEntry, job_entry};
use super::layout::Scan;
use super::stamp_cache::{Stamps, Weigh, map_weight, now_ns, text_weight};
use super::visibility::Visibility;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{Alias, BranchRef, JobRef, Name, TagRef};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Clone, Serialize)]
pub struct TagSummary {
    pub name: String,
    pub timestamp: Value,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub publish_status: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TagInfo {
    pub name: String,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub publish_status: Option<String>,
    pub description: Option<String>,
    /// Each job's metadata followed by `locked`, `name`, `released`.
    /// Not serialised with the rest: each entry merges metadata and flags into one
    /// object, which `http/` shapes. Shared with the kept answer while the view shows every
    /// job: a request answered from [`TagInfo::rendered`] copies none of them.
    #[serde(skip)]
    pub jobs: Arc<Vec<JobEntry>>,
    /// The JSON answer of the whole tag (every job, no filter), made once by the HTTP layer
    /// for the answer kept by stamps and shared by every caller who sees all its jobs;
    /// `None` for a view that hides some.
    #[serde(skip)]
    pub rendered: Option<Arc<OnceLock<Bytes>>>,
}

/// Tag state changes from `POST {tag}/`, applied in this order (spec/API.md §3.5).
#[derive(Debug, Default)]
pub struct TagUpdate {
    pub locked: Option<bool>,
    pub stable: Option<bool>,
    pub description: Option<String>,
}

impl Repo {
    /// Resolves a tag segment: an alias (when `alias_ok`) picks among the readable tags by
    /// `.stamp` age (spec/API.md §4); any other name must exist as a directory.
    pub fn resolve_tag(
        &self,
        b: &BranchRef,
        raw: &str,
        alias_ok: bool,
        acl: &Visibility,
    ) -> Result<TagRef, StoreError> {
        let bdir = self.branch_dir(b);
        if let (true, Some(alias)) = (alias_ok, Alias::parse(&raw.to_lowercase())) {
            let (allowed, stable) = tag_tests(b, &bdir, acl);
            let tag = self.pick_alias(&bdir, alias, allowed, stable)?;
            return Ok(TagRef {
                branch: b.clone(),
                tag,
            });
        }
        let t = TagRef {
            branch: b.clone(),
            tag: Name::parse(raw).map_err(|_| StoreError::NotFound)?,
        };
        if self.tag_dir(&t).is_dir() {
            Ok(t)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// [`Repo::resolve_tag`] (aliases allowed) from kept answers and a few `stat`s only;
    /// `None` when that is not enough (the caller then resolves on the blocking pool).
    /// A plain name is not checked: the caller's next kept answer is.
    pub fn resolve_tag_kept(
        &self,
        b: &BranchRef,
        raw: &str,
        acl: &Visibility,
    ) -> Option<Result<TagRef, StoreError>> {
        let tag = match Alias::parse(&raw.to_lowercase()) {
            Some(alias) => {
                let bdir = self.branch_dir(b);
                let (allowed, stable) = tag_tests(b, &bdir, acl);
                match self.pick_alias_kept(&bdir, alias, allowed, stable)? {
                    Ok(tag) => tag,
                    Err(e) => return Some(Err(e)),
                }
            }
            None => match Name::parse(raw) {
                Ok(tag) => tag,
                Err(_) => return Some(Err(StoreError::NotFound)),
            },
        };
        Some(Ok(TagRef {
            branch: b.clone(),
            tag,
        }))
    }

    /// [`Repo::tag_info_by_name`] from kept answers only: `None` on a miss.
    pub fn tag_info_kept(
        &self,
        b: &BranchRef,
        raw: &str,
        acl: &Visibility,
    ) -> Option<Result<(TagRef, TagInfo), StoreError>> {
        let t = match self.resolve_tag_kept(b, raw, acl)? {
            Ok(t) => t,
            Err(e) => return Some(Err(e)),
        };
        let all = self.tag_cache.hit(&self.tag_dir(&t))?;
        let info = visible_jobs(&all, &t, acl);
        Some(Ok((t, info)))
    }

    /// A tag's listing by URL segment: resolves an alias, else reads the named tag directly
    /// (its scan is the existence check).
    pub fn tag_info_by_name(
        &self,
        b: &BranchRef,
        raw: &str,
        acl: &Visibility,
    ) -> Result<(TagRef, TagInfo), StoreError> {
        let t = match Alias::parse(&raw.to_lowercase()) {
            Some(_) => self.resolve_tag(b, raw, true, acl)?,
            None => TagRef {
                branch: b.clone(),
                tag: Name::parse(raw).map_err(|_| StoreError::NotFound)?,
            },
        };
        let info = self.tag_info(&t, acl)?;
        Ok((t, info))
    }

    /// A tag's flags, texts and the jobs `acl` lets the caller see (kept by stamps).
    pub fn tag_info(&self, t: &TagRef, acl: &Visibility) -> Result<TagInfo, StoreError> {
        let dir = self.tag_dir(t);
        let all = self.tag_cache.get_or_read(&dir, || read_tag(t, &dir))?;
        Ok(visible_jobs(&all, t, acl))
    }

    pub fn update_tag(&self, t: &TagRef, upd: TagUpdate) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        if !tdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        // The description first: the only part the quota can refuse, and a refused update
        // must leave the flags as they were.
        if let Some(desc) = upd.description {
            let desc = desc.trim();
            let path = tdir.join(".description");
            if desc.is_empty() {
                self.remove_counted(&path)?;
            } else {
                self.write_counted(&path, format!("{desc}\n").as_bytes())?;
            }
        }
        if let Some(locked) = upd.locked {
            set_flag(&tdir.join(".locked"), locked)?;
        }
        if let Some(stable) = upd.stable {
            set_flag(&tdir.join(".stable"), stable)?;
        }
        Ok(())
    }

    pub(super) fn check_tag_deletable(&self, t: &TagRef) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        if exists(&tdir.join(".locked")) {
            return Err(StoreError::bad(format!("Tag {} is locked", t.tag)));
        }
        if exists(&tdir.join(".released")) {
            return Err(StoreError::bad(format!(
                "Tag {} is released, unrelease it first",
                t.tag
            )));
        }
        Ok(())
    }

    pub fn delete_tag(&self, t: &TagRef) -> Result<(), StoreError> {
        if !self.tag_dir(t).is_dir() {
            return Err(StoreError::NotFound);
        }
        self.check_tag_deletable(t)?;
        self.delete_tag_unchecked(t)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    /// Tag cleanup deletes ignore job locks (spec/API.md Q45); the run collects orphans itself.
    pub(crate) fn delete_tag_for_cleanup(&self, t: &TagRef) -> Result<(), StoreError> {
        self.delete_tag_unchecked(t)
    }

    pub(super) fn delete_tag_unchecked(&self, t: &TagRef) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        for job in Repo::list_entities(&tdir)? {
            self.delete_job(&JobRef {
                tag: t.clone(),
                job,
            })?;
        }
        let scope = &t.branch.scope;
        self.remove_tree_then(&tdir, |trash| self.unlink_trashed_jobs(trash, 1, scope))
    }
}

/// Which tags of `b` (in `bdir`) the caller may see, and which are stable.
fn tag_tests<'a>(
    b: &'a BranchRef,
    bdir: &'a Path,
    acl: &'a Visibility,
) -> (impl Fn(&Name) -> bool + 'a, impl Fn(&Name) -> bool + 'a) {
    let allowed = move |tag: &Name| {
        acl.allows(|| {
            TagRef {
                branch: b.clone(),
                tag: tag.clone(),
            }
            .url()
        })
    };
    let stable = move |tag: &Name| exists(&bdir.join(tag).join(".stable"));
    (allowed, stable)
}

/// Everything a tag's answer shows, every job included, and the stamps it was read from:
/// the tag directory's (its flags, texts and jobs) and each job directory's (its
/// metadata and flags).
fn read_tag(t: &TagRef, dir: &Path) -> Result<(TagInfo, Stamps), StoreError> {
    let read_ns = now_ns();
    let scan = Scan::open(dir).map_err(not_found_if_missing)?;
    let mut stamps = Stamps::new(read_ns, scan.stamp);
    let mut jobs = Vec::with_capacity(scan.entities.len());
    for name in &scan.entities {
        stamps.add(name.clone(), scan.stamp_at(name.as_str()));
        let j = JobRef {
            tag: t.clone(),
            job: name.clone(),
        };
        jobs.push(job_entry(&j, &scan, &format!("{name}/")));
    }
    let text = |name: &str| scan.has(name).then(|| scan.text_at(name)).flatten();
    let info = TagInfo {
        name: t.tag.to_string(),
        released: scan.has(".released"),
        locked: scan.has(".locked"),
        stable: scan.has(".stable"),
        publish_status: text(".publish-status"),
        description: text(".description"),
        jobs: Arc::new(jobs),
        rendered: Some(Arc::default()),
    };
    Ok((info, stamps))
}

/// `all` with only the jobs `acl` lets the caller see.
fn visible_jobs(all: &TagInfo, t: &TagRef, acl: &Visibility) -> TagInfo {
    let sees = |e: &JobEntry| {
        acl.allows_named(&e.name, |job| {
            JobRef {
                tag: t.clone(),
                job,
            }
            .url()
        })
    };
    let seen: Vec<bool> = all.jobs.iter().map(sees).collect();
    if seen.iter().all(|&s| s) {
        return TagInfo {
            jobs: Arc::clone(&all.jobs),
            rendered: all.rendered.clone(),
            ..all.clone_without_jobs()
        };
    }
    let jobs = all.jobs.iter().zip(seen).filter(|(_, s)| *s);
    TagInfo {
        jobs: Arc::new(jobs.map(|(e, _)| e.clone()).collect()),
        rendered: None,
        ..all.clone_without_jobs()
    }
}

impl TagInfo {
    fn clone_without_jobs(&self) -> TagInfo {
        TagInfo {
            name: self.name.clone(),
            released: self.released,
            locked: self.locked,
            stable: self.stable,
            publish_status: self.publish_status.clone(),
            description: self.description.clone(),
            jobs: Arc::default(),
            rendered: None,
        }
    }
}

impl Weigh for TagInfo {
    fn weight(&self) -> usize {
        let jobs: usize = self
            .jobs
            .iter()
            .map(|j| 96 + j.name.len() + map_weight(&j.metadata))
            .sum();
        // Once rendered, the JSON takes about as much again.
        2 * (128
            + self.name.len()
            + text_weight(&self.publish_status)
            + text_weight(&self.description)
            + jobs)
    }
}
