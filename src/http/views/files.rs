//! The job page and the autoindex of format directories (spec/API.md §3.6, §3.8–3.9).

use super::format::{FormatRow, format_rows};
use super::tree::plain;
use super::{Chrome, encode_segment, iso_time, pretty_time, render, timestamp_of};
use crate::http::reply::ApiResult;
use crate::model::{JobRef, Name, VersionRef};
use crate::storage::JobInfo;
use crate::storage::pages::{DirEntry, FormatSummary};
use crate::storage::quota::human_readable;
use askama::Template;
use serde_json::Value;

#[derive(Template)]
#[template(path = "job.html")]
pub struct JobPage {
    pub chrome: Chrome,
    pub name: String,
    pub locked: bool,
    pub released: bool,
    pub internal: bool,
    pub time: String,
    pub iso: String,
    pub digest: String,
    pub tar: String,
    /// The product version page, when the metadata names one.
    pub product: Option<(String, String)>,
    pub metadata: Vec<(String, String)>,
    pub formats: Vec<FormatRow>,
}

/// Keys shown in their own place rather than in the metadata table.
const FIXED: [&str; 7] = [
    "locked",
    "name",
    "released",
    "internal",
    "timestamp",
    "digest",
    "artifact_formats",
];

pub fn job_page(
    chrome: Chrome,
    j: &JobRef,
    info: &JobInfo,
    formats: &[FormatSummary],
) -> ApiResult {
    let m = &info.0;
    let flag = |k: &str| m.get(k) == Some(&Value::Bool(true));
    let text = |k: &str| m.get(k).map(plain).unwrap_or_default();
    let ts = m.get("timestamp").map_or(0.0, timestamp_of);
    let product = product_of(j, m);
    render(&JobPage {
        chrome,
        name: j.job.to_string(),
        locked: flag("locked"),
        released: flag("released"),
        internal: flag("internal"),
        time: pretty_time(ts),
        iso: iso_time(ts),
        digest: text("digest"),
        tar: format!("../{}.tar", encode_segment(j.job.as_str())),
        product,
        metadata: m
            .iter()
            .filter(|(k, _)| !FIXED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), plain(v)))
            .collect(),
        formats: format_rows(formats),
    })
}

/// The version URL and label the job's product metadata points at.
fn product_of(j: &JobRef, m: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    let name = |k: &str| {
        m.get(k)
            .and_then(Value::as_str)
            .and_then(|s| Name::parse(s).ok())
    };
    let v = VersionRef {
        scope: j.tag.branch.scope.clone(),
        product: name("product")?,
        variant: name("product_variant")?,
        product_branch: name("product_branch")?,
        version: name("version")?,
    };
    let href = v
        .url()
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/");
    Some((href, v.archive_name()))
}

pub struct EntryRow {
    pub name: String,
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
    /// At the format root: the `.tar` and `.sha256` links of the format.
    pub archive: Option<(String, String)>,
    pub entries: Vec<EntryRow>,
}

/// `format` is the format name at the format root, `None` below it.
pub fn autoindex_page(
    chrome: Chrome,
    heading: String,
    format: Option<&str>,
    entries: &[DirEntry],
) -> ApiResult {
    let archive = format.map(|f| {
        let seg = encode_segment(f);
        (format!("../{seg}.tar"), format!("../{seg}.sha256"))
    });
    let entries = entries
        .iter()
        .map(|e| {
            let seg = encode_segment(&e.name);
            let digest = e.digest.clone().unwrap_or_default();
            EntryRow {
                href: if e.dir {
                    format!("{seg}/")
                } else {
                    seg.clone()
                },
                name: if e.dir {
                    format!("{}/", e.name)
                } else {
                    e.name.clone()
                },
                dir: e.dir,
                size: if e.dir {
                    String::new()
                } else {
                    human_readable(e.size)
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
    })
}
