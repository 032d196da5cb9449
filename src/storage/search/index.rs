//! The in-memory search index: one record per job (its names, flags, metadata and the files
//! of its formats), file names, digests and job-level strings interned once for the whole
//! tree, jobs kept in result order (newest first), postings from each interned string to
//! the jobs holding it, and the product versions the jobs link, in result order too.

use super::matched::{Interner, MatchCache};
use super::versions::{ProductRec, Versions};
use std::collections::HashMap;

/// One file of a format: its path below the format and its digest, both interned.
#[derive(Clone, Copy)]
pub(crate) struct FileRec {
    pub name: u32,
    pub digest: u32,
}

pub(crate) struct FormatRec {
    pub name: String,
    pub files: Vec<FileRec>,
}

/// What the index knows of one job, as read from its directory.
pub(crate) struct JobRec {
    pub job: crate::model::JobRef,
    /// Canonical URL (`/[~u]/branches/{b}/{t}/{j}/`).
    pub url: String,
    /// The `.stamp` mtime in nanoseconds (0 when missing).
    pub ts: i64,
    /// What changes when anything in the job's directories changes (see `walk.rs`).
    pub sig: u64,
    /// The job directory's mtime: while it holds, so do its entries (see `walk.rs`).
    pub dir_ns: i64,
    pub locked: bool,
    pub tag_locked: bool,
    pub released: bool,
    pub stable: bool,
    /// Sorted by key; values as stored (lower-cased by dlrepo).
    pub metadata: Vec<(String, String)>,
    /// Sorted by `name + "/"`, the order results come in.
    pub formats: Vec<FormatRec>,
    pub product: Option<ProductRec>,
    /// The interned names and values a word may match at the job's level: branch, tag,
    /// job, user, format names and metadata values.
    pub fields: Vec<u32>,
}

impl JobRec {
    /// Sort key of result order: newest first, then by URL.
    pub fn key(&self) -> (std::cmp::Reverse<i64>, &str) {
        (std::cmp::Reverse(self.ts), &self.url)
    }
}

/// The job records, file names and digests of the whole tree.
#[derive(Default)]
pub(crate) struct Index {
    pub names: Interner,
    pub digests: Interner,
    /// The job-level strings of [`JobRec::fields`].
    pub fields: Interner,
    /// Slots; `None` is a freed slot.
    pub jobs: Vec<Option<JobRec>>,
    free: Vec<u32>,
    pub by_url: HashMap<String, u32>,
    /// Digest id → slots of the jobs holding a file with it, and file name id → slots of
    /// the jobs holding a file of that name. A removed job leaves its slot in them (a
    /// superset is all a query asks of them: it checks each job it takes from them); they
    /// are made again when such leftovers outnumber the live entries.
    pub by_digest: HashMap<u32, Vec<u32>>,
    pub by_name: HashMap<u32, Vec<u32>>,
    /// Field id → slots of the jobs holding it in [`JobRec::fields`].
    pub by_field: HashMap<u32, Vec<u32>>,
    live_postings: usize,
    stale_postings: usize,
    /// Live slots in result order, and each slot's place in it (`u32::MAX` for none);
    /// rebuilt by [`Index::reorder`] after changes.
    pub order: Vec<u32>,
    pub pos: Vec<u32>,
    /// Slots put since the last [`Index::reorder`], and whether some were removed.
    added: Vec<u32>,
    removed: bool,
    pub versions: Versions,
    /// What words and globs matched in the interners, kept between queries.
    pub matches: MatchCache,
    /// Counts puts and removes: the saved copy is out of date when it moved.
    pub generation: u64,
}

impl Index {
    pub fn job(&self, slot: u32) -> Option<&JobRec> {
        self.jobs.get(slot as usize).and_then(Option::as_ref)
    }

    pub fn len(&self) -> usize {
        self.by_url.len()
    }

    pub fn rec(&self, url: &str) -> Option<&JobRec> {
        self.job(*self.by_url.get(url)?)
    }

