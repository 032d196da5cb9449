//! Running a [`Query`] over the [`Index`]: jobs in result order (or, for a digest, only
//! the jobs holding it), each tested once, and the entities of a matching job in their
//! order (the job, then each format followed by its files). Each result is checked against
//! what the caller may read before it counts.

use super::index::{Index, JobRec};
use super::query::{Kind, Query};
use crate::model::{JobRef, Scope};
use crate::storage::Visibility;
use std::cmp::Reverse;

/// Where a result sits in result order; the cursor of the next page is the last one's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SortKey {
    pub ts: Reverse<i64>,
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
    pub job: JobRef,
    pub format: Option<String>,
    /// The file's path below its format.
    pub path: Option<String>,
    pub digest: Option<String>,
    /// Filled in after the search, for files.
    pub size: Option<u64>,
    /// The job's `.stamp` time, nanoseconds.
    pub ts: i64,
    pub locked: bool,
    pub released: bool,
    pub metadata: Vec<(String, String)>,
    /// The product version the job's metadata names, when the caller may read it.
    pub version: Option<String>,
    /// `[u/{user}/]{branch}/{job}:{tag}`, for images and the files in them.
    pub image: Option<String>,
    pub key: SortKey,
}

/// What one query looks for, computed once before the jobs are scanned.
struct Plan<'a> {
    q: &'a Query,
    /// Per word, which interned file names contain it (only when files may be results).
    word_names: Vec<Vec<bool>>,
    name_ok: Option<Vec<bool>>,
    digest: Option<u32>,
}

/// Results after `after`, at most `limit + 1` (the extra one says there is a next page).
pub(crate) fn run(
    idx: &Index,
    q: &Query,
    vis: &Visibility,
    after: Option<&SortKey>,
    limit: usize,
) -> Vec<Hit> {
    let mut out = Vec::new();
    let Some(plan) = Plan::new(idx, q) else {
        return out;
    };
    // Only jobs that can match: from the postings of the digest and of the file names a
    // query needs, intersected; each is then checked in full.
    let candidates = plan.candidates(idx);
    let start = after.map_or(0, |c| {
        idx.order.partition_point(|s| {
            idx.job(*s)
                .is_some_and(|j| j.key() < (c.ts, c.job.as_str()))
        })
    });
    for (p, slot) in idx.order.iter().enumerate().skip(start) {
        if candidates.as_ref().is_some_and(|c| !c.has(p)) {
            continue;
        }
        let Some(job) = idx.job(*slot) else { continue };
        plan.job(idx, job, vis, after, &mut out);
        if out.len() > limit {
            break;
        }
    }
    out
}

