//! The autoindex of format directories and of directories below them (spec/API.md §3.8–3.9).

use super::snippet::Snippet;
use super::{Chrome, encode_segment, name_pieces, render, size_label};
use crate::http::reply::ApiResult;
use crate::storage::page_info::DirEntry;
use askama::Template;

pub struct EntryRow {
    /// The name (`/` ends a directory's), cut where the page may break it
    /// (see [`name_pieces`]).
    pub pieces: Vec<String>,
    pub href: String,
    pub dir: bool,
    pub size: String,
    pub bytes: u64,
    pub digest: String,
    /// `{name}.sha256`, when the file has a sha256 digest.
    pub sha256: String,
}

#[derive(Template)]
#[template(path = "autoindex.html")]
pub struct AutoindexPage {
    pub chrome: Chrome,
    pub heading: String,
    /// At the format root: the format's bundle (without the suffix of its encodings) and
    /// its `.sha256`.
    pub archive: Option<(String, String)>,
    pub entries: Vec<EntryRow>,
    /// At the root of a format: how to fetch it, and if it is a package repository, how
    /// to use that.
    pub fetch: Vec<Snippet>,
    pub snippets: Vec<Snippet>,
}

/// `format` is the format name at the format root, `None` below it.
pub fn autoindex_page(
    chrome: Chrome,
    heading: String,
    format: Option<&str>,
    entries: &[DirEntry],
    fetch: Vec<Snippet>,
    snippets: Vec<Snippet>,
) -> ApiResult {
    let archive = format.map(|f| {
        let seg = encode_segment(f);
        (format!("../{seg}"), format!("../{seg}.sha256"))
    });
    let entries = entries
        .iter()
        .map(|e| {
            let seg = encode_segment(&e.name);
            let digest = e.digest.clone().unwrap_or_default();
            let name = if e.dir {
                format!("{}/", e.name)
            } else {
                e.name.clone()
            };
            EntryRow {
                href: if e.dir {
                    format!("{seg}/")
                } else {
                    seg.clone()
                },
                pieces: name_pieces(&name),
                dir: e.dir,
                size: if e.dir {
                    String::new()
                } else {
                    size_label(e.size)
                },
                bytes: e.size,
                sha256: if digest.starts_with("sha256:") {
                    format!("{seg}.sha256")
                } else {
                    String::new()
                },
                digest,
            }
        })
        .collect();
    render(&AutoindexPage {
        chrome,
        heading,
        archive,
        entries,
        fetch,
        snippets,
    })
}
