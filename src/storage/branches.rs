//! Branches: their listing, cleanup policy and delete (spec/LAYOUT.md §3.2, spec/API.md
//! §3.3–3.4).

use super::files::{DirLock, read_json_map, timestamp_json};
use super::layout::Scan;
use super::parallel::parallel_map;
use super::stamp_cache::{Stamp, Stamps, Weigh, json_weight, map_weight, now_ns, text_weight};
use super::tags::TagSummary;
use super::visibility::Visibility;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{BranchRef, Name, TagRef};
use crate::pyjson;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

#[derive(Debug, Serialize)]
pub struct BranchSummary {
    pub name: String,
    pub daily_tags: u64,
    pub released_tags: u64,
    pub locked_tags: u64,
    pub stable_tags: u64,
    #[serde(flatten)]
    pub cleanup_policy: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct BranchInfo {
    pub name: String,
    pub cleanup_policy: Map<String, Value>,
    pub tags: Vec<TagSummary>,
}

/// Every tag of a branch as read, and its answer as `http/` renders it, made at the first
/// request that shows every tag and kept with it.
pub struct BranchAll {
    pub info: BranchInfo,
    pub rendered: OnceLock<bytes::Bytes>,
}

/// What a caller may see of a branch: all of it (the kept answer), or some of its tags.
pub enum BranchView {
    All(Arc<BranchAll>),
    Some(BranchInfo),
}

impl Weigh for BranchAll {
    fn weight(&self) -> usize {
        // The rendered answer, once made: about 150 bytes a tag.
        self.info.weight() + 150 * self.info.tags.len()
    }
}

impl Weigh for BranchInfo {
    fn weight(&self) -> usize {
        let tags: usize = self
            .tags
            .iter()
            .map(|t| {
                64 + t.name.len()
                    + json_weight(&t.timestamp)
                    + text_weight(&t.publish_status)
                    + text_weight(&t.description)
            })
            .sum();
        128 + self.name.len() + map_weight(&self.cleanup_policy) + tags
    }
}

const POLICY_KEYS: [&str; 2] = ["max_daily_tags", "max_released_tags"];

/// The tags of `scan` whose directory still has the stamp it had when `last` read it, and
/// had settled then: their summaries stand, with that stamp.
fn same_tags<'a>(
    scan: &Scan,
    (stamps, all): (&Stamps, &'a BranchAll),
    window: i64,
) -> HashMap<&'a str, (Stamp, &'a TagSummary)> {
    let unchanged = stamps.unchanged(window);
    all.info
        .tags
        .iter()
        .filter_map(|t| {
            let was = *unchanged.get(t.name.as_str())?;
            (scan.stamp_at(&t.name) == Some(was)).then_some((t.name.as_str(), (was, t)))
        })
        .collect()
}

impl Repo {
    /// Every readable branch of `scope` with its tag counts (of all its tags, as dlrepo
    /// counts them), from the branch answers kept by stamps.
    pub fn list_branches(
        &self,
        scope: &crate::model::Scope,
        acl: &Visibility,
    ) -> Result<Vec<BranchSummary>, StoreError> {
        let dir = self.branches_dir(scope);
        let mut out = Vec::new();
        for name in Repo::list_entities(&dir)? {
            let b = BranchRef {
                scope: scope.clone(),
                branch: name,
            };
            if !acl.allows(|| b.url()) {
                continue;
            }
            let all = match self.all_tags(&b) {
                Err(StoreError::NotFound) => continue,
                other => other?,
            };
            let mut s = BranchSummary {
                name: b.branch.to_string(),
                daily_tags: 0,
                released_tags: 0,
                locked_tags: 0,
                stable_tags: 0,
                cleanup_policy: all.info.cleanup_policy.clone(),
            };
            for tag in &all.info.tags {
                if tag.released {
                    s.released_tags += 1;
                } else {
                    s.daily_tags += 1;
                }
                s.locked_tags += u64::from(tag.locked);
                s.stable_tags += u64::from(tag.stable);
            }
            out.push(s);
        }
        Ok(out)
    }

    fn cleanup_policy(&self, branch_dir: &Path) -> Map<String, Value> {
        let mut policy: Map<String, Value> = POLICY_KEYS
            .iter()
            .map(|k| (k.to_string(), 0.into()))
            .collect();
        for (k, v) in read_json_map(&branch_dir.join(".cleanup_policy")) {
            policy.insert(k, v);
        }
        policy
    }

    pub fn branch_exists(&self, b: &BranchRef) -> bool {
        self.branch_dir(b).is_dir()
    }

