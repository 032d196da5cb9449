//! Which interned strings a word or a glob matches, kept between queries: the interners
//! only grow, so a match over their first N strings stays true, and a later query only
//! tests the strings added since. A warm query thus never tests the tree's names again,
//! and a cold one tests them in one regex pass over the interner's text (a word is a
//! literal: a SIMD substring search; a glob is anchored at the NULs between strings).

use hashbrown::HashTable;
use regex::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, PoisonError};

/// Strings stored once, named by a number. Never shrinks while the index lives (a rebuild
/// starts a new one).
///
/// Each string is kept once as given (`orig`) and once lower-cased (`text`), end to end,
/// and the table that finds a string's id holds only the id: a string costs its bytes
/// twice and about 20 bytes more. With a `HashMap<Box<str>, u32>` and a `Vec<Box<str>>`,
/// each string cost two allocations and their pointers more, about a quarter of the
/// whole index at 100,000 jobs (docs/search.md, "Memory").
#[derive(Default)]
pub(crate) struct Interner {
    ids: HashTable<u32>,
    hasher: RandomState,
    /// Every string as given, end to end; string `id` ends at `ends[id]`.
    orig: String,
    ends: Vec<usize>,
    /// Every string lower-cased, each followed by a NUL: a word or a glob is matched
    /// against all of them in one pass of a regex (SIMD literal search) over it.
    pub text: Vec<u8>,
    /// Where each string starts in `text`.
    pub starts: Vec<usize>,
}

/// String `id` of `orig`, whose strings end at `ends`.
fn nth<'a>(orig: &'a str, ends: &[usize], id: u32) -> &'a str {
    let i = id as usize;
    let start = match i.checked_sub(1) {
        Some(before) => ends.get(before).copied().unwrap_or(0),
        None => 0,
    };
    let end = ends.get(i).copied().unwrap_or(start);
    orig.get(start..end).unwrap_or("")
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        let hash = self.hasher.hash_one(s);
        let (orig, ends) = (&self.orig, &self.ends);
        if let Some(&id) = self.ids.find(hash, |&id| nth(orig, ends, id) == s) {
            return id;
        }
        let id = u32::try_from(self.ends.len()).unwrap_or(u32::MAX);
        self.orig.push_str(s);
        self.ends.push(self.orig.len());
        let (orig, ends, hasher) = (&self.orig, &self.ends, &self.hasher);
        self.ids
            .insert_unique(hash, id, |&id| hasher.hash_one(nth(orig, ends, id)));
        self.starts.push(self.text.len());
        self.text.extend_from_slice(s.to_lowercase().as_bytes());
        self.text.push(0);
        id
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The id of the string `text[at]` belongs to.
    pub fn id_at(&self, at: usize) -> u32 {
        let i = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        u32::try_from(i).unwrap_or(u32::MAX)
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        let (orig, ends) = (&self.orig, &self.ends);
        self.ids
            .find(self.hasher.hash_one(s), |&id| nth(orig, ends, id) == s)
            .copied()
    }

    pub fn str(&self, id: u32) -> &str {
        nth(&self.orig, &self.ends, id)
    }

    /// Every string, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).map(|id| self.str(u32::try_from(id).unwrap_or(u32::MAX)))
    }
}

/// What the kept matches may hold together, in bytes (docs/caches.md): past it the least
/// recently used go. A match is at most an eighth of a byte per string of its table (see
/// [`Matched`]): about 250 KiB on 2,000,000 names, so this keeps well over 100 of the
/// largest.
pub(crate) const MATCH_BUDGET: usize = 32 << 20;

/// The table a pattern runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Names,
    Fields,
}

/// A pattern: a word (a substring of the lower-cased string) or a glob (`*` any run of
/// characters, `?` one, case-insensitive). Made through [`Pattern::word`] and
/// [`Pattern::glob`], which give patterns that match alike the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Pattern {
    Word(String),
    Glob(String),
}

impl Pattern {
    pub fn word(w: &str) -> Pattern {
        Pattern::Word(w.to_lowercase())
    }