impl<'a> Plan<'a> {
    /// `None` when nothing can match (a digest the tree does not hold).
    fn new(idx: &Index, q: &'a Query) -> Option<Plan<'a>> {
        let digest = match &q.digest {
            Some(d) => Some(idx.digests.get(d)?),
            None => None,
        };
        let names = &idx.names.strs;
        let word_names = if q.kind == Some(Kind::Job) && !q.wants_files() {
            Vec::new()
        } else {
            q.words
                .iter()
                .map(|w| {
                    names
                        .iter()
                        .map(|(_, low)| low.contains(w.as_str()))
                        .collect()
                })
                .collect()
        };
        let name_ok = q
            .name
            .as_ref()
            .map(|g| names.iter().map(|(n, _)| g.matches(n)).collect());
        Some(Plan {
            q,
            word_names,
            name_ok,
            digest,
        })
    }

    /// The places in result order of the jobs that may match, `None` for all.
    fn candidates(&self, idx: &Index) -> Option<Bits> {
        let mut sets = Vec::new();
        let postings = |set: &mut Bits, list: Option<&Vec<u32>>| {
            for slot in list.into_iter().flatten() {
                if let Some(&p) = idx.pos.get(*slot as usize) {
                    set.set(p as usize);
                }
            }
        };
        let names = |set: &mut Bits, ok: &[bool]| {
            for (name, _) in ok.iter().enumerate().filter(|(_, ok)| **ok) {
                let name = u32::try_from(name).unwrap_or(u32::MAX);
                postings(set, idx.by_name.get(&name));
            }
        };
        if let Some(d) = self.digest {
            let mut set = Bits::new(idx.order.len());
            postings(&mut set, idx.by_digest.get(&d));
            sets.push(set);
        }
        if let Some(ok) = &self.name_ok {
            let mut set = Bits::new(idx.order.len());
            names(&mut set, ok);
            sets.push(set);
        }
        for (i, w) in self.q.words.iter().enumerate() {
            let mut set = Bits::new(idx.order.len());
            names(&mut set, self.word_names.get(i).map_or(&[], Vec::as_slice));
            let fields: Vec<bool> = idx
                .fields
                .strs
                .iter()
                .map(|(_, low)| low.contains(w.as_str()))
                .collect();
            let holds = |j: &JobRec| {
                j.fields
                    .iter()
                    .any(|f| fields.get(*f as usize).copied().unwrap_or(false))
            };
            for (p, slot) in idx.order.iter().enumerate() {
                if !set.has(p) && idx.job(*slot).is_some_and(holds) {
                    set.set(p);
                }
            }
            sets.push(set);
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
        let at = |v: &Vec<bool>| v.get(name as usize).copied().unwrap_or(false);
        self.name_ok.as_ref().is_none_or(at)
            && self.digest.is_none_or(|d| d == digest)
            && words
                .iter()
                .all(|&i| self.word_names.get(i).is_some_and(at))
    }

    fn job(
        &self,
        idx: &Index,
        j: &JobRec,
        vis: &Visibility,
        after: Option<&SortKey>,
        out: &mut Vec<Hit>,
    ) {
        if !self.job_passes(j) {
            return;
        }
        let q = self.q;
        let unmatched = self.unmatched(j);
        let files_wanted = q.wants_files() || q.kind == Some(Kind::File);
        let mut emit = |hit: Hit| {
            if after.is_none_or(|c| hit.key > *c) && vis.allows(|| hit.url.clone()) {
                out.push(hit);
            }
        };
        let job_kind = q.kind.is_none_or(|k| k == Kind::Job);
        if !files_wanted && q.format.is_none() && unmatched.is_empty() && job_kind {
            emit(job_hit(j, vis));
            return;
        }
        if q.kind == Some(Kind::Job) {
            return;
        }
        for f in &j.formats {
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
                emit(format_hit(j, &f.name, image));
                continue;
            }
            if !(files_wanted || q.kind.is_none()) {
                continue;
            }
            for file in &f.files {
                if self.file_ok(file.name, file.digest, &rest) {
                    let rel = idx.names.str(file.name);
                    let mut hit = format_hit(j, &f.name, image);
                    hit.kind = Kind::File;
                    hit.url.push_str(rel);
                    hit.key.sub.push_str(rel);
                    hit.path = Some(rel.to_owned());
                    hit.digest = Some(idx.digests.str(file.digest).to_owned());
                    emit(hit);
                }
            }
        }
    }
}

fn job_hit(j: &JobRec, vis: &Visibility) -> Hit {
    let meta = |k: &str| {
        j.metadata
            .iter()
            .find(|(mk, _)| mk == k)
            .map(|(_, v)| v.to_lowercase())
    };
    let version = (|| {
        let parts = [
            meta("product")?,
            meta("product_variant")?,
            meta("product_branch")?,
            meta("version")?,
        ];
        let url = format!(
            "{}/products/{}/",
            j.job.tag.branch.scope.url(),
            parts.join("/")
        );
        vis.allows(|| url.clone()).then_some(url)
    })();
    Hit {
        kind: Kind::Job,
        url: j.url.clone(),
        job: j.job.clone(),
        format: None,
        path: None,
        digest: None,
        size: None,
        ts: j.ts,
        locked: j.locked,
        released: j.released,
        metadata: j.metadata.clone(),
        version,
        image: None,
        key: SortKey {
            ts: Reverse(j.ts),
            job: j.url.clone(),
            sub: String::new(),
        },
    }
}

fn format_hit(j: &JobRec, format: &str, image: bool) -> Hit {
    let t = &j.job.tag;
    let reference = image.then(|| {
        let user = match &t.branch.scope {
            Scope::Root => String::new(),
            Scope::User(u) => format!("u/{u}/"),
        };
        format!("{user}{}/{}:{}", t.branch.branch, j.job.job, t.tag)
    });
    Hit {
        kind: if image { Kind::Image } else { Kind::Format },
        url: format!("{}{format}/", j.url),
        job: j.job.clone(),
        format: Some(format.to_owned()),
        path: None,
        digest: None,
        size: None,
        ts: j.ts,
        locked: j.locked,
        released: j.released,
        metadata: Vec::new(),
        version: None,
        image: reference,
        key: SortKey {
            ts: Reverse(j.ts),
            job: j.url.clone(),
            sub: format!("{format}/"),
        },
    }
}

/// A set of places in result order.
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    fn has(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn and(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }
}