    /// A branch's policy and the tags the caller may see (the released ones only when
    /// `released_only`): the kept answer itself when that is every tag.
    pub fn branch_view(
        &self,
        b: &BranchRef,
        released_only: bool,
        acl: &Visibility,
    ) -> Result<BranchView, StoreError> {
        let all = self.all_tags(b)?;
        let shown = |t: &&TagSummary| {
            (!released_only || t.released)
                && acl.allows_named(&t.name, |tag| {
                    TagRef {
                        branch: b.clone(),
                        tag,
                    }
                    .url()
                })
        };
        let count = all.info.tags.iter().filter(shown).count();
        if count == all.info.tags.len() {
            return Ok(BranchView::All(all));
        }
        let tags = all.info.tags.iter().filter(shown).cloned().collect();
        Ok(BranchView::Some(BranchInfo {
            name: all.info.name.clone(),
            cleanup_policy: all.info.cleanup_policy.clone(),
            tags,
        }))
    }

    /// [`Repo::branch_view`] as one value (tests, and callers that need no rendering).
    pub fn branch_info(
        &self,
        b: &BranchRef,
        released_only: bool,
        acl: &Visibility,
    ) -> Result<BranchInfo, StoreError> {
        Ok(match self.branch_view(b, released_only, acl)? {
            BranchView::All(all) => BranchInfo {
                name: all.info.name.clone(),
                cleanup_policy: all.info.cleanup_policy.clone(),
                tags: all.info.tags.clone(),
            },
            BranchView::Some(info) => info,
        })
    }

    /// Every tag of a branch, kept by the stamps of the branch and tag directories.
    fn all_tags(&self, b: &BranchRef) -> Result<Arc<BranchAll>, StoreError> {
        let bdir = self.branch_dir(b);
        self.branch_cache.get_or_update(&bdir, |last, window| {
            self.read_branch(b, &bdir, last, window)
        })
    }

    /// Reads the branch's tags; those whose directory has not changed since `last` read
    /// them (and had settled then) are taken from it, so that listing a branch where tags
    /// are being made reads the new ones only.
    fn read_branch(
        &self,
        b: &BranchRef,
        bdir: &Path,
        last: Option<(&Stamps, &BranchAll)>,
        window: i64,
    ) -> Result<(BranchAll, Stamps), StoreError> {
        let read_ns = now_ns();
        let scan = Scan::open(bdir).map_err(not_found_if_missing)?;
        let same = last.map_or_else(HashMap::new, |last| same_tags(&scan, last, window));
        let summarize = |tag: &Name| -> Result<(Option<Stamp>, TagSummary), StoreError> {
            if let Some((stamp, summary)) = same.get(tag.as_str()) {
                return Ok((Some(*stamp), (*summary).clone()));
            }
            let t = Scan::read(&bdir.join(tag))?;
            let text = |name: &str| t.has(name).then(|| t.text_at(name)).flatten();
            let summary = TagSummary {
                name: tag.to_string(),
                timestamp: timestamp_json(t.has(".stamp").then(|| t.mtime_at(".stamp")).flatten()),
                released: t.has(".released"),
                locked: t.has(".locked"),
                stable: t.has(".stable"),
                publish_status: text(".publish-status"),
                description: text(".description"),
            };
            Ok((t.stamp, summary))
        };
        let mut stamps = Stamps::new(read_ns, scan.stamp);
        let mut tags = Vec::with_capacity(scan.entities.len());
        for (name, (stamp, summary)) in scan
            .entities
            .iter()
            .zip(parallel_map(&scan.entities, summarize)?)
        {
            stamps.add(name.clone(), stamp);
            tags.push(summary);
        }
        let info = BranchInfo {
            name: b.branch.to_string(),
            cleanup_policy: self.cleanup_policy(bdir),
            tags,
        };
        let all = BranchAll {
            info,
            rendered: OnceLock::new(),
        };
        Ok((all, stamps))
    }

    /// Updates `.cleanup_policy`; values were validated as integers ≥ 0 by the caller.
    pub fn set_cleanup_policy(
        &self,
        b: &BranchRef,
        updates: Vec<(&'static str, u64)>,
    ) -> Result<(), StoreError> {
        let bdir = self.branch_dir(b);
        if !bdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let _lock = DirLock::acquire(&self.locks_dir(), &bdir)?;
        let mut policy = self.cleanup_policy(&bdir);
        for (k, v) in updates {
            policy.insert(k.to_owned(), v.into());
        }
        // The file holds exactly the two keys in this order (spec/LAYOUT.md §3.2).
        let ordered: Map<String, Value> = POLICY_KEYS
            .iter()
            .map(|k| (k.to_string(), policy.get(*k).cloned().unwrap_or(0.into())))
            .collect();
        let text = pyjson::to_string(&Value::Object(ordered));
        self.write_counted(&bdir.join(".cleanup_policy"), text.as_bytes())
    }

    pub fn delete_branch(&self, b: &BranchRef) -> Result<(), StoreError> {
        let bdir = self.branch_dir(b);
        if !bdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let tags: Vec<TagRef> = Repo::list_entities(&bdir)?
            .into_iter()
            .map(|tag| TagRef {
                branch: b.clone(),
                tag,
            })
            .collect();
        for t in &tags {
            self.check_tag_deletable(t)?;
        }
        for t in &tags {
            self.delete_tag_unchecked(t)?;
        }
        self.remove_tree_then(&bdir, |trash| self.unlink_trashed_jobs(trash, 2, &b.scope))?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }
}