    /// The glob lower-cased, each run of `*` and `?` written as its `?`s then one `*` if it
    /// had any: `*` already crosses `/` (docs/search.md), so `**`, `*?*` and `?*` are one
    /// pattern each way they are spelled.
    pub fn glob(g: &str) -> Pattern {
        let mut out = String::with_capacity(g.len());
        let mut star = false;
        for c in g.to_lowercase().chars() {
            match c {
                '*' => star = true,
                '?' => out.push('?'),
                c => {
                    if std::mem::take(&mut star) {
                        out.push('*');
                    }
                    out.push(c);
                }
            }
        }
        if star {
            out.push('*');
        }
        Pattern::Glob(out)
    }

    fn weight(&self) -> usize {
        match self {
            Pattern::Word(s) | Pattern::Glob(s) => s.len(),
        }
    }

    /// The regex finding the pattern in an [`Interner`]'s text.
    fn regex(&self) -> Option<Regex> {
        let re = match self {
            Pattern::Word(w) => regex::escape(&w.to_lowercase()),
            Pattern::Glob(g) => {
                let mut re = String::from("^");
                for c in g.to_lowercase().chars() {
                    match c {
                        '*' => re.push_str("[^\\x00]*"),
                        '?' => re.push_str("[^\\x00]"),
                        c => re.push_str(&regex::escape(&c.to_string())),
                    }
                }
                re.push('$');
                re
            }
        };
        RegexBuilder::new(&re)
            .multi_line(true)
            .line_terminator(0)
            .case_insensitive(matches!(self, Pattern::Glob(_)))
            .build()
            .ok()
    }
}

/// The ids of a table's strings a pattern matches, held as whichever is smaller: their
/// list (4 bytes each) or a bit per string of the table. A match covering more than a
/// 32nd of the table is thus a bitset, at most an eighth of a byte per string however
/// many it covers (`name:*` on 400,000 names: 50 KiB, not 1.6 MiB of ids and a bitset).
#[derive(Default, Clone)]
pub(crate) struct Matched {
    /// How many strings of the table were tested.
    upto: usize,
    len: usize,
    set: Set,
}

#[derive(Clone)]
enum Set {
    /// Ascending.
    List(Vec<u32>),
    Bits(Vec<u64>),
}

impl Default for Set {
    fn default() -> Set {
        Set::List(Vec::new())
    }
}

