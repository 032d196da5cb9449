//! Metadata answers kept in memory and checked against the tree on every use (issue 18,
//! docs/caches.md). An entry holds what was read (a tag's jobs, a job, a branch's tags, the
//! order of a branch's tags by age) and the *stamps* of the directories it was read from:
//! device, inode, mtime and ctime. Every change an answer can show changes one of them:
//! entries and dot-files are created, removed or renamed into their directory (dot-files
//! are replaced atomically, `files::write_atomic`), which bumps that directory's mtime and
//! ctime, and a directory made again under the same name has a new inode. A use `stat`s
//! those directories again and rebuilds on any difference, so a write by another process
//! on the same root is seen on the next request: nothing here trusts in-process state.
//!
//! Timestamps come from a coarse clock (a few ms, a second on some filesystems): a change
//! made in the same tick as the read could leave the times as they were. An answer read
//! from a directory changed less than a window before the read is therefore not kept (git's
//! "racily clean" rule); it is made again on the next request until the directory settles.
//! The window is [`RACY_FINE_NS`] on local filesystems with nanosecond times (set from this
//! host's clock, in ticks of a few ms), [`RACY_NS`] on any other (network filesystems,
//! whose server's clock may be skewed, and whole-second times).
//!
//! Each cache has a budget in bytes (an estimate of what its entries hold); the least
//! recently used entries go first, so memory stays bounded however large the tree grows.

use crate::metrics;
use crate::model::Name;
use nix::sys::stat::FileStat;
use prometheus_client::metrics::counter::Counter;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How long after its last change a directory is trusted to show any further change in
/// its times: well above the kernel's timestamp tick, and above the 1 s granularity of
/// the coarsest filesystems a data root may be on.
pub(crate) const RACY_NS: i64 = 2_000_000_000;

/// The window on tmpfs, ext4, XFS and btrfs: their times come from this host's coarse
/// clock, whose tick is at most 10 ms (HZ=100); a change after a read made more than a tick
/// after the directory's last change gets later times. Five ticks' margin.
const RACY_FINE_NS: i64 = 50_000_000;

/// The window for directories on the filesystem of `dir`.
fn racy_window(dir: &Path) -> i64 {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC, statfs,
    };
    let local = [
        TMPFS_MAGIC,
        EXT4_SUPER_MAGIC,
        XFS_SUPER_MAGIC,
        BTRFS_SUPER_MAGIC,
    ];
    match statfs(dir) {
        Ok(fs) if local.contains(&fs.filesystem_type()) => RACY_FINE_NS,
        _ => RACY_NS,
    }
}

/// What the tag answers (a tag's flags and jobs) may hold together.
pub(crate) const TAG_BUDGET: usize = 16 << 20;
/// What the job answers may hold together.
pub(crate) const JOB_BUDGET: usize = 8 << 20;
/// What the branch answers (every tag of a branch, and its rendered JSON) may hold
/// together: about 370 bytes a tag, so one branch of up to about 130,000 tags is kept
/// (an answer larger than half a budget is read every time).
pub(crate) const BRANCH_BUDGET: usize = 96 << 20;

/// What identifies a directory's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    pub fn of_stat(st: &FileStat) -> Stamp {
        Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            mtime_ns: st.st_mtime * 1_000_000_000 + st.st_mtime_nsec,
            ctime_ns: st.st_ctime * 1_000_000_000 + st.st_ctime_nsec,
        }
    }

    /// The stamp of `path` (followed), `None` when it cannot be read.
    pub fn of(path: &Path) -> Option<Stamp> {
        nix::sys::stat::stat(path)
            .ok()
            .map(|st| Stamp::of_stat(&st))
    }

    /// The mtime, nanoseconds.
    pub fn mtime_ns(&self) -> i64 {
        self.mtime_ns
    }

    /// Whether the directory had not changed for `window` when it was read at `read_ns`
    /// ([`RACY_NS`] for times in whole seconds, whatever the filesystem).
    pub fn settled(&self, read_ns: i64, window: i64) -> bool {
        let whole_seconds =
            self.mtime_ns % 1_000_000_000 == 0 && self.ctime_ns % 1_000_000_000 == 0;
        let window = if whole_seconds { RACY_NS } else { window };
        read_ns - self.mtime_ns.max(self.ctime_ns) > window
    }
}

/// The wall clock in nanoseconds, as file times count.
pub(crate) fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The stamps an answer was read from: its directory's, and those of the directories below
/// it that it read (a tag's jobs, a branch's tags), taken *before* their content was read.
#[derive(Debug, Clone)]
pub(crate) struct Stamps {
    /// When the first stamp was taken.
    read_ns: i64,
    top: Option<Stamp>,
    below: Vec<(Name, Stamp)>,
    /// A stamp could not be taken: the answer is not kept.
    missing: bool,
}