    /// Adds `rec`, replacing the job of the same URL.
    pub fn put(&mut self, rec: JobRec) {
        self.remove(&rec.url.clone());
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.jobs.push(None);
                u32::try_from(self.jobs.len() - 1).unwrap_or(u32::MAX)
            }
        };
        self.live_postings += post(self.postings(), &rec, slot);
        self.by_url.insert(rec.url.clone(), slot);
        self.generation += 1;
        if let Some(p) = &rec.product {
            self.versions.add(p, slot);
        }
        if let Some(s) = self.jobs.get_mut(slot as usize) {
            *s = Some(rec);
        }
        self.added.push(slot);
    }

    pub fn remove(&mut self, url: &str) {
        let Some(slot) = self.by_url.remove(url) else {
            return;
        };
        let Some(rec) = self.jobs.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        if let Some(p) = &rec.product {
            self.versions.drop_job(&p.url, slot);
        }
        let n = keys(&rec).iter().map(Vec::len).sum::<usize>();
        self.live_postings = self.live_postings.saturating_sub(n);
        self.stale_postings += n;
        if self.stale_postings > self.live_postings.max(1 << 16) {
            self.repost();
        }
        self.free.push(slot);
        self.generation += 1;
        self.removed = true;
    }

    fn postings(&mut self) -> [&mut HashMap<u32, Vec<u32>>; 3] {
        [&mut self.by_digest, &mut self.by_name, &mut self.by_field]
    }

    /// Makes the postings again from the live jobs.
    fn repost(&mut self) {
        let mut maps: [HashMap<u32, Vec<u32>>; 3] = Default::default();
        let mut live = 0;
        for (slot, rec) in self.jobs.iter().enumerate() {
            if let Some(rec) = rec {
                let slot = u32::try_from(slot).unwrap_or(u32::MAX);
                let [a, b, c] = &mut maps;
                live += post([a, b, c], rec, slot);
            }
        }
        [self.by_digest, self.by_name, self.by_field] = maps;
        self.live_postings = live;
        self.stale_postings = 0;
    }

    /// Puts [`Index::order`] back in result order after puts and removes: the puts, sorted,
    /// are merged into the order (linear in the jobs, however many were put).
    pub fn reorder(&mut self) {
        if self.added.is_empty() && !self.removed {
            return;
        }
        let jobs = &self.jobs;
        let key = |s: &u32| {
            jobs.get(*s as usize)
                .and_then(Option::as_ref)
                .map(JobRec::key)
        };
        let mut added = std::mem::take(&mut self.added);
        added.sort_unstable();
        added.dedup();
        let mut old = std::mem::take(&mut self.order);
        // Dropped slots, and slots re-used since they were placed.
        old.retain(|s| key(s).is_some() && added.binary_search(s).is_err());
        let mut old = old.into_iter().peekable();
        added.retain(|s| key(s).is_some());
        added.sort_unstable_by(|a, b| key(a).cmp(&key(b)));
        let mut order = Vec::with_capacity(self.by_url.len());
        let mut added = added.into_iter().peekable();
        loop {
            let next = match (old.peek(), added.peek()) {
                (Some(o), Some(a)) if key(o) <= key(a) => old.next(),
                (Some(_), Some(_)) | (None, Some(_)) => added.next(),
                (Some(_), None) => old.next(),
                (None, None) => break,
            };
            order.extend(next);
        }
        self.pos.clear();
        self.pos.resize(self.jobs.len(), u32::MAX);
        for (i, slot) in order.iter().enumerate() {
            if let Some(p) = self.pos.get_mut(*slot as usize) {
                *p = u32::try_from(i).unwrap_or(u32::MAX);
            }
        }
        self.order = order;
        self.removed = false;
    }

    /// URLs of the jobs below `prefix` (a branch, tag or job URL; `""` for all) that
    /// `keep` refuses.
    pub fn urls_under(&self, prefix: &str, keep: impl Fn(&str) -> bool) -> Vec<String> {
        self.by_url
            .keys()
            .filter(|u| u.starts_with(prefix) && !keep(u))
            .cloned()
            .collect()
    }
}

/// The distinct digests, file names and fields of `rec`.
fn keys(rec: &JobRec) -> [Vec<u32>; 3] {
    let distinct = |f: &dyn Fn(&FileRec) -> u32| {
        let mut v: Vec<u32> = rec
            .formats
            .iter()
            .flat_map(|x| x.files.iter().map(f))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    [
        distinct(&|f| f.digest),
        distinct(&|f| f.name),
        rec.fields.clone(),
    ]
}

/// Adds `slot` to the postings of `rec`'s digests, names and fields; how many it added.
fn post(maps: [&mut HashMap<u32, Vec<u32>>; 3], rec: &JobRec, slot: u32) -> usize {
    let mut n = 0;
    for (map, ids) in maps.into_iter().zip(keys(rec)) {
        n += ids.len();
        for id in ids {
            map.entry(id).or_default().push(slot);
        }
    }
    n
}

/// A set of places in result order.
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    pub fn set(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Adds the places of the slots in `list`.
    pub fn post(&mut self, idx: &Index, list: Option<&Vec<u32>>) {
        for slot in list.into_iter().flatten() {
            if let Some(&p) = idx.pos.get(*slot as usize) {
                self.set(p as usize);
            }
        }
    }

    /// The first place at or after `i`.
    pub fn next_from(&self, i: usize) -> Option<usize> {
        let mut w = i / 64;
        let mut bits = self.0.get(w)? & (u64::MAX << (i % 64));
        loop {
            if bits != 0 {
                return Some(w * 64 + bits.trailing_zeros() as usize);
            }
            w += 1;
            bits = *self.0.get(w)?;
        }
    }

    pub fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn and(&mut self, other: &Bits) {
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            *a &= b;
        }
    }
}
