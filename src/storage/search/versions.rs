//! Product versions as results of their own: each version a job is linked into (its
//! `.product`, spec/LAYOUT.md §4), with the jobs linked into it, kept in result order
//! (newest first by the version's `.stamp`, then by URL) as jobs are put and removed.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};

/// The product version a job is linked into (its `.product`), read from its metadata.
pub(crate) struct ProductRec {
    /// Canonical URL (`/[~u]/products/{p}/{v}/{pb}/{ver}/`).
    pub url: String,
    /// The version's `.stamp` mtime in nanoseconds (0 when missing).
    pub ts: i64,
    /// Its product, variant, product branch and version, then the user of its repository,
    /// as ids of the index's fields (`Index::fields`).
    pub fields: Vec<u32>,
}

/// Where a version sorts: newest first, then by URL.
pub(crate) type VersionKey = (Reverse<i64>, String);

/// One product version.
pub(crate) struct VersionRec {
    pub url: String,
    /// As [`ProductRec::fields`].
    pub fields: Vec<u32>,
    /// The version's `.stamp` time (the newest its jobs read).
    pub ts: i64,
    /// Slots of the jobs linked into it, each with the stamp time it read.
    pub jobs: Vec<(u32, i64)>,
}

#[derive(Default)]
pub(crate) struct Versions {
    /// In result order.
    pub order: BTreeMap<VersionKey, VersionRec>,
    /// URL → time, the rest of its key.
    ts: HashMap<String, i64>,
}

impl Versions {
    pub fn get(&self, url: &str) -> Option<&VersionRec> {
        let ts = *self.ts.get(url)?;
        self.order.get(&(Reverse(ts), url.to_owned()))
    }

    /// Takes the version at `url` out of the order, for a change.
    fn take(&mut self, url: &str) -> Option<VersionRec> {
        let ts = self.ts.remove(url)?;
        self.order.remove(&(Reverse(ts), url.to_owned()))
    }

    /// Puts `v` back, where its jobs' newest stamp time sorts it.
    fn place(&mut self, mut v: VersionRec) {
        v.ts = v.jobs.iter().map(|(_, t)| *t).max().unwrap_or(0);
        self.ts.insert(v.url.clone(), v.ts);
        self.order.insert((Reverse(v.ts), v.url.clone()), v);
    }

    /// The job in `slot` is linked into `p`.
    pub fn add(&mut self, p: &ProductRec, slot: u32) {
        let mut v = self.take(&p.url).unwrap_or_else(|| VersionRec {
            url: p.url.clone(),
            fields: p.fields.clone(),
            ts: 0,
            jobs: Vec::new(),
        });
        v.jobs.push((slot, p.ts));
        self.place(v);
    }

    /// The job in `slot` is no longer linked into `url`.
    pub fn drop_job(&mut self, url: &str, slot: u32) {
        let Some(mut v) = self.take(url) else {
            return;
        };
        v.jobs.retain(|(s, _)| *s != slot);
        if !v.jobs.is_empty() {
            self.place(v);
        }
    }
}
