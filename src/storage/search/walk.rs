//! Reading the tree for the search index: which jobs exist, a signature of each that
//! changes when anything the index holds of it changes, and, for new or changed ones, what
//! the index keeps.
//!
//! The signature hashes the mtimes of the tag directory (its flags), the job directory
//! (its flags, `.metadata` renames, `.product` links, formats added, removed or swapped
//! in: a registry push renames a new `container` over the old one), `.stamp`, `.metadata`,
//! and each format directory (every `.digests` rewrite is a rename into it).
//!
//! No stamp above the format sees an upload into an existing format (stamps are created
//! once, and a file added to a format changes only the format's directory), so a walk
//! cannot skip a tag or a job by its own mtime. What it saves: a job whose directory mtime
//! did not change still has the entries it had, so its `.stamp`, `.metadata` and known
//! formats are stat'ed through the tag's handle, without opening and listing the job.
//!
//! Times come from a coarse clock: a write landing in the same tick as the walk's read of
//! a directory can leave its mtime as it was. So a signature is only recorded when every
//! time it hashes had settled (mtime and ctime more than 2 s before the walk's clock, the
//! racy rule of `stamp_cache.rs`); otherwise the job records [`RACY`], which no signature
//! equals, and the next walk reads it again.

use super::super::Repo;
use super::super::digests::format_digests;
use super::super::layout::Scan;
use super::super::stamp_cache::now_ns;
use crate::model::{BranchRef, JobRef, Name, Scope, TagRef, VersionRef};
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
    /// Whether its tag is locked (a product version's own flag, spec/LAYOUT.md §4).
    pub tag_locked: bool,
    pub released: bool,
    pub stable: bool,
    pub metadata: Vec<(String, String)>,
    /// `(format, [(path, digest)])`, in result order.
    pub formats: Vec<(String, Vec<(String, String)>)>,
    /// The job directory's mtime.
    pub dir_ns: i64,
    /// The URL of the product version it is linked into, and that version's `.stamp` time.
    pub product: Option<(String, i64)>,
}

/// What the index holds of a job, for a walk to compare.
pub(crate) struct Known {
    pub sig: u64,
    pub dir_ns: i64,
    /// Its formats, sorted by name.
    pub formats: Vec<String>,
}

/// The signature recorded for a job read while one of its times was too recent to be
/// trusted: no computed signature equals it, so the next walk reads the job again.
pub(crate) const RACY: u64 = 0;

/// What a walk saw: each job's URL and whether it was read again.
pub(crate) trait Visit {
    /// The walk's clock, nanoseconds since the epoch, as file times count.
    fn now_ns(&self) -> i64 {
        now_ns()
    }
    /// What the index holds for `url`.
    fn known(&self, url: &str) -> Option<Known>;
    fn seen(&mut self, url: String);
    fn changed(&mut self, job: RawJob);
}

struct TagFacts {
    sig: i64,
    /// The tag directory changed too recently for its mtime to be trusted.
    racy: bool,
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
                let now = visit.now_ns();
                let Ok(tag) = Scan::open(&self.tag_dir(&j.tag)) else {
                    return;
                };
                let facts = self.tag_facts(&j.tag, &tag, now);
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

    fn tag_facts(&self, t: &TagRef, tag: &Scan, now: i64) -> TagFacts {
        let mut times = Times::new(now);
        let sig = Scan::open(&self.branch_dir(&t.branch))
            .ok()
            .and_then(|b| times.at(&b, t.tag.as_str()))
            .unwrap_or(0);
        TagFacts {
            sig,
            racy: times.racy,
            locked: tag.has(".locked"),
            released: tag.has(".released"),
            stable: tag.has(".stable"),
        }
    }

