//! Running a [`Query`] over the [`Index`]: the query's digest, globs, words and metadata
//! filters are turned into sets of candidate jobs (from the postings of the interned
//! strings they match, matched once and kept, see `matched.rs`), intersected; only the
//! candidates are checked, in result order, and the entities of a matching job come in
//! their order (the job, then each format followed by its files). Product versions are
//! checked in their own order and merged in. Each result is checked against what the
//! caller may read before it counts (and before it is built); a job in a branch or tag the
//! caller cannot read anything in is passed over without looking at it.

use super::access::{Access, Subtrees, Work};
use super::index::{Bits, FormatRec, Index, JobRec};
use super::matched::{Matched, Pattern, Table};
use super::query::{Glob, Kind, Query};
use super::versions::VersionRec;
use crate::model::{JobRef, PRODUCT_KEYS, Scope};
use std::cmp::{Ordering, Reverse};
use std::collections::HashMap;
use std::sync::Arc;

/// Candidate jobs few enough that checking the versions of each beats walking the
/// versions in their order.
const FEW_CANDIDATES: usize = 20_000;

/// Interned string id → slots of the jobs holding it.
type Postings = HashMap<u32, Vec<u32>>;

/// Where a result sits in result order; the cursor of the next page is the last one's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub ts: Reverse<i64>,
    /// The job's URL, or the product version's.
    pub job: String,
    /// `""` for the job, `{format}/` for a format, `{format}/{path}` for a file.
    pub sub: String,
}

/// One result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub kind: Kind,
    /// Canonical URL path, not percent-encoded.
    pub url: String,
    /// The job it is or belongs to; `None` for a product version.
    pub job: Option<JobRef>,
    pub format: Option<String>,
    /// The file's path below its format.
    pub path: Option<String>,
    /// A file's digest, or an image's manifest digest.
    pub digest: Option<String>,
    /// Filled in after the search, for files.
    pub size: Option<u64>,
    /// The job's `.stamp` time (a product version's own), nanoseconds.
    pub ts: i64,
    pub locked: bool,
    pub released: bool,
    /// For product versions: whether the tag of one of its jobs is stable.
    pub stable: Option<bool>,
    pub metadata: Vec<(String, String)>,
    /// The product version the job's metadata names, when the caller may read it.
    pub version: Option<String>,
    /// `[u/{user}/]{branch}/{job}:{tag}`, for images and the files in them.
    pub image: Option<String>,
    /// For product versions: the URLs of the jobs linked into it the caller may read.
    pub jobs: Vec<String>,
    pub key: SortKey,
}

/// What one query looks for, computed once before the jobs are scanned.
struct Plan<'a> {
    q: &'a Query,
    /// Per word, the file names and the fields holding it.
    words: Vec<(Arc<Matched>, Arc<Matched>)>,
    name_ok: Option<Arc<Matched>>,
    digest: Option<u32>,
    /// Per metadata filter (in the order of `q.metadata`), the fields it matches.
    meta: Vec<Arc<Matched>>,
    /// The fields the `branch:`, `tag:`, `job:` and `format:` globs match.
    names: Vec<Arc<Matched>>,
}

