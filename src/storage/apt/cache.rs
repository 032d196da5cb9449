//! Generated indexes kept in memory, keyed by a hash of everything they are made from (a
//! format's `.digests` bytes and timestamp; for a product branch, the keys of the formats
//! it takes, in order). The key is read from disk on every request, never from in-process
//! state, so several servers sharing one root never serve each other's stale indexes; and
//! the value follows from the key alone, so one caller's entry can never show another
//! caller anything it could not read (what a caller may see is part of its key).
//! Bounded by a budget in bytes; the least recently used entries go first. The same cache
//! keeps packages read (by content digest) and the rpm metadata of formats (`rpm.rs`).

use crate::storage::StoreError;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A SHA-256 of what an index is made from.
pub(crate) type Key = [u8; 32];

/// What a cached value takes in memory, in bytes.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

/// The SHA-256 of `text`, as a key (a content digest as `.digests` records it, say).
pub(crate) fn key_of(text: &str) -> Key {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes()).into()
}

/// Whether a file whose sums are `sums` (`(algorithm, hex)`) is the content `digest`
/// (`algo:hex`) `.digests` records; `None` when `sums` has no sum of that algorithm. Files
/// are stored under md5, sha1 or sha512 digests too (spec/API.md): such a file is listed as
/// `.digests` says, but never kept under a digest it was not checked against.
pub(crate) fn digest_matches(digest: &str, sums: &[(&str, &str)]) -> Option<bool> {
    let (algo, hex) = digest.split_once(':')?;
    let (_, sum) = sums.iter().find(|(a, _)| *a == algo)?;
    Some(*sum == hex)
}

pub(crate) struct Cache<V> {
    /// What all the entries may take together.
    budget: usize,
    inner: Mutex<Lru<V>>,
    /// One lock per key being made: requests that miss together (a fleet of `apt-get
    /// update` after an upload) wait for one build instead of each making the same.
    making: Mutex<HashMap<Key, Arc<Mutex<()>>>>,
    /// How many times indexes were made (tests look at it).
    builds: AtomicU64,
}

struct Lru<V> {
    map: HashMap<Key, (Arc<V>, u64)>,
    bytes: usize,
    tick: u64,
}

impl<V: Weigh> Cache<V> {
    pub(crate) fn with_budget(budget: usize) -> Self {
        Cache {
            budget,
            inner: Mutex::new(Lru {
                map: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
            making: Mutex::default(),
            builds: AtomicU64::new(0),
        }
    }

    /// The indexes of `key`, made by `build` when they are not in memory. Without a key
    /// (what they are made from could not be pinned down) they are made every time; so are
    /// those `build` says not to keep (`false`: a package could not be read this time).
    pub(crate) fn get_or_build(
        &self,
        key: Option<Key>,
        build: impl FnOnce() -> io::Result<(V, bool)>,
    ) -> io::Result<Arc<V>> {
        if let Some(found) = key.and_then(|k| self.get(&k)) {
            return Ok(found);
        }
        let Some(k) = key else {
            return self.build(None, build);
        };
        let lock = match self.making.lock() {
            Ok(mut making) => Arc::clone(making.entry(k).or_default()),
            Err(_) => return self.build(key, build),
        };
        let made = {
            let _making = lock.lock();
            // Made by whoever held the lock before us?
            match self.get(&k) {
                Some(found) => Ok(found),
                None => self.build(key, build),
            }
        };
        drop(lock);
        // Locks nobody waits on any more (only the map holds them) go.
        if let Ok(mut making) = self.making.lock() {
            making.retain(|_, l| Arc::strong_count(l) > 1);
        }
        made
    }

    fn build(
        &self,
        key: Option<Key>,
        build: impl FnOnce() -> io::Result<(V, bool)>,
    ) -> io::Result<Arc<V>> {
        self.builds.fetch_add(1, Ordering::Relaxed);
        let (made, keep) = build()?;
        let made = Arc::new(made);
        if let (Some(k), true) = (key, keep) {
            self.put(k, Arc::clone(&made));
        }
        Ok(made)
    }

    /// Indexes made so far (misses).
    #[cfg(test)]
    pub(crate) fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<V>> {
        let mut lru = self.inner.lock().ok()?;
        lru.tick += 1;
        let tick = lru.tick;
        let (found, used) = lru.map.get_mut(key)?;
        *used = tick;
        Some(Arc::clone(found))
    }

    /// Keeps `value` under `key`. One entry larger than the whole budget is still kept (it
    /// alone: the others go), since making it again on every request costs more than
    /// the memory; what bounds its size is the limits on what it is made from.
    pub(crate) fn put(&self, key: Key, value: Arc<V>) {
        let weight = value.weight();
        let Ok(mut lru) = self.inner.lock() else {
            return;
        };
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((old, _)) = lru.map.insert(key, (value, tick)) {
            lru.bytes -= old.weight();
        }
        lru.bytes += weight;
        while lru.bytes > self.budget && lru.map.len() > 1 {
            let oldest = lru.map.iter().min_by_key(|(_, (_, used))| *used);
            let Some(oldest) = oldest.map(|(k, _)| *k) else {
                break;
            };
            if let Some((gone, _)) = lru.map.remove(&oldest) {
                lru.bytes -= gone.weight();
            }
        }
    }
}

/// What the package metadata behind one repository's indexes may weigh in all (Debian's
/// whole amd64 `Packages` is under 64 MiB). A small package uploaded many times is stored
/// once but listed once per copy: past this, the index is refused rather than made.
pub(crate) const MAX_INDEX_INPUT: usize = 64 << 20;

/// Why an index is not made: see [`MAX_INDEX_INPUT`].
#[derive(Debug, thiserror::Error)]
#[error(
    "the packages of this repository hold over {} MiB of metadata, more than an index is made from",
    MAX_INDEX_INPUT >> 20
)]
pub(crate) struct TooMuchMetadata;

