//! Search over the whole tree (issue 17, docs/search.md). The index is derived data, held
//! in memory: a background thread builds it at start (queries meanwhile answer from what
//! is read so far, and say so), then walks the tree's stamps again every few seconds and
//! re-reads only what changed, so other processes' writes show within
//! [`REFRESH_PERIOD`] plus one walk. This process's own writes mark their subtree, which
//! the next query re-reads before it runs.

mod access;
mod eval;
mod index;
mod matched;
mod persist;
pub mod query;
mod versions;
mod walk;

pub use access::{Access, Work};
pub use eval::{Hit, SortKey};
pub use query::{Kind, Query};
pub use walk::Subtree;

use super::Repo;
use crate::model::JobRef;
use base64::Engine as _;
use index::{FileRec, FormatRec, Index, JobRec};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};
use versions::ProductRec;
use walk::{Known, RawJob, Visit};

/// How often the tree's stamps are compared again: at least [`WALK_SHARE`] times the CPU
/// time the last walk took, so that on a large tree the walks take at most a fifth of a
/// core (a walk that mostly waited for the disk does not put the next one off).
pub const REFRESH_PERIOD: Duration = Duration::from_secs(5);
const WALK_SHARE: u32 = 5;

/// The least time between two saves of `.search/index`.
const SAVE_PERIOD: Duration = Duration::from_secs(60);
/// Smaller trees are not saved: walking them costs less than a second.
const SAVE_MIN_JOBS: usize = 1000;

/// A search that takes longer is logged with where its time went.
const SLOW: Duration = Duration::from_secs(1);

/// Jobs read before they are put in the index together, under one short write lock.
const BATCH: usize = 1024;

/// The search index and what keeps it fresh.
#[derive(Default)]
pub struct SearchIndex {
    index: RwLock<Index>,
    complete: AtomicBool,
    started: AtomicBool,
    /// Subtrees this process wrote to since the last query.
    touched: Mutex<Vec<Subtree>>,
    /// The walks' clock in nanoseconds when set (tests); 0 for the real one.
    clock: AtomicI64,
}

/// One page of results.
pub struct Page {
    pub hits: Vec<Hit>,
    /// Where the next page starts, when there is one.
    pub next: Option<SortKey>,
    /// `false` while the first build runs: results may be missing.
    pub complete: bool,
    /// What finding them took.
    pub work: Work,
}

impl SearchIndex {
    /// Starts the background build and refresh (once; later calls do nothing). The thread
    /// ends when the index or the repository is dropped.
    pub fn start(self: &Arc<Self>, repo: &Arc<Repo>) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let (me, repo) = (Arc::downgrade(self), Arc::downgrade(repo));
        let spawned = std::thread::Builder::new()
            .name("search-index".into())
            .spawn(move || refresh_loop(me, repo));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "search index thread not started");
        }
    }

    pub fn is_complete(&self) -> bool {
        self.complete.load(Ordering::SeqCst)
    }

    /// Marks `sub` as written by this process: the next query reads it again first.
    pub fn touch(&self, sub: Subtree) {
        let mut t = self.touched.lock().unwrap_or_else(PoisonError::into_inner);
        if !t.contains(&sub) {
            t.push(sub);
        }
    }

    /// Jobs in the index.
    pub fn jobs(&self) -> usize {
        self.read().len()
    }

    /// Runs `q` for a caller who may read what `access` allows: at most `limit` results
    /// after `after`, newest first.
    pub fn search(
        &self,
        repo: &Repo,
        q: &Query,
        access: &Access,
        after: Option<&SortKey>,
        limit: usize,
    ) -> Page {
        let began = Instant::now();
        let touched =
            std::mem::take(&mut *self.touched.lock().unwrap_or_else(PoisonError::into_inner));
        for sub in touched {
            // A job this process wrote is read again whatever its stamps say: a write within
            // the filesystem's timestamp granularity may leave them as they were.
            let force = matches!(sub, Subtree::Job(_));
            self.refresh_with(repo, &sub, force);
        }
        let complete = self.is_complete();
        let refreshed = began.elapsed();
        let (mut hits, work) = eval::run(&self.read(), q, access, after, limit);
        let evaluated = began.elapsed();
        let next = (hits.len() > limit).then(|| {
            hits.truncate(limit);
            hits.last().map(|h| h.key.clone())
        });
        for h in &mut hits {
            if let (Some(j), Some(f), Some(p)) = (&h.job, &h.format, &h.path) {
                h.size = repo.search_file_size(j, f, p);
            }
        }
        if began.elapsed() > SLOW {
            // Which part waited: this process's writes read again, the index (its lock
            // and the query), or the disk (each file result's size).
            tracing::warn!(
                refresh = refreshed.as_secs_f64(),
                query = (evaluated - refreshed).as_secs_f64(),
                sizes = (began.elapsed() - evaluated).as_secs_f64(),
                jobs = work.jobs,
                opened = work.opened,
                entries = work.entries,
                "slow search"
            );
        }
        Page {
            hits,
            next: next.flatten(),
            complete,
            work,
        }
    }

    /// Where the index last saw files whose content is `digest` (`sha256:...`): each
    /// job, format name and path in the format, at most `limit` of them. A hint only (the
    /// index lags other processes' writes): the caller checks each one on disk.
    pub fn holders(&self, digest: &str, limit: usize) -> Vec<(JobRef, String, String)> {
        let ix = self.read();
        let Some(id) = ix.digests.get(digest) else {
            return Vec::new();
        };
        let slots = ix.by_digest.get(&id).map(Vec::as_slice).unwrap_or_default();
        let found = slots
            .iter()
            .filter_map(|&slot| ix.job(slot))
            .flat_map(|rec| {
                rec.formats.iter().flat_map(move |f| {
                    f.files
                        .iter()
                        .filter(move |file| file.digest == id)
                        .map(move |file| (rec.job.clone(), f.name.clone(), file.name))
                })
            });
        found
            .take(limit)
            .map(|(job, format, name)| (job, format, ix.names.str(name).to_owned()))
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// A new index of the whole tree, saved over `.search/index` whatever its size
    /// (`arbor reindex`); how many jobs it holds.
    pub fn rebuild(repo: &Repo) -> Result<usize, super::StoreError> {
        let ix = SearchIndex::default();
        ix.refresh(repo, &Subtree::All);
        repo.save_search_index(&ix.read())?;
        Ok(ix.jobs())
    }

    /// Walks `sub`, re-reads what changed and drops what is gone.
    pub fn refresh(&self, repo: &Repo, sub: &Subtree) {
        self.refresh_with(repo, sub, false)
    }

    /// [`SearchIndex::refresh`]; `force` re-reads every job of `sub`.
    fn refresh_with(&self, repo: &Repo, sub: &Subtree, force: bool) {
        let mut c = Collector {
            force,
            clock: self.clock.load(Ordering::SeqCst),
            index: &self.index,
            seen: HashSet::new(),
            batch: Vec::new(),
        };
        repo.search_walk(sub, &mut c);
        c.flush();
        // Found under the read lock: queries wait for the write lock only when a job went.
        let gone = self
            .read()
            .urls_under(&sub.url_prefix(), |u| c.seen.contains(u));
        if gone.is_empty() {
            return;
        }
        let mut idx = self.index.write().unwrap_or_else(PoisonError::into_inner);
        for url in gone {
            idx.remove(&url);
        }
        idx.reorder();
    }
}

