//! Tags: alias resolution, listing, state changes and deletes (spec/LAYOUT.md §3.3,
//! spec/API.md §3.5, §4).

use super::aliases::pick_alias;
use super::files::{exists, set_flag, sort_time, stamp_time};
use super::jobs::{JobEntry, job_entry};
use super::layout::Scan;
use super::visibility::Visibility;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{Alias, BranchRef, JobRef, Name, TagRef};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Serialize)]
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
    /// object, which `http/` shapes.
    #[serde(skip)]
    pub jobs: Vec<JobEntry>,
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
            let mut candidates = Vec::new();
            for tag in Repo::list_entities(&bdir)? {
                let t = TagRef {
                    branch: b.clone(),
                    tag,
                };
                if acl.allows(|| t.url()) {
                    let dir = self.tag_dir(&t);
                    candidates.push((sort_time(stamp_time(&dir)), t, dir));
                }
            }
            let tag = pick_alias(candidates, alias, |dir| exists(&dir.join(".stable")))
                .ok_or(StoreError::NotFound)?;
            return Ok(tag);
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

    pub fn tag_info(&self, t: &TagRef, acl: &Visibility) -> Result<TagInfo, StoreError> {
        let scan = Scan::open(&self.tag_dir(t)).map_err(not_found_if_missing)?;
        let mut jobs = Vec::new();
        for name in &scan.entities {
            let j = JobRef {
                tag: t.clone(),
                job: name.clone(),
            };
            if acl.allows(|| j.url()) {
                jobs.push(job_entry(&j, &scan, &format!("{name}/")));
            }
        }
        let text = |name: &str| scan.has(name).then(|| scan.text_at(name)).flatten();
        Ok(TagInfo {
            name: t.tag.to_string(),
            released: scan.has(".released"),
            locked: scan.has(".locked"),
            stable: scan.has(".stable"),
            publish_status: text(".publish-status"),
            description: text(".description"),
            jobs,
        })
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
        self.remove_tree(&tdir)
    }
}