impl Stamps {
    /// Stamps starting with the directory's own (`None` when it could not be taken).
    pub fn new(read_ns: i64, top: Option<Stamp>) -> Stamps {
        Stamps {
            read_ns,
            top,
            below: Vec::new(),
            missing: top.is_none(),
        }
    }

    /// The stamp of the directory `name` below, taken before it was read.
    pub fn add(&mut self, name: Name, stamp: Option<Stamp>) {
        match stamp {
            Some(s) => self.below.push((name, s)),
            None => self.missing = true,
        }
    }

    /// The directories below, each with the stamp it had when read, that had settled then
    /// (a later change shows in their stamp): what a new read may take over from this one
    /// while their stamps stay the same.
    pub fn unchanged(&self, window: i64) -> HashMap<&str, Stamp> {
        self.below
            .iter()
            .filter(|(_, s)| s.settled(self.read_ns, window))
            .map(|(n, s)| (n.as_str(), *s))
            .collect()
    }

    /// Whether no change made within the read could have gone unseen.
    fn settled(&self, window: i64) -> bool {
        let read = self.read_ns;
        !self.missing
            && self.top.is_some_and(|t| t.settled(read, window))
            && self.below.iter().all(|(_, s)| s.settled(read, window))
    }

    /// Whether `dir` and the directories below it still have these stamps.
    fn still(&self, dir: &Path) -> bool {
        let Some(top) = self.top else {
            return false;
        };
        if self.below.is_empty() {
            return Stamp::of(dir) == Some(top);
        }
        // An `O_PATH` handle: one system call to open, where a readable directory (as
        // `nix::dir::Dir` opens it) took four, on the path of every cached answer.
        use nix::fcntl::OFlag;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let Ok(fd) = nix::fcntl::open(dir, flags, nix::sys::stat::Mode::empty()) else {
            return false;
        };
        if !nix::sys::stat::fstat(&fd).is_ok_and(|st| Stamp::of_stat(&st) == top) {
            return false;
        }
        self.below.iter().all(|(name, stamp)| {
            nix::sys::stat::fstatat(&fd, name.as_str(), nix::fcntl::AtFlags::empty())
                .is_ok_and(|st| Stamp::of_stat(&st) == *stamp)
        })
    }
}

/// How many `stat`s a kept answer may cost on the async runtime ([`StampCache::hit`], the
/// alias picks): beyond that, the request goes to the blocking pool.
pub(crate) const KEPT_STATS: usize = 64;

/// What a cached value takes in memory, roughly, in bytes.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

/// Answers by directory, each checked against its stamps on every use (see the module doc).
pub(crate) struct StampCache<V> {
    budget: usize,
    /// The racy window of the data root's filesystem, found at the first read.
    window: std::sync::OnceLock<i64>,
    inner: Mutex<Lru<V>>,
    hits: Counter,
    reads: Counter,
}

struct Slot<V> {
    stamps: Arc<Stamps>,
    value: Arc<V>,
    weight: usize,
    used: u64,
    /// Whether its stamps had settled when read: only then is it an answer. An unsettled
    /// read is kept only for [`StampCache::get_or_update`] to take what it can from.
    settled: bool,
}

struct Lru<V> {
    map: HashMap<PathBuf, Slot<V>>,
    bytes: usize,
    tick: u64,
}