fn refresh_loop(me: Weak<SearchIndex>, repo: Weak<Repo>) {
    let mut first = true;
    let mut first_walk = true;
    let mut saved: Option<(u64, Instant)> = None;
    loop {
        let (Some(me), Some(repo)) = (me.upgrade(), repo.upgrade()) else {
            return;
        };
        let began = Instant::now();
        let cpu = thread_cpu();
        if first {
            me.load(&repo);
        }
        me.refresh(&repo, &Subtree::All);
        let took = began.elapsed();
        if first {
            me.complete.store(true, Ordering::SeqCst);
            tracing::info!(
                jobs = me.jobs(),
                seconds = took.as_secs_f64(),
                "search index built"
            );
            first = false;
        } else {
            tracing::debug!(seconds = took.as_secs_f64(), "search index refreshed");
        }
        saved = me.save(&repo, saved);
        drop((me, repo));
        // The build read every file list; a refresh walk only compares stamps.
        let spent = match (cpu, thread_cpu()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => took,
        };
        let walk = if first_walk { Duration::ZERO } else { spent };
        first_walk = false;
        std::thread::sleep(REFRESH_PERIOD.max(walk * WALK_SHARE));
    }
}

/// The CPU time (user and system) of the calling thread, from `/proc/thread-self/stat`
/// (in clock ticks of 10 ms, Linux's `USER_HZ`); `None` where it cannot be read.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // After the command's closing parenthesis come the fields from the third on: utime
    // and stime are the 14th and 15th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let tick = |i: usize| fields.get(i)?.parse::<u64>().ok();
    Some(Duration::from_millis((tick(11)? + tick(12)?) * 10))
}

impl SearchIndex {
    /// Starts from `.search/index` when there is a readable one: the walk that follows
    /// then reads only what changed since it was saved.
    fn load(&self, repo: &Repo) {
        // In batches, so that queries meanwhile wait for one batch at most.
        let mut c = Collector {
            force: true,
            clock: self.clock.load(Ordering::SeqCst),
            index: &self.index,
            seen: HashSet::new(),
            batch: Vec::new(),
        };
        let whole = repo.load_search_index(&mut |raw| c.changed(raw));
        c.flush();
        let jobs = self.jobs();
        if jobs > 0 {
            tracing::info!(jobs, whole, "search index loaded from .search/index");
        }
    }

