//! Reading the tree for the search index: which jobs exist, a signature of each that
//! changes when anything the index holds of it changes, and, for new or changed ones, what
//! the index keeps.
//!
//! The signature hashes the mtimes of the tag directory (its flags), the job directory
//! (its flags, `.metadata` renames, formats added or removed), `.stamp`, `.metadata`, and
//! each format directory (every `.digests` rewrite is a rename into it). A registry push
//! into an existing `container` format may change only deeper directories: this process's
//! pushes re-read their job whatever its signature says (`SearchIndex::search`).

use super::super::Repo;
use super::super::digests::format_digests;
use super::super::layout::Scan;
use crate::model::{BranchRef, JobRef, Name, Scope, TagRef};
use std::hash::{Hash, Hasher};

/// The part of the tree a refresh looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subtree {
    All,
    Branch(BranchRef),
    Tag(TagRef),
    Job(JobRef),
}

impl Subtree {
    /// What the URLs of the jobs inside start with.
    pub fn url_prefix(&self) -> String {
        match self {
            Subtree::All => String::new(),
            Subtree::Branch(b) => b.url(),
            Subtree::Tag(t) => t.url(),
            Subtree::Job(j) => j.url(),
        }
    }
}

/// A job read from disk, its strings not interned yet.
pub(crate) struct RawJob {
    pub job: JobRef,
    pub url: String,
    pub ts: i64,
    pub sig: u64,
    pub locked: bool,
    pub released: bool,
    pub stable: bool,
    pub metadata: Vec<(String, String)>,
    /// `(format, [(path, digest)])`, in result order.
    pub formats: Vec<(String, Vec<(String, String)>)>,
}

/// What a walk saw: each job's URL and whether it was read again.
pub(crate) trait Visit {
    /// The signature the index holds for `url`.
    fn known(&self, url: &str) -> Option<u64>;
    fn seen(&mut self, url: String);
    fn changed(&mut self, job: RawJob);
}

struct TagFacts {
    sig: i64,
    locked: bool,
    released: bool,
    stable: bool,
}

impl Repo {
    /// Walks `sub`, reporting every job to `visit` and reading the ones whose signature
    /// differs from what the index holds. Unreadable directories count as empty.
    pub(crate) fn search_walk(&self, sub: &Subtree, visit: &mut dyn Visit) {
        match sub {
            Subtree::All => {
                let mut scopes = vec![Scope::Root];
                let users = Repo::list_entities(&self.scope_dir(&Scope::Root).join("users"));
                scopes.extend(users.unwrap_or_default().into_iter().map(Scope::User));
                for scope in scopes {
                    let dir = self.branches_dir(&scope);
                    for branch in Repo::list_entities(&dir).unwrap_or_default() {
                        self.walk_branch(
                            &BranchRef {
                                scope: scope.clone(),
                                branch,
                            },
                            visit,
                        );
                    }
                }
            }
            Subtree::Branch(b) => self.walk_branch(b, visit),
            Subtree::Tag(t) => self.walk_tag(t, None, visit),
            Subtree::Job(j) => {
                let Ok(tag) = Scan::open(&self.tag_dir(&j.tag)) else {
                    return;
                };
                let facts = self.tag_facts(&j.tag, &tag);
                if tag.entities.contains(&j.job) {
                    self.walk_job(j, &facts, &tag, visit);
                }
            }
        }
    }

    fn walk_branch(&self, b: &BranchRef, visit: &mut dyn Visit) {
        let Ok(scan) = Scan::open(&self.branch_dir(b)) else {
            return;
        };
        for tag in &scan.entities {
            let t = TagRef {
                branch: b.clone(),
                tag: tag.clone(),
            };
            self.walk_tag(&t, Some(&scan), visit);
        }
    }

    fn tag_facts(&self, t: &TagRef, tag: &Scan) -> TagFacts {
        let sig = Scan::open(&self.branch_dir(&t.branch))
            .ok()
            .and_then(|b| b.mtime_ns_at(t.tag.as_str()))
            .unwrap_or(0);
        TagFacts {
            sig,
            locked: tag.has(".locked"),
            released: tag.has(".released"),
            stable: tag.has(".stable"),
        }
    }

    fn walk_tag(&self, t: &TagRef, branch: Option<&Scan>, visit: &mut dyn Visit) {
        let Ok(tag) = Scan::open(&self.tag_dir(t)) else {
            return;
        };
        let facts = match branch {
            Some(b) => TagFacts {
                sig: b.mtime_ns_at(t.tag.as_str()).unwrap_or(0),
                locked: tag.has(".locked"),
                released: tag.has(".released"),
                stable: tag.has(".stable"),
            },
            None => self.tag_facts(t, &tag),
        };
        for job in &tag.entities {
            let j = JobRef {
                tag: t.clone(),
                job: job.clone(),
            };
            self.walk_job(&j, &facts, &tag, visit);
        }
    }

    fn walk_job(&self, j: &JobRef, tag: &TagFacts, tag_scan: &Scan, visit: &mut dyn Visit) {
        let Ok(scan) = Scan::open(&self.job_dir(j)) else {
            return;
        };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (tag.sig, tag_scan.mtime_ns_at(j.job.as_str())).hash(&mut h);
        (scan.mtime_ns_at(".stamp"), scan.mtime_ns_at(".metadata")).hash(&mut h);
        for f in &scan.entities {
            (f.as_str(), scan.mtime_ns_at(f.as_str())).hash(&mut h);
        }
        let sig = h.finish();
        let url = j.url();
        if visit.known(&url) == Some(sig) {
            visit.seen(url);
            return;
        }
        let job = self.read_job(j, &scan, tag, url.clone(), sig);
        visit.seen(url);
        visit.changed(job);
    }

    fn read_job(&self, j: &JobRef, scan: &Scan, tag: &TagFacts, url: String, sig: u64) -> RawJob {
        let metadata = scan
            .read_at(".metadata")
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| match v {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default();
        let mut metadata: Vec<(String, String)> = metadata
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => (k, s.to_lowercase()),
                other => (k, other.to_string().to_lowercase()),
            })
            .collect();
        metadata.sort();
        let jdir = self.job_dir(j);
        let mut names: Vec<&Name> = scan.entities.iter().collect();
        names.sort_by_key(|n| format!("{n}/"));
        let formats = names
            .into_iter()
            .map(|f| {
                let files = format_digests(&jdir.join(f.as_str()))
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_ascii_lowercase()))
                    .collect();
                (f.to_string(), files)
            })
            .collect();
        RawJob {
            job: j.clone(),
            url,
            ts: scan.mtime_ns_at(".stamp").unwrap_or(0),
            sig,
            locked: scan.has(".locked") || tag.locked,
            released: scan.has(".released") || tag.released,
            stable: tag.stable,
            metadata,
            formats,
        }
    }

    /// The size of a file of a job's format, for the results shown (not indexed).
    pub(crate) fn search_file_size(&self, j: &JobRef, format: &str, rel: &str) -> Option<u64> {
        std::fs::metadata(self.job_dir(j).join(format).join(rel))
            .ok()
            .map(|m| m.len())
    }
}