impl Matched {
    pub fn has(&self, id: u32) -> bool {
        match &self.set {
            Set::List(ids) => ids.binary_search(&id).is_ok(),
            Set::Bits(bits) => {
                let i = id as usize;
                bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The ids, ascending.
    pub fn ids(&self) -> Box<dyn Iterator<Item = u32> + '_> {
        match &self.set {
            Set::List(ids) => Box::new(ids.iter().copied()),
            Set::Bits(bits) => Box::new(bits.iter().enumerate().flat_map(|(w, &word)| {
                let base = u32::try_from(w * 64).unwrap_or(u32::MAX);
                let mut word = word;
                std::iter::from_fn(move || {
                    let b = (word != 0).then(|| word.trailing_zeros())?;
                    word &= word - 1;
                    Some(base.saturating_add(b))
                })
            })),
        }
    }

    /// Bytes held, roughly.
    fn weight(&self) -> usize {
        64 + match &self.set {
            Set::List(ids) => ids.capacity() * 4,
            Set::Bits(bits) => bits.capacity() * 8,
        }
    }

    fn push(&mut self, id: u32) {
        let i = id as usize;
        match &mut self.set {
            Set::List(ids) => ids.push(id),
            Set::Bits(bits) => {
                if bits.len() <= i / 64 {
                    bits.resize(i / 64 + 1, 0);
                }
                if let Some(w) = bits.get_mut(i / 64) {
                    *w |= 1 << (i % 64);
                }
            }
        }
        self.len += 1;
    }

    /// Holds the ids the smaller way for a table of `upto` strings.
    fn compact(&mut self) {
        let dense = self.len.saturating_mul(32) > self.upto;
        match (&mut self.set, dense) {
            (Set::List(ids), true) => {
                let mut bits = vec![0u64; self.upto.div_ceil(64)];
                for &id in ids.iter() {
                    if let Some(w) = bits.get_mut(id as usize / 64) {
                        *w |= 1 << (id % 64);
                    }
                }
                self.set = Set::Bits(bits);
            }
            (Set::Bits(_), false) => self.set = Set::List(self.ids().collect()),
            (Set::List(ids), false) => ids.shrink_to_fit(),
            (Set::Bits(_), true) => {}
        }
    }
}

/// The matches kept, each with its weight and when it was last used.
#[derive(Default)]
struct Kept {
    map: HashMap<(Table, Pattern), (Arc<Matched>, usize, u64)>,
    bytes: usize,
    tick: u64,
    /// Strings tested by regex passes, all told (tests count work with it).
    tested: usize,
}

pub(crate) struct MatchCache {
    budget: usize,
    kept: Mutex<Kept>,
}

impl Default for MatchCache {
    fn default() -> MatchCache {
        MatchCache::with_budget(MATCH_BUDGET)
    }
}

impl MatchCache {
    pub fn with_budget(budget: usize) -> MatchCache {
        MatchCache {
            budget,
            kept: Mutex::default(),
        }
    }

    /// The ids of the strings of `strs` (the `table` of the index) that `pattern` matches.
    pub fn get(&self, table: Table, strs: &Interner, pattern: Pattern) -> Arc<Matched> {
        let key = (table, pattern);
        let old = {
            let mut kept = self.lock();
            kept.tick += 1;
            let tick = kept.tick;
            kept.map.get_mut(&key).map(|(m, _, used)| {
                *used = tick;
                Arc::clone(m)
            })
        };
        let len = strs.len();
        if let Some(m) = &old
            && m.upto == len
        {
            return Arc::clone(m);
        }
        // Tested outside the lock: another query may do the same meanwhile, harmlessly.
        let mut m = old.map(|m| (*m).clone()).unwrap_or_default();
        let from = strs.starts.get(m.upto).copied().unwrap_or(strs.text.len());
        let text = strs.text.get(from..).unwrap_or_default();
        let mut last = None;
        for found in key.1.regex().iter().flat_map(|re| re.find_iter(text)) {
            let id = strs.id_at(from + found.start());
            if last != Some(id) && (id as usize) < len {
                m.push(id);
                last = Some(id);
            }
        }
        let tested = len - m.upto;
        m.upto = len;
        m.compact();
        let m = Arc::new(m);
        self.keep(key, &m, tested);
        m
    }

    fn keep(&self, key: (Table, Pattern), m: &Arc<Matched>, tested: usize) {
        let weight = m.weight() + key.1.weight() + 64;
        let mut kept = self.lock();
        kept.tested += tested;
        if let Some((_, w, _)) = kept.map.remove(&key) {
            kept.bytes -= w;
        }
        if weight > self.budget / 2 {
            // One match may not push out all the others; it is made again each time.
            return;
        }
        kept.tick += 1;
        let tick = kept.tick;
        kept.map.insert(key, (Arc::clone(m), weight, tick));
        kept.bytes += weight;
        while kept.bytes > self.budget {
            let Some(oldest) = kept
                .map
                .iter()
                .min_by_key(|(_, (_, _, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((_, w, _)) = kept.map.remove(&oldest) {
                kept.bytes -= w;
            }
        }
    }

    /// Bytes held by the estimate, matches kept and strings tested so far (tests).
    #[cfg(test)]
    pub fn stats(&self) -> (usize, usize, usize) {
        let kept = self.lock();
        (kept.bytes, kept.map.len(), kept.tested)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_match_grows_with_its_table() {
        let mut strs = Interner::default();
        strs.intern("libfoo.so");
        strs.intern("bar");
        let cache = MatchCache::default();
        let word = || Pattern::word("foo");
        let ids = |m: &Matched| m.ids().collect::<Vec<u32>>();
        assert_eq!(ids(&cache.get(Table::Names, &strs, word())), [0]);
        strs.intern("FOO.txt");
        let m = cache.get(Table::Names, &strs, word());
        assert_eq!(ids(&m), [0, 2]);
        assert!(m.has(2) && !m.has(1) && !m.has(1000));
    }

    #[test]
    fn globs_hold_to_one_string() {
        let mut strs = Interner::default();
        for s in [
            "pool/a/libFOO_1.deb",
            "x.deb",
            "deb",
            "a.deb.txt",
            "my file+(1).deb",
        ] {
            strs.intern(s);
        }
        let cache = MatchCache::default();
        let glob = |g: &str| {
            cache
                .get(Table::Names, &strs, Pattern::glob(g))
                .ids()
                .collect::<Vec<u32>>()
        };
        assert_eq!(glob("*.deb"), [0, 1, 4]);
        assert_eq!(glob("pool/*/libfoo*"), [0]);
        assert_eq!(glob("?.DEB"), [1]);
        assert_eq!(glob("my file+(1)*"), [4]);
        assert_eq!(glob("*"), [0, 1, 2, 3, 4]);
        assert!(glob("deb.txt").is_empty());
    }

    fn names(n: usize) -> Interner {
        let mut strs = Interner::default();
        for i in 0..n {
            strs.intern(&format!("pool/main/lib{i}_1.0.deb"));
        }
        strs
    }

    #[test]
    fn globs_that_match_alike_are_one_match() {
        let strs = names(1000);
        let cache = MatchCache::default();
        let all: Vec<Vec<u32>> = ["*", "**", "***", "*", "**?*", "?*"]
            .iter()
            .map(|g| {
                cache
                    .get(Table::Names, &strs, Pattern::glob(g))
                    .ids()
                    .collect()
            })
            .collect();
        assert!(all.iter().all(|ids| ids.len() == 1000));
        // `*`, `**` and `***` one regex pass; `**?*` and `?*` (one character at least)
        // another, over the 1,000 names.
        let (_, kept, tested) = cache.stats();
        assert_eq!((kept, tested), (2, 2000));
        assert_eq!(Pattern::glob("A**b*?**c"), Pattern::glob("a*b?*c"));
        assert_ne!(Pattern::glob("a*b"), Pattern::glob("a?b"));
    }

    #[test]
    fn wide_matches_are_bitsets_and_the_cache_keeps_to_its_budget() {
        let strs = names(8_000);
        let cache = MatchCache::with_budget(16 << 10);
        // Every name: a bit each (1,000 bytes), not a 4-byte id each (32,000 bytes).
        let every = cache.get(Table::Names, &strs, Pattern::glob("*"));
        assert_eq!(every.ids().count(), 8_000);
        assert!(every.has(7_999) && !every.has(8_000));
        assert!(every.weight() < 1_200, "{}", every.weight());
        // Few matches: their ids.
        let few = cache.get(Table::Names, &strs, Pattern::word("lib1234_"));
        assert_eq!(few.ids().collect::<Vec<_>>(), [1234]);
        assert!(few.weight() < 100);
        for i in 0..40 {
            cache.get(Table::Names, &strs, Pattern::glob(&format!("*{i}_*")));
            assert!(cache.stats().0 <= 16 << 10, "{:?}", cache.stats());
        }
        let (_, kept, _) = cache.stats();
        assert!((10..40).contains(&kept), "{kept} kept");
    }

    /// Each string gets one id for good, and reads back as given, across the table's growth.
    #[test]
    fn the_interner_gives_each_string_one_id_and_reads_it_back() {
        let mut strs = Interner::default();
        let words: Vec<String> = (0..10_000).map(|i| format!("Name-{i}")).collect();
        let ids: Vec<u32> = words.iter().map(|w| strs.intern(w)).collect();
        assert_eq!(ids, (0..10_000).collect::<Vec<u32>>());
        for (w, &id) in words.iter().zip(&ids) {
            assert_eq!(strs.intern(w), id, "a second intern of {w}");
            assert_eq!(strs.get(w), Some(id));
            assert_eq!(strs.str(id), w);
        }
        assert_eq!(strs.len(), 10_000);
        assert_eq!(strs.get("name-1"), None, "ids are for the string as given");
        let empty = strs.intern("");
        assert_eq!(
            (strs.str(empty), strs.get(""), strs.str(u32::MAX)),
            ("", Some(empty), "")
        );
        // The lower-cased text the patterns run over, one NUL after each string.
        let at = strs.starts[7];
        assert_eq!(&strs.text[at..at + 7], b"name-7\0");
        assert_eq!(strs.id_at(at + 3), 7);
        assert!(strs.iter().take(3).eq(["Name-0", "Name-1", "Name-2"]));
    }
}