    /// Saves the index when it changed since `saved` (its generation and time), at most
    /// once per [`SAVE_PERIOD`]; what was saved last.
    fn save(&self, repo: &Repo, saved: Option<(u64, Instant)>) -> Option<(u64, Instant)> {
        let idx = self.read();
        if idx.len() < SAVE_MIN_JOBS {
            return saved;
        }
        if let Some((generation, at)) = saved
            && (generation == idx.generation || at.elapsed() < SAVE_PERIOD)
        {
            return saved;
        }
        match repo.save_search_index(&idx) {
            Ok(()) => Some((idx.generation, Instant::now())),
            Err(e) => {
                tracing::warn!(error = %e, "search index not saved");
                saved
            }
        }
    }
}

struct Collector<'a> {
    force: bool,
    /// As [`SearchIndex::clock`].
    clock: i64,
    index: &'a RwLock<Index>,
    seen: HashSet<String>,
    batch: Vec<RawJob>,
}

impl Collector<'_> {
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut idx = self.index.write().unwrap_or_else(PoisonError::into_inner);
        for raw in self.batch.drain(..) {
            let rec = intern(&mut idx, raw);
            idx.put(rec);
        }
        idx.reorder();
    }
}

impl Visit for Collector<'_> {
    fn now_ns(&self) -> i64 {
        match self.clock {
            0 => super::stamp_cache::now_ns(),
            fixed => fixed,
        }
    }

    fn known(&self, url: &str) -> Option<Known> {
        if self.force {
            return None;
        }
        let idx = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let rec = idx.rec(url)?;
        // Kept in result order (by `name + "/"`); the walk compares them by name.
        let mut formats: Vec<String> = rec.formats.iter().map(|f| f.name.clone()).collect();
        formats.sort();
        Some(Known {
            sig: rec.sig,
            dir_ns: rec.dir_ns,
            formats,
        })
    }

    fn seen(&mut self, url: String) {
        self.seen.insert(url);
    }

    fn changed(&mut self, job: RawJob) {
        self.batch.push(job);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }
}

fn intern(idx: &mut Index, raw: RawJob) -> JobRec {
    let formats: Vec<FormatRec> = raw
        .formats
        .into_iter()
        .map(|(name, files)| FormatRec {
            name,
            files: files
                .iter()
                .map(|(n, d)| FileRec {
                    name: idx.names.intern(n),
                    digest: idx.digests.intern(d),
                })
                .collect(),
        })
        .collect();
    let t = &raw.job.tag;
    let mut fields: Vec<&str> = vec![
        t.branch.branch.as_str(),
        t.tag.as_str(),
        raw.job.job.as_str(),
    ];
    if let crate::model::Scope::User(u) = &t.branch.scope {
        fields.push(u.as_str());
    }
    fields.extend(raw.metadata.iter().map(|(_, v)| v.as_str()));
    fields.extend(formats.iter().map(|f: &FormatRec| f.name.as_str()));
    let mut fields: Vec<u32> = fields.into_iter().map(|f| idx.fields.intern(f)).collect();
    fields.sort_unstable();
    fields.dedup();
    // Kept as long as the job lives: without the room its duplicates took.
    fields.shrink_to_fit();
    let product = raw.product.map(|(url, ts)| {
        let meta = |k: &str| {
            raw.metadata
                .iter()
                .find(|(mk, _)| mk == k)
                .map_or("", |(_, v)| v.as_str())
        };
        let mut fields: Vec<u32> = crate::model::PRODUCT_KEYS
            .map(|k| idx.fields.intern(meta(k)))
            .to_vec();
        if let crate::model::Scope::User(u) = &t.branch.scope {
            fields.push(idx.fields.intern(u.as_str()));
        }
        ProductRec { url, ts, fields }
    });
    JobRec {
        fields,
        product,
        dir_ns: raw.dir_ns,
        job: raw.job,
        url: raw.url,
        ts: raw.ts,
        sig: raw.sig,
        locked: raw.locked,
        tag_locked: raw.tag_locked,
        released: raw.released,
        stable: raw.stable,
        metadata: raw.metadata,
        formats,
    }
}

impl SortKey {
    /// The opaque cursor of a page: the sort key of its last result.
    pub fn encode(&self) -> String {
        let raw = format!("{}\n{}\n{}", self.ts.0, self.job, self.sub);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    pub fn decode(cursor: &str) -> Option<SortKey> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let mut parts = raw.splitn(3, '\n');
        let ts = parts.next()?.parse().ok()?;
        Some(SortKey {
            ts: std::cmp::Reverse(ts),
            job: parts.next()?.to_owned(),
            sub: parts.next()?.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
#[test]
fn a_thread_s_cpu_time_grows_with_its_work() {
    let Some(before) = thread_cpu() else { return };
    let began = Instant::now();
    let mut x = 0u64;
    // Spinning, the thread gets CPU time however loaded the machine is.
    while thread_cpu().unwrap_or_default() < before + Duration::from_millis(30) {
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "no CPU time counted"
        );
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}