impl<V: Weigh> StampCache<V> {
    pub fn new(kind: metrics::Cache, budget: usize) -> Self {
        let m = metrics::get();
        StampCache {
            hits: m.cache_counter(kind, metrics::Lookup::hit),
            reads: m.cache_counter(kind, metrics::Lookup::read),
            budget,
            window: std::sync::OnceLock::new(),
            inner: Mutex::new(Lru {
                map: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
        }
    }

    /// The answer kept for `dir` if its stamps still hold and checking them takes at most
    /// [`KEPT_STATS`] `stat`s; `None` otherwise (nothing kept, the tree changed since, or
    /// too many stamps to check here).
    ///
    /// Callers run this on the async runtime, where a request must not hold a worker for
    /// long: a tag of thousands of jobs (or a slow network filesystem) goes to the
    /// blocking pool, whose [`StampCache::get_or_read`] checks the same stamps there.
    pub fn hit(&self, dir: &Path) -> Option<Arc<V>> {
        self.kept(dir, KEPT_STATS)
    }

    /// The answer kept for `dir` if its stamps still hold, when that takes fewer than
    /// `max_stats` `stat`s to check.
    fn kept(&self, dir: &Path, max_stats: usize) -> Option<Arc<V>> {
        let (stamps, value) = {
            let mut lru = self.inner.lock().ok()?;
            lru.tick += 1;
            let tick = lru.tick;
            let slot = lru.map.get_mut(dir).filter(|s| s.settled)?;
            if slot.stamps.below.len() >= max_stats {
                return None;
            }
            slot.used = tick;
            (Arc::clone(&slot.stamps), Arc::clone(&slot.value))
        };
        // The stats run outside the lock.
        let hit = stamps.still(dir).then_some(value);
        if hit.is_some() {
            self.hits.inc();
        }
        hit
    }

    /// The answer for `dir`: kept, or read by `read`, which returns it with the stamps it
    /// was read from (kept when they had settled).
    pub fn get_or_read<E>(
        &self,
        dir: &Path,
        read: impl FnOnce() -> Result<(V, Stamps), E>,
    ) -> Result<Arc<V>, E> {
        if let Some(v) = self.kept(dir, usize::MAX) {
            return Ok(v);
        }
        self.reads.inc();
        let (value, stamps) = read()?;
        let value = Arc::new(value);
        if stamps.settled(self.window(dir)) {
            self.put(dir.to_path_buf(), stamps, Arc::clone(&value), true);
        } else {
            self.forget(dir);
        }
        Ok(value)
    }

    /// Like [`StampCache::get_or_read`], but `read` gets the last read of `dir` (with its
    /// stamps and the racy window), kept even when it had not settled, to take over what
    /// has not changed since: a branch listed while tags are being made reads only the tags
    /// whose directories changed ([`Stamps::unchanged`]).
    pub fn get_or_update<E>(
        &self,
        dir: &Path,
        read: impl FnOnce(Option<(&Stamps, &V)>, i64) -> Result<(V, Stamps), E>,
    ) -> Result<Arc<V>, E> {
        if let Some(v) = self.kept(dir, usize::MAX) {
            return Ok(v);
        }
        self.reads.inc();
        let last = self.inner.lock().ok().and_then(|lru| {
            let slot = lru.map.get(dir)?;
            Some((Arc::clone(&slot.stamps), Arc::clone(&slot.value)))
        });
        let window = self.window(dir);
        let (value, stamps) = read(last.as_ref().map(|(s, v)| (&**s, &**v)), window)?;
        let value = Arc::new(value);
        let settled = stamps.settled(window);
        self.put(dir.to_path_buf(), stamps, Arc::clone(&value), settled);
        Ok(value)
    }

    fn window(&self, dir: &Path) -> i64 {
        *self.window.get_or_init(|| racy_window(dir))
    }

    fn forget(&self, dir: &Path) {
        if let Ok(mut lru) = self.inner.lock()
            && let Some(gone) = lru.map.remove(dir)
        {
            lru.bytes -= gone.weight;
        }
    }

    /// Keeps `value` for `dir`; `settled` says whether it may be served as an answer.
    fn put(&self, dir: PathBuf, stamps: Stamps, value: Arc<V>, settled: bool) {
        let weight = value.weight() + stamps.below.len() * 64 + dir.as_os_str().len() + 128;
        if weight > self.budget / 2 {
            // One answer may not push out all the others; it is read every time.
            return self.forget(&dir);
        }
        let Ok(mut lru) = self.inner.lock() else {
            return;
        };
        lru.tick += 1;
        let slot = Slot {
            stamps: Arc::new(stamps),
            value,
            weight,
            used: lru.tick,
            settled,
        };
        if let Some(old) = lru.map.insert(dir, slot) {
            lru.bytes -= old.weight;
        }
        lru.bytes += weight;
        while lru.bytes > self.budget {
            let Some(oldest) = lru
                .map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = lru.map.remove(&oldest) {
                lru.bytes -= gone.weight;
            }
        }
    }

    /// Bytes held, by the estimate (tests look at it).
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.inner.lock().map_or(0, |l| l.bytes)
    }
}

/// A rough size of a JSON value in memory.
pub(crate) fn json_weight(v: &serde_json::Value) -> usize {
    use serde_json::Value;
    32 + match v {
        Value::String(s) => s.len(),
        Value::Array(a) => a.iter().map(json_weight).sum(),
        Value::Object(m) => map_weight(m),
        _ => 0,
    }
}

/// A rough size of a JSON object in memory.
pub(crate) fn map_weight(m: &serde_json::Map<String, serde_json::Value>) -> usize {
    m.iter().map(|(k, v)| 32 + k.len() + json_weight(v)).sum()
}

/// A rough size of an optional string in memory.
pub(crate) fn text_weight(s: &Option<String>) -> usize {
    24 + s.as_ref().map_or(0, String::len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    struct Text(String);

    impl Weigh for Text {
        fn weight(&self) -> usize {
            self.0.len()
        }
    }

    fn name(s: &str) -> Name {
        Name::parse(s).expect("name")
    }

    /// Reads `dir/sub/file`, stamping `dir` and `dir/sub`; `read_ns` far in the future
    /// makes the stamps settled.
    fn read(dir: &Path, read_ns: i64) -> std::io::Result<(Text, Stamps)> {
        let mut stamps = Stamps::new(read_ns, Stamp::of(dir));
        stamps.add(name("sub"), Stamp::of(&dir.join("sub")));
        Ok((Text(fs::read_to_string(dir.join("sub/file"))?), stamps))
    }

    #[test]
    fn a_change_below_is_seen_and_an_unsettled_read_is_not_kept() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        fs::create_dir(dir.join("sub")).expect("mkdir");
        fs::write(dir.join("sub/file"), "one").expect("write");
        let cache = StampCache::new(metrics::Cache::tag, 1 << 20);
        let later = now_ns() + 10 * RACY_NS;
        let v = cache.get_or_read(dir, || read(dir, later)).expect("read");
        assert_eq!(v.0, "one");
        assert!(cache.hit(dir).is_some());
        // Replaced atomically, as dot-files are: the sub-directory's times change.
        let before = now_ns();
        fs::write(dir.join("sub/new"), "two").expect("write");
        fs::rename(dir.join("sub/new"), dir.join("sub/file")).expect("rename");
        assert!(cache.hit(dir).is_none());
        // Read as it changed (a clock read before the change, so that no pause of this
        // test can make it settled): answered, not kept.
        let v = cache.get_or_read(dir, || read(dir, before)).expect("read");
        assert_eq!(v.0, "two");
        assert!(cache.hit(dir).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_answer_with_many_stamps_is_kept_for_the_blocking_pool_only() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path();
        let subs: Vec<Name> = (0..KEPT_STATS).map(|i| name(&format!("j{i}"))).collect();
        for sub in &subs {
            fs::create_dir(dir.join(sub.as_str())).expect("mkdir");
        }
        let read = || {
            let mut stamps = Stamps::new(now_ns() + 10 * RACY_NS, Stamp::of(dir));
            for sub in &subs {
                stamps.add(sub.clone(), Stamp::of(&dir.join(sub.as_str())));
            }
            Ok::<_, std::io::Error>((Text("jobs".into()), stamps))
        };
        let cache = StampCache::new(metrics::Cache::tag, 1 << 20);
        cache.get_or_read(dir, read).expect("read");
        // Checking it would take a stat per job: not on the async runtime...
        assert!(cache.hit(dir).is_none());
        // ...but the blocking pool's read gets it without reading again.
        let again = cache.get_or_read(dir, || Err(std::io::Error::other("read again")));
        assert_eq!(again.expect("kept").0, "jobs");
        // And a change below is still seen there.
        fs::create_dir(dir.join("j0/new")).expect("mkdir");
        assert!(
            cache
                .get_or_read(dir, || Err(std::io::Error::other("read")))
                .is_err()
        );
    }

    #[test]
    fn times_in_whole_seconds_keep_the_long_window() {
        let at = |s: i64, ns: i64| Stamp {
            dev: 1,
            ino: 1,
            mtime_ns: s * 1_000_000_000 + ns,
            ctime_ns: s * 1_000_000_000 + ns,
        };
        let read = 5_100_000_000;
        assert!(at(5, 1).settled(read, RACY_FINE_NS));
        assert!(!at(5, 0).settled(read, RACY_FINE_NS));
        assert!(!at(5, 1).settled(read, RACY_NS));
        assert!(at(3, 0).settled(read, RACY_FINE_NS));
    }

    #[test]
    fn the_least_recently_used_go_past_the_budget() {
        let tmp = tempfile::tempdir().expect("tmp");
        let later = now_ns() + 10 * RACY_NS;
        let cache = StampCache::new(metrics::Cache::tag, 2000);
        let dirs: Vec<PathBuf> = (0..5).map(|i| tmp.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            fs::create_dir_all(d.join("sub")).expect("mkdir");
            fs::write(d.join("sub/file"), "x".repeat(200)).expect("write");
            cache.get_or_read(d, || read(d, later)).expect("read");
            // The first stays the most recently used.
            assert!(cache.hit(&dirs[0]).is_some());
        }
        assert!(cache.bytes() <= 2000);
        let kept: Vec<bool> = dirs.iter().map(|d| cache.hit(d).is_some()).collect();
        assert_eq!(kept, [true, false, true, true, true]);
        // Too large for half the budget: answered, never kept.
        let big = tmp.path().join("big");
        fs::create_dir_all(big.join("sub")).expect("mkdir");
        fs::write(big.join("sub/file"), "x".repeat(1000)).expect("write");
        cache.get_or_read(&big, || read(&big, later)).expect("read");
        assert!(cache.hit(&big).is_none());
    }
}
