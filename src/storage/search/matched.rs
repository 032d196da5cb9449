//! Which interned strings a word or a glob matches, kept between queries: the interners
//! only grow, so a match over their first N strings stays true, and a later query only
//! tests the strings added since. A warm query thus never tests the tree's names again.

use super::index::Interner;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Matches kept; past this the cache starts again (each holds a bit per string).
const KEPT: usize = 256;

/// The table a pattern runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Names,
    Fields,
}

/// A pattern: a word (a substring of the lower-cased string) or a glob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Pattern {
    Word(String),
    Glob(String),
}

/// The ids of a table's strings a pattern matches, as a set and as a list.
#[derive(Default, Clone)]
pub(crate) struct Matched {
    /// How many strings of the table were tested.
    upto: usize,
    bits: Vec<u64>,
    pub ids: Vec<u32>,
}

impl Matched {
    pub fn has(&self, id: u32) -> bool {
        let i = id as usize;
        self.bits
            .get(i / 64)
            .is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    fn push(&mut self, id: usize) {
        if self.bits.len() <= id / 64 {
            self.bits.resize(id / 64 + 1, 0);
        }
        if let Some(w) = self.bits.get_mut(id / 64) {
            *w |= 1 << (id % 64);
        }
        self.ids.push(u32::try_from(id).unwrap_or(u32::MAX));
    }
}

#[derive(Default)]
pub(crate) struct MatchCache(Mutex<HashMap<(Table, Pattern), Arc<Matched>>>);

impl MatchCache {
    /// The strings of `strs` (the `table` of the index) that `test` accepts; `test` sees
    /// each string and its lower-cased form, and must be what `pattern` means.
    pub fn get(
        &self,
        table: Table,
        strs: &Interner,
        pattern: Pattern,
        test: impl Fn(&str, &str) -> bool,
    ) -> Arc<Matched> {
        let key = (table, pattern);
        let old = self.lock().get(&key).cloned();
        let len = strs.strs.len();
        if let Some(m) = &old
            && m.upto == len
        {
            return Arc::clone(m);
        }
        // Tested outside the lock: another query may do the same meanwhile, harmlessly.
        let mut m = old.map(|m| (*m).clone()).unwrap_or_default();
        for (id, (s, low)) in strs.strs.iter().enumerate().skip(m.upto) {
            if test(s, low) {
                m.push(id);
            }
        }
        m.upto = len;
        let m = Arc::new(m);
        let mut cache = self.lock();
        if cache.len() >= KEPT {
            cache.clear();
        }
        cache.insert(key, Arc::clone(&m));
        m
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Table, Pattern), Arc<Matched>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
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
        let word = || Pattern::Word("foo".into());
        let test = |_: &str, low: &str| low.contains("foo");
        assert_eq!(cache.get(Table::Names, &strs, word(), test).ids, [0]);
        strs.intern("FOO.txt");
        let m = cache.get(Table::Names, &strs, word(), test);
        assert_eq!(m.ids, [0, 2]);
        assert!(m.has(2) && !m.has(1) && !m.has(1000));
    }
}
