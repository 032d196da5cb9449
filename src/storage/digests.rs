//! A format's `.digests` map: what it holds and which blob each file is
//! (spec/LAYOUT.md §3.5).

use super::files::{self, exists, read_json_map};
use super::stamp_cache::{Stamp, Stamps, Weigh, now_ns};
use super::{Repo, StoreError};
use crate::pyjson;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;

/// The `.digests` map of a format, or for a container format without one, a map made up
/// from its files (spec/LAYOUT.md §3.5). Keys come out sorted.
pub(crate) fn format_digests(fdir: &Path) -> Map<String, Value> {
    let path = fdir.join(".digests");
    if exists(&path) || fdir.file_name().is_none_or(|n| n != "container") {
        let mut m = read_json_map(&path);
        m.sort_keys();
        return m;
    }
    let mut m = Map::new();
    for entry in walkdir::WalkDir::new(fdir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(fdir) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        if rel == ".digests" || rel == ".dirty" {
            continue;
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        m.insert(rel.to_owned(), format!("sha256:{base}").into());
    }
    m.sort_keys();
    m
}

/// A format's own timestamp: when its `.digests` was last written (every upload, overwrite
/// and post-process rewrites it), else the directory's. Its bundles and the `Last-Modified`
/// of its files use it, never a file's mtime, which is its blob's and moves whenever the
/// same content is uploaded or asked for by digest anywhere.
pub(crate) fn format_time(fdir: &Path) -> Result<f64, StoreError> {
    let stat = |p: &Path| files::retry_stale(|| fs::metadata(p));
    // A format deleted meanwhile is a 404, as a missing one is.
    stat(&fdir.join(".digests"))
        .or_else(|_| stat(fdir))
        .map(|m| files::mtime_of(&m))
        .map_err(super::not_found_if_missing)
}

/// A format's `.digests` as downloads and listings need it: each file, in name order, with
/// the digest it is stored under, and the time its files are served with ([`format_time`]).
#[derive(Debug, Default)]
pub(crate) struct Listed {
    /// Sorted by name, as [`format_digests`] gives them; `None` for an entry whose value
    /// is not a string.
    entries: Vec<(String, Option<String>)>,
    time: f64,
}

impl Listed {
    /// The digest `.digests` gives for the file at `rel`, if it names one.
    pub fn digest(&self, rel: &str) -> Option<&str> {
        let at = self
            .entries
            .binary_search_by(|(name, _)| name.as_str().cmp(rel))
            .ok()?;
        self.entries[at].1.as_deref()
    }

    /// Every file and its digest, in name order.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (&str, Option<&str>)> {
        self.entries.iter().map(|(n, d)| (n.as_str(), d.as_deref()))
    }

    /// The format's time (seconds since the epoch), for its listed files.
    pub fn time(&self) -> f64 {
        self.time
    }
}

impl Weigh for Listed {
    fn weight(&self) -> usize {
        let entries: usize = self
            .entries
            .iter()
            .map(|(k, v)| 56 + k.len() + v.as_ref().map_or(0, String::len))
            .sum();
        128 + entries
    }
}

/// What the kept `.digests` may hold: about 170 bytes a file, so a format of up to about
/// 50,000 files is kept (an answer larger than half a budget is read every time).
pub(crate) const LISTED_BUDGET: usize = 16 << 20;

impl Repo {
    /// The `.digests` of the format at `fdir`, kept by the format directory's stamp
    /// (docs/caches.md): `.digests` is only ever replaced by a rename into that directory.
    /// Reading and parsing it for every download cost a format of 2,000 files four fifths of
    /// its small-file rate.
    pub(crate) fn listed(&self, fdir: &Path) -> Result<Arc<Listed>, StoreError> {
        self.listed_cache.get_or_read(fdir, || read_listed(fdir))
    }
}

fn read_listed(fdir: &Path) -> Result<(Listed, Stamps), StoreError> {
    let read_ns = now_ns();
    let top = Stamp::of(fdir);
    let has_file = exists(&fdir.join(".digests"));
    let entries = format_digests(fdir)
        .into_iter()
        .map(|(rel, d)| match d {
            Value::String(d) => (rel, Some(d)),
            _ => (rel, None),
        })
        .collect();
    let time = format_time(fdir)?;
    // A container format without `.digests` is made up from the files of directories
    // below, whose changes its stamp does not show: never kept.
    let stamps = Stamps::new(read_ns, top.filter(|_| has_file));
    Ok((Listed { entries, time }, stamps))
}

/// A `.digests` being rewritten, with each entry's JSON text kept beside the map: writing it
/// again joins the texts rather than encoding and sorting every entry, which made a burst of
/// small uploads into one format cost O(n²) encoding (issue 16's 2,000-file upload).
pub(crate) struct Digests {
    map: Map<String, Value>,
    /// `"key": value` per key, in key order: the order `json.dumps(sort_keys=True)` writes.
    texts: BTreeMap<String, String>,
}

impl Digests {
    pub(crate) fn new(map: Map<String, Value>) -> Digests {
        let texts = map.iter().map(|(k, v)| (k.clone(), entry(k, v))).collect();
        Digests { map, texts }
    }

    pub(crate) fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    pub(crate) fn insert(&mut self, key: &str, value: Value) {
        self.texts.insert(key.to_owned(), entry(key, &value));
        self.map.insert(key.to_owned(), value);
    }

    /// The file's text, as [`pyjson::object_to_string_sorted`] writes the map.
    pub(crate) fn text(&self) -> String {
        let len: usize = self.texts.values().map(|t| t.len() + 2).sum();
        let mut out = String::with_capacity(len + 2);
        out.push('{');
        for (i, text) in self.texts.values().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str(text);
        }
        out.push('}');
        out
    }
}

fn entry(key: &str, value: &Value) -> String {
    let key = pyjson::to_string(&Value::String(key.to_owned()));
    format!("{key}: {}", pyjson::to_string_sorted(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_what_the_sorted_encoder_writes() {
        let start: Map<String, Value> = serde_json::from_str(
            r#"{"z": "sha256:1", "a/b": "sha256:2", "é": "sha256:3", "q\"x": {"n": [1, 2.5]}}"#,
        )
        .unwrap();
        let mut d = Digests::new(Map::new());
        assert_eq!(d.text(), pyjson::object_to_string_sorted(d.map()));
        d = Digests::new(start);
        assert_eq!(d.text(), pyjson::object_to_string_sorted(d.map()));
        for (k, v) in [("a/b", "sha256:9"), ("m\n", "sha256:4"), ("\u{1F600}", "x")] {
            d.insert(k, v.into());
            assert_eq!(d.text(), pyjson::object_to_string_sorted(d.map()));
        }
    }
}
