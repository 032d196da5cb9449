//! Branches: their listing, cleanup policy and delete (spec/LAYOUT.md §3.2, spec/API.md
//! §3.3–3.4).

use super::files::{DirLock, read_json_map, timestamp_json};
use super::layout::Scan;
use super::parallel::parallel_map;
use super::tags::TagSummary;
use super::visibility::Visibility;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{BranchRef, Name, TagRef};
use crate::pyjson;
use serde::Serialize;
use serde_json::{Map, Value};
use std::path::Path;

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

const POLICY_KEYS: [&str; 2] = ["max_daily_tags", "max_released_tags"];

impl Repo {
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
            let bdir = self.branch_dir(&b);
            let mut s = BranchSummary {
                name: b.branch.to_string(),
                daily_tags: 0,
                released_tags: 0,
                locked_tags: 0,
                stable_tags: 0,
                cleanup_policy: self.cleanup_policy(&bdir),
            };
            for tag in Repo::list_entities(&bdir)? {
                let tag = Scan::read(&bdir.join(&tag))?;
                if tag.has(".released") {
                    s.released_tags += 1;
                } else {
                    s.daily_tags += 1;
                }
                s.locked_tags += u64::from(tag.has(".locked"));
                s.stable_tags += u64::from(tag.has(".stable"));
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

    pub fn branch_info(
        &self,
        b: &BranchRef,
        released_only: bool,
        acl: &Visibility,
    ) -> Result<BranchInfo, StoreError> {
        let bdir = self.branch_dir(b);
        let scan = Scan::open(&bdir).map_err(not_found_if_missing)?;
        let names: Vec<&Name> = scan
            .entities
            .iter()
            .filter(|tag| {
                acl.allows(|| {
                    TagRef {
                        branch: b.clone(),
                        tag: (*tag).clone(),
                    }
                    .url()
                })
            })
            .collect();
        let summarize = |tag: &Name| -> Result<Option<TagSummary>, StoreError> {
            let t = Scan::read(&bdir.join(tag))?;
            let released = t.has(".released");
            if released_only && !released {
                return Ok(None);
            }
            let text = |name: &str| t.has(name).then(|| t.text_at(name)).flatten();
            Ok(Some(TagSummary {
                name: tag.to_string(),
                timestamp: timestamp_json(t.has(".stamp").then(|| t.mtime_at(".stamp")).flatten()),
                released,
                locked: t.has(".locked"),
                stable: t.has(".stable"),
                publish_status: text(".publish-status"),
                description: text(".description"),
            }))
        };
        let tags = parallel_map(&names, |tag| summarize(tag))?
            .into_iter()
            .flatten()
            .collect();
        Ok(BranchInfo {
            name: b.branch.to_string(),
            cleanup_policy: self.cleanup_policy(&bdir),
            tags,
        })
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
        self.remove_tree(&bdir)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }
}