/// Results after `after`, at most `limit + 1` (the extra one says there is a next page),
/// and what it took to find them.
pub(crate) fn run(
    idx: &Index,
    q: &Query,
    access: &Access,
    after: Option<&SortKey>,
    limit: usize,
) -> (Vec<Hit>, Work) {
    let mut out = Vec::new();
    let mut work = Work::default();
    let Some(plan) = Plan::new(idx, q) else {
        return (out, work);
    };
    let mut subtrees = Subtrees::new(access);
    let candidates = plan.candidates(idx);
    let start = after.map_or(0, |c| {
        idx.order.partition_point(|s| {
            idx.job(*s)
                .is_some_and(|j| j.key() < (c.ts, c.job.as_str()))
        })
    });
    let mut p = start;
    while p < idx.order.len() && out.len() <= limit {
        if let Some(c) = &candidates {
            match c.next_from(p) {
                Some(n) => p = n,
                None => break,
            }
        }
        if let Some(job) = idx.order.get(p).and_then(|s| idx.job(*s)) {
            work.jobs += 1;
            // Its branch and tag first: where the caller can read nothing, nothing of the
            // job is looked at, whatever it holds.
            if subtrees.may_show(&job.url) {
                plan.job(idx, job, access, after, &mut out, &mut work);
            }
        }
        p += 1;
    }
    let versions = plan.versions(idx, candidates.as_ref(), access, after, limit);
    if versions.is_empty() {
        return (out, work);
    }
    let mut all: Vec<Hit> = out.into_iter().chain(versions).collect();
    all.sort_by(|a, b| a.key.cmp(&b.key));
    all.truncate(limit + 1);
    (all, work)
}

/// Whether the entity `sub` of job `j` (its parts joined: nothing for the job, the format
/// and `/`, then the file's path) sorts after the cursor `after`.
fn after_cursor(j: &JobRec, sub: &[&str], after: Option<&SortKey>) -> bool {
    let Some(c) = after else {
        return true;
    };
    match (Reverse(j.ts), j.url.as_str()).cmp(&(c.ts, c.job.as_str())) {
        Ordering::Greater => true,
        Ordering::Less => false,
        Ordering::Equal => {
            sub.iter().flat_map(|s| s.bytes()).cmp(c.sub.bytes()) == Ordering::Greater
        }
    }
}