    fn walk_tag(&self, t: &TagRef, branch: Option<&Scan>, visit: &mut dyn Visit) {
        // Read before anything is stat'ed: a later clock would trust more than it may.
        let now = visit.now_ns();
        let Ok(tag) = Scan::open(&self.tag_dir(t)) else {
            return;
        };
        let facts = match branch {
            Some(b) => {
                let mut times = Times::new(now);
                TagFacts {
                    sig: times.at(b, t.tag.as_str()).unwrap_or(0),
                    racy: times.racy,
                    locked: tag.has(".locked"),
                    released: tag.has(".released"),
                    stable: tag.has(".stable"),
                }
            }
            None => self.tag_facts(t, &tag, now),
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
        let mut times = Times::new(visit.now_ns());
        times.racy = tag.racy;
        let dir_ns = times.at(tag_scan, j.job.as_str());
        let url = j.url();
        // Its entries are those the index holds while the job's directory mtime holds.
        if let (Some(known), Some(ns)) = (visit.known(&url), dir_ns)
            && known.dir_ns == ns
        {
            let mut fast = Times::new(times.now);
            let mut at = |rel: &str| fast.at(tag_scan, &format!("{}/{rel}", j.job));
            let (stamp, meta) = (at(".stamp"), at(".metadata"));
            let formats: Vec<_> = known.formats.iter().map(|f| (f.as_str(), at(f))).collect();
            let sig = signature(tag.sig, dir_ns, stamp, meta, formats.into_iter());
            if sig == known.sig {
                visit.seen(url);
                return;
            }
        }
        let Ok(scan) = Scan::open(&self.job_dir(j)) else {
            return;
        };
        let formats: Vec<_> = scan
            .entities
            .iter()
            .map(|f| (f.as_str(), times.at(&scan, f.as_str())))
            .collect();
        let (stamp, meta) = (times.at(&scan, ".stamp"), times.at(&scan, ".metadata"));
        let hashed = signature(tag.sig, dir_ns, stamp, meta, formats.into_iter());
        // Equal to one recorded when every time had settled: nothing changed since (a
        // change would have set a later time).
        if visit.known(&url).is_some_and(|k| k.sig == hashed) {
            visit.seen(url);
            return;
        }
        // A time too recent to trust: read, but not recorded as read.
        let sig = if times.racy { RACY } else { hashed };
        let mut job = self.read_job(j, &scan, tag, url.clone(), sig);
        job.dir_ns = dir_ns.unwrap_or(0);
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
        let product = scan
            .has(".product")
            .then(|| self.product_of(j, &metadata))
            .flatten();
        RawJob {
            job: j.clone(),
            url,
            dir_ns: 0,
            product,
            ts: scan.mtime_ns_at(".stamp").unwrap_or(0),
            sig,
            locked: scan.has(".locked") || tag.locked,
            tag_locked: tag.locked,
            released: scan.has(".released") || tag.released,
            stable: tag.stable,
            metadata,
            formats,
        }
    }

    /// The product version a linked job's metadata names: its URL and `.stamp` time.
    fn product_of(&self, j: &JobRef, metadata: &[(String, String)]) -> Option<(String, i64)> {
        let name = |k: &str| Name::parse(&metadata.iter().find(|(mk, _)| mk == k)?.1).ok();
        let v = VersionRef::from_fields(&j.tag.branch.scope, name)?;
        let stamp = std::fs::metadata(self.version_dir(&v).join(".stamp"));
        let ts = stamp.ok().and_then(|m| m.modified().ok()).map_or(0, |t| {
            let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
        });
        Some((v.url(), ts))
    }

    /// The size of a file of a job's format, for the results shown (not indexed).
    pub(crate) fn search_file_size(&self, j: &JobRef, format: &str, rel: &str) -> Option<u64> {
        std::fs::metadata(self.job_dir(j).join(format).join(rel))
            .ok()
            .map(|m| m.len())
    }
}

/// The signature of a job: its tag's and its own mtimes, and each format's, by name. Never
/// [`RACY`].
fn signature<'a>(
    tag: i64,
    dir: Option<i64>,
    stamp: Option<i64>,
    metadata: Option<i64>,
    formats: impl Iterator<Item = (&'a str, Option<i64>)>,
) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (tag, dir, stamp, metadata).hash(&mut h);
    for f in formats {
        f.hash(&mut h);
    }
    h.finish().max(RACY + 1)
}

/// The mtimes a signature hashes, taken against the walk's clock.
struct Times {
    now: i64,
    /// One of them changed less than 2 s before `now` (mtime or ctime).
    racy: bool,
}

impl Times {
    fn new(now: i64) -> Times {
        Times { now, racy: false }
    }

    /// The mtime of `rel` below `scan`'s directory (followed), `None` when missing.
    fn at(&mut self, scan: &Scan, rel: &str) -> Option<i64> {
        let stamp = scan.stamp_at(rel)?;
        self.racy |= !stamp.settled(self.now, crate::storage::stamp_cache::RACY_NS);
        Some(stamp.mtime_ns())
    }
}
