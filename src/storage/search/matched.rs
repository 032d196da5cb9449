//! Which interned strings a word or a glob matches, kept between queries: the interners
//! only grow, so a match over their first N strings stays true, and a later query only
//! tests the strings added since. A warm query thus never tests the tree's names again,
//! and a cold one tests them in one regex pass over the interner's text (a word is a
//! literal: a SIMD substring search; a glob is anchored at the NULs between strings).

use regex::bytes::{Regex, RegexBuilder};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Strings stored once, named by a number. Never shrinks while the index lives (a rebuild
/// starts a new one).
#[derive(Default)]
pub(crate) struct Interner {
    ids: HashMap<Box<str>, u32>,
    pub strs: Vec<Box<str>>,
    /// Every string lower-cased, each followed by a NUL: a word or a glob is matched
    /// against all of them in one pass of a regex (SIMD literal search) over it.
    pub text: Vec<u8>,
    /// Where each string starts in `text`.
    pub starts: Vec<usize>,
}

impl Interner {
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = u32::try_from(self.strs.len()).unwrap_or(u32::MAX);
        self.ids.insert(s.into(), id);
        self.strs.push(s.into());
        self.starts.push(self.text.len());
        self.text.extend_from_slice(s.to_lowercase().as_bytes());
        self.text.push(0);
        id
    }

    pub fn len(&self) -> usize {
        self.strs.len()
    }

    /// The id of the string `text[at]` belongs to.
    pub fn id_at(&self, at: usize) -> u32 {
        let i = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        u32::try_from(i).unwrap_or(u32::MAX)
    }

    pub fn get(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn str(&self, id: u32) -> &str {
        self.strs.get(id as usize).map_or("", |s| s)
    }
}

/// Matches kept; past this the cache starts again (each holds a bit per string).
const KEPT: usize = 256;

/// The table a pattern runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Table {
    Names,
    Fields,
}

/// A pattern: a word (a substring of the lower-cased string) or a glob (`*` any run of
/// characters, `?` one, case-insensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Pattern {
    Word(String),
    Glob(String),
}

impl Pattern {
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
    /// The ids of the strings of `strs` (the `table` of the index) that `pattern` matches.
    pub fn get(&self, table: Table, strs: &Interner, pattern: Pattern) -> Arc<Matched> {
        let old = self.lock().get(&(table, pattern.clone())).cloned();
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
        for found in pattern.regex().iter().flat_map(|re| re.find_iter(text)) {
            let id = strs.id_at(from + found.start());
            if last != Some(id) && (id as usize) < len {
                m.push(id as usize);
                last = Some(id);
            }
        }
        m.upto = len;
        let m = Arc::new(m);
        let mut cache = self.lock();
        if cache.len() >= KEPT {
            cache.clear();
        }
        cache.insert((table, pattern), Arc::clone(&m));
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
        assert_eq!(cache.get(Table::Names, &strs, word()).ids, [0]);
        strs.intern("FOO.txt");
        let m = cache.get(Table::Names, &strs, word());
        assert_eq!(m.ids, [0, 2]);
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
                .get(Table::Names, &strs, Pattern::Glob(g.into()))
                .ids
                .clone()
        };
        assert_eq!(glob("*.deb"), [0, 1, 4]);
        assert_eq!(glob("pool/*/libfoo*"), [0]);
        assert_eq!(glob("?.DEB"), [1]);
        assert_eq!(glob("my file+(1)*"), [4]);
        assert_eq!(glob("*"), [0, 1, 2, 3, 4]);
        assert!(glob("deb.txt").is_empty());
    }
}