impl<'a> Plan<'a> {
    /// `None` when nothing can match (a digest the tree does not hold).
    fn new(idx: &Index, q: &'a Query) -> Option<Plan<'a>> {
        let digest = match &q.digest {
            Some(d) => Some(idx.digests.get(d)?),
            None => None,
        };
        let files = q.kind.is_none_or(|k| k == Kind::File);
        let words = q
            .words
            .iter()
            .map(|w| {
                let pat = || Pattern::word(w);
                let names = if files {
                    idx.matches.get(Table::Names, &idx.names, pat())
                } else {
                    Arc::default()
                };
                (names, idx.matches.get(Table::Fields, &idx.fields, pat()))
            })
            .collect();
        let glob = |table: Table, g: &Glob| {
            let strs = match table {
                Table::Names => &idx.names,
                Table::Fields => &idx.fields,
            };
            idx.matches.get(table, strs, Pattern::glob(g.pattern()))
        };
        let names = [&q.branch, &q.tag, &q.job, &q.format]
            .into_iter()
            .flatten()
            .map(|g| glob(Table::Fields, g))
            .collect();
        Some(Plan {
            q,
            words,
            name_ok: q.name.as_ref().map(|g| glob(Table::Names, g)),
            digest,
            meta: q
                .metadata
                .iter()
                .map(|(_, g)| glob(Table::Fields, g))
                .collect(),
            names,
        })
    }

    /// The places in result order of the jobs that may match, `None` for all: for each
    /// part of the query that the postings know, the jobs holding what it matches.
    fn candidates(&self, idx: &Index) -> Option<Bits> {
        let len = idx.order.len();
        let mut sets: Vec<Bits> = Vec::new();
        if let Some(d) = self.digest {
            let mut set = Bits::new(len);
            set.post(idx, idx.by_digest.get(&d));
            sets.push(set);
        }
        if let Some(ok) = &self.name_ok {
            sets.push(union(idx, &[(&idx.by_name, ok)]));
        }
        for (names, fields) in &self.words {
            sets.push(union(
                idx,
                &[(&idx.by_name, names), (&idx.by_field, fields)],
            ));
        }
        for m in self.meta.iter().chain(&self.names) {
            sets.push(union(idx, &[(&idx.by_field, m)]));
        }
        let mut sets = sets.into_iter();
        let first = sets.next()?;
        Some(sets.fold(first, |mut acc, s| {
            acc.and(&s);
            acc
        }))
    }

    fn job_passes(&self, j: &JobRec) -> bool {
        let q = self.q;
        let glob =
            |g: &Option<super::query::Glob>, s: &str| g.as_ref().is_none_or(|g| g.matches(s));
        let flag = |f: Option<bool>, v: bool| f.is_none_or(|f| f == v);
        glob(&q.branch, j.job.tag.branch.branch.as_str())
            && glob(&q.tag, j.job.tag.tag.as_str())
            && glob(&q.job, j.job.job.as_str())
            && flag(q.locked, j.locked)
            && flag(q.released, j.released)
            && flag(q.stable, j.stable)
            && q.after.is_none_or(|t| j.ts >= t)
            && q.before.is_none_or(|t| j.ts < t)
            && q.metadata.iter().all(|(k, g)| {
                j.metadata
                    .iter()
                    .any(|(mk, mv)| mk.eq_ignore_ascii_case(k) && g.matches(mv))
            })
    }

    /// Indexes of the words the job's own names and metadata values do not hold (names
    /// are lower-case, and the walk lower-cases metadata values).
    fn unmatched(&self, j: &JobRec) -> Vec<usize> {
        let t = &j.job.tag;
        let mut fields: Vec<&str> =
            vec![t.branch.branch.as_str(), t.tag.as_str(), j.job.job.as_str()];
        if let Scope::User(u) = &t.branch.scope {
            fields.push(u.as_str());
        }
        fields.extend(j.metadata.iter().map(|(_, v)| v.as_str()));
        (0..self.q.words.len())
            .filter(|&i| {
                let w = &self.q.words[i];
                !fields.iter().any(|f| f.contains(w.as_str()))
            })
            .collect()
    }

    fn file_ok(&self, name: u32, digest: u32, words: &[usize]) -> bool {
        self.name_ok.as_ref().is_none_or(|m| m.has(name))
            && self.digest.is_none_or(|d| d == digest)
            && words
                .iter()
                .all(|&i| self.words.get(i).is_some_and(|(m, _)| m.has(name)))
    }

    fn job(
        &self,
        idx: &Index,
        j: &JobRec,
        access: &Access,
        after: Option<&SortKey>,
        out: &mut Vec<Hit>,
        work: &mut Work,
    ) {
        if !self.job_passes(j) || !access.may_read_under(&j.url) {
            return;
        }
        work.opened += 1;
        let q = self.q;
        let unmatched = self.unmatched(j);
        let files_wanted = q.wants_files() || q.kind == Some(Kind::File);
        // Whether the entity `sub` of the job is a result: after the cursor, and readable
        // at its URL (built in `url`, and only then).
        let mut url = String::new();
        let mut shows = |sub: &[&str], work: &mut Work| {
            if !after_cursor(j, sub, after) {
                return false;
            }
            url.clear();
            url.push_str(&j.url);
            sub.iter().for_each(|s| url.push_str(s));
            work.urls += 1;
            access.reads(&url)
        };
        let job_kind = q.kind.is_none_or(|k| k == Kind::Job);
        if !files_wanted && q.format.is_none() && unmatched.is_empty() && job_kind {
            if shows(&[], work) {
                out.push(job_hit(j, access));
            }
            return;
        }
        if matches!(q.kind, Some(Kind::Job | Kind::Product)) {
            return;
        }
        for f in &j.formats {
            work.entries += 1;
            if q.format.as_ref().is_some_and(|g| !g.matches(&f.name)) {
                continue;
            }
            let rest: Vec<usize> = unmatched
                .iter()
                .copied()
                .filter(|&i| !f.name.contains(q.words[i].as_str()))
                .collect();
            let image = f.name == "container";
            let fmt_kind = if image { Kind::Image } else { Kind::Format };
            if rest.is_empty() && !files_wanted && q.kind.is_none_or(|k| k == fmt_kind) {
                if shows(&[&f.name, "/"], work) {
                    out.push(format_hit(idx, j, f, image));
                }
                continue;
            }
            if !(files_wanted || q.kind.is_none()) {
                continue;
            }
            for file in &f.files {
                work.entries += 1;
                let rel = idx.names.str(file.name);
                if self.file_ok(file.name, file.digest, &rest) && shows(&[&f.name, "/", rel], work)
                {
                    let mut hit = format_hit(idx, j, f, image);
                    hit.kind = Kind::File;
                    hit.url.push_str(rel);
                    hit.key.sub.push_str(rel);
                    hit.path = Some(rel.to_owned());
                    hit.digest = Some(idx.digests.str(file.digest).to_owned());
                    out.push(hit);
                }
            }
        }
    }

    /// Whether product versions can be results: nothing in the query is about what only
    /// jobs, formats or files have.
    fn versions_possible(&self) -> bool {
        let q = self.q;
        q.kind.is_none_or(|k| k == Kind::Product)
            && !q.wants_files()
            && [&q.branch, &q.tag, &q.job, &q.format]
                .iter()
                .all(|g| g.is_none())
            && q.metadata
                .iter()
                .all(|(k, _)| PRODUCT_KEYS.contains(&k.as_str()))
    }

    fn version_passes(&self, idx: &Index, v: &VersionRec) -> bool {
        let q = self.q;
        let any =
            |f: &dyn Fn(&JobRec) -> bool| v.jobs.iter().any(|(s, _)| idx.job(*s).is_some_and(f));
        let flag =
            |want: Option<bool>, f: &dyn Fn(&JobRec) -> bool| want.is_none_or(|w| any(f) == w);
        self.words
            .iter()
            .all(|(_, fields)| v.fields.iter().any(|f| fields.has(*f)))
            && q.metadata.iter().zip(&self.meta).all(|((k, _), m)| {
                PRODUCT_KEYS
                    .iter()
                    .position(|p| p == k)
                    .and_then(|i| v.fields.get(i))
                    .is_some_and(|f| m.has(*f))
            })
            && q.after.is_none_or(|t| v.ts >= t)
            && q.before.is_none_or(|t| v.ts < t)
            && flag(q.locked, &|j| j.tag_locked)
            && flag(q.released, &|j| j.released)
            && flag(q.stable, &|j| j.stable)
    }

    /// The product versions that match, after `after`, at most `limit + 1`. A version's
    /// fields are also its jobs' (metadata values, user), so when the candidate jobs are
    /// few, only their versions are checked; else the versions in their order.
    fn versions(
        &self,
        idx: &Index,
        candidates: Option<&Bits>,
        access: &Access,
        after: Option<&SortKey>,
        limit: usize,
    ) -> Vec<Hit> {
        let mut out = Vec::new();
        let nothing = |m: &Arc<Matched>| m.is_empty();
        if !self.versions_possible()
            || self.words.iter().any(|(_, f)| nothing(f))
            || self.meta.iter().any(nothing)
        {
            return out;
        }
        let hit = |v: &VersionRec| {
            let key = (Reverse(v.ts), v.url.as_str());
            let after_cursor = after.is_none_or(|c| key > (c.ts, c.job.as_str()));
            (after_cursor && access.reads(&v.url) && self.version_passes(idx, v))
                .then(|| version_hit(idx, v, access))
        };
        match candidates.filter(|c| c.count() <= FEW_CANDIDATES) {
            Some(c) => {
                let mut urls: Vec<&str> = Vec::new();
                let mut p = 0;
                while let Some(n) = c.next_from(p) {
                    let job = idx.order.get(n).and_then(|s| idx.job(*s));
                    if let Some(pr) = job.and_then(|j| j.product.as_ref()) {
                        urls.push(&pr.url);
                    }
                    p = n + 1;
                }
                urls.sort_unstable();
                urls.dedup();
                out.extend(
                    urls.into_iter()
                        .filter_map(|u| idx.versions.get(u))
                        .filter_map(hit),
                );
                out.sort_by(|a, b| a.key.cmp(&b.key));
                out.truncate(limit + 1);
            }
            None => {
                let from = after.map_or((Reverse(i64::MAX), String::new()), |c| {
                    (c.ts, c.job.clone())
                });
                for v in idx.versions.order.range(from..).map(|(_, v)| v) {
                    out.extend(hit(v));
                    if out.len() > limit {
                        break;
                    }
                }
            }
        }
        out
    }
}

/// The places in result order of the jobs holding an id each [`Matched`] holds, in the
/// postings paired with it.
fn union(idx: &Index, parts: &[(&Postings, &Arc<Matched>)]) -> Bits {
    let mut set = Bits::new(idx.order.len());
    for (postings, m) in parts {
        for id in m.ids() {
            set.post(idx, postings.get(&id));
        }
    }
    set
}

fn job_hit(j: &JobRec, access: &Access) -> Hit {
    let version = j
        .product
        .as_ref()
        .map(|p| p.url.clone())
        .filter(|url| access.reads(url));
    Hit {
        kind: Kind::Job,
        url: j.url.clone(),
        job: Some(j.job.clone()),
        format: None,
        path: None,
        digest: None,
        size: None,
        ts: j.ts,
        locked: j.locked,
        released: j.released,
        stable: None,
        metadata: j.metadata.clone(),
        version,
        image: None,
        jobs: Vec::new(),
        key: SortKey {
            ts: Reverse(j.ts),
            job: j.url.clone(),
            sub: String::new(),
        },
    }
}

fn format_hit(idx: &Index, j: &JobRec, f: &FormatRec, image: bool) -> Hit {
    let t = &j.job.tag;
    let reference = image.then(|| {
        let user = match &t.branch.scope {
            Scope::Root => String::new(),
            Scope::User(u) => format!("u/{u}/"),
        };
        format!("{user}{}/{}:{}", t.branch.branch, j.job.job, t.tag)
    });
    // The manifest an image serves by its tag: the first (the only one) under `manifests/`.
    let digest = image
        .then(|| {
            f.files
                .iter()
                .find(|x| idx.names.str(x.name).starts_with("manifests/"))
        })
        .flatten()
        .map(|x| idx.digests.str(x.digest).to_owned());
    Hit {
        kind: if image { Kind::Image } else { Kind::Format },
        url: format!("{}{}/", j.url, f.name),
        job: Some(j.job.clone()),
        format: Some(f.name.clone()),
        path: None,
        digest,
        size: None,
        ts: j.ts,
        locked: j.locked,
        released: j.released,
        stable: None,
        metadata: Vec::new(),
        version: None,
        image: reference,
        jobs: Vec::new(),
        key: SortKey {
            ts: Reverse(j.ts),
            job: j.url.clone(),
            sub: format!("{}/", f.name),
        },
    }
}

fn version_hit(idx: &Index, v: &VersionRec, access: &Access) -> Hit {
    let linked: Vec<&JobRec> = v.jobs.iter().filter_map(|(s, _)| idx.job(*s)).collect();
    let mut jobs: Vec<String> = linked
        .iter()
        .filter(|j| access.reads(&j.url))
        .map(|j| j.url.clone())
        .collect();
    jobs.sort();
    let any = |f: fn(&JobRec) -> bool| linked.iter().any(|j| f(j));
    let metadata = PRODUCT_KEYS
        .iter()
        .zip(&v.fields)
        .map(|(k, f)| ((*k).to_owned(), idx.fields.str(*f).to_owned()))
        .collect();
    Hit {
        kind: Kind::Product,
        url: v.url.clone(),
        job: None,
        format: None,
        path: None,
        digest: None,
        size: None,
        ts: v.ts,
        locked: any(|j| j.tag_locked),
        released: any(|j| j.released),
        stable: Some(any(|j| j.stable)),
        metadata,
        version: None,
        image: None,
        jobs,
        key: SortKey {
            ts: Reverse(v.ts),
            job: v.url.clone(),
            sub: String::new(),
        },
    }
}
