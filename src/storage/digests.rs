//! A format's `.digests` map: what it holds and which blob each file is
//! (spec/LAYOUT.md §3.5).

use super::files::{exists, read_json_map};
use serde_json::{Map, Value};
use std::path::Path;

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