/// Refuses packages whose metadata weigh `total` bytes in all, past [`MAX_INDEX_INPUT`].
pub(crate) fn check_index_input(total: usize) -> io::Result<()> {
    match total > MAX_INDEX_INPUT {
        true => Err(io::Error::other(TooMuchMetadata)),
        false => Ok(()),
    }
}

/// An index build's failure as the caller gets it: too much metadata is a refusal with its
/// reason, anything else what it was.
pub(crate) fn index_error(e: io::Error) -> StoreError {
    if e.get_ref()
        .is_some_and(|inner| inner.is::<TooMuchMetadata>())
    {
        StoreError::bad(e.to_string())
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Weigh for Vec<u8> {
        fn weight(&self) -> usize {
            self.len()
        }
    }

    fn indexes(size: usize) -> Vec<u8> {
        vec![b'x'; size]
    }

    #[test]
    fn a_key_is_built_once_and_the_least_recent_goes_first() {
        let cache = Cache::with_budget(300);
        let third = 101;
        for k in 0..2u8 {
            cache
                .get_or_build(Some([k; 32]), || Ok((indexes(third), true)))
                .unwrap();
        }
        // A hit: not built again, and now the most recent.
        cache
            .get_or_build(Some([0; 32]), || Ok((indexes(1), true)))
            .unwrap();
        assert_eq!(cache.builds(), 2);
        cache
            .get_or_build(Some([2; 32]), || Ok((indexes(third), true)))
            .unwrap();
        assert_eq!(cache.builds(), 3);
        let kept = |k: u8| cache.get(&[k; 32]).is_some();
        assert_eq!((kept(0), kept(1), kept(2)), (true, false, true));
        assert!(cache.making.lock().unwrap().is_empty());
        // No key, or not to be kept: built every time.
        cache.get_or_build(None, || Ok((indexes(1), true))).unwrap();
        cache.get_or_build(None, || Ok((indexes(1), true))).unwrap();
        cache
            .get_or_build(Some([3; 32]), || Ok((indexes(1), false)))
            .unwrap();
        cache
            .get_or_build(Some([3; 32]), || Ok((indexes(1), false)))
            .unwrap();
        assert_eq!(cache.builds(), 7);
    }

    #[test]
    fn an_entry_past_the_budget_is_kept_alone_not_made_per_request() {
        let cache = Cache::with_budget(100);
        cache
            .get_or_build(Some([1; 32]), || Ok((indexes(10), true)))
            .unwrap();
        for _ in 0..3 {
            cache
                .get_or_build(Some([2; 32]), || Ok((indexes(1000), true)))
                .unwrap();
        }
        assert_eq!(cache.builds(), 2);
        assert!(cache.get(&[1; 32]).is_none());
    }

    #[test]
    fn requests_that_miss_together_wait_for_one_build() {
        let cache = Cache::with_budget(300);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    cache
                        .get_or_build(Some([9; 32]), || {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok((indexes(1), true))
                        })
                        .unwrap()
                });
            }
        });
        assert_eq!(cache.builds(), 1);
        assert!(cache.making.lock().unwrap().is_empty());
    }
}
