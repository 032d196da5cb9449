//! The job page (spec/API.md §3.6).

use super::branches::plain;
use super::format::{FormatRow, format_rows};
use super::{Chrome, encode_segment, iso_time, pretty_time, render, timestamp_of};
use crate::http::reply::ApiResult;
use crate::model::{JobRef, Name, VersionRef};
use crate::storage::JobInfo;
use crate::storage::page_info::FormatSummary;
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
    /// The bundle's URL without the suffix of its encodings.
    pub bundle: String,
    /// The product version page, when the metadata names one.
    pub product: Option<(String, String)>,
    pub metadata: Vec<(String, String)>,
    pub formats: Vec<FormatRow>,
    /// How to fetch the job: the client, curl, and its image if it has one.
    pub fetch: Vec<super::snippet::Snippet>,
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
    base: &str,
) -> ApiResult {
    let image = formats.iter().any(|f| f.name == "container");
    let fetch = super::fetch::fetch_snippets(base, &super::fetch::Fetchable::job(j, image));
    let m = &info.entry.metadata;
    let ts = timestamp_of(&info.timestamp);
    let product = product_of(j, m);
    render(&JobPage {
        chrome,
        name: j.job.to_string(),
        locked: info.entry.locked,
        released: info.entry.released,
        internal: info.internal,
        time: pretty_time(ts),
        iso: iso_time(ts),
        digest: info.digest.clone(),
        bundle: format!("../{}", encode_segment(j.job.as_str())),
        product,
        metadata: m
            .iter()
            .filter(|(k, _)| !FIXED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), plain(v)))
            .collect(),
        formats: format_rows(formats),
        fetch,
    })
}

/// The version URL and label the job's product metadata points at.
fn product_of(j: &JobRef, m: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    let name = |k: &str| Name::parse(m.get(k)?.as_str()?).ok();
    let v = VersionRef::from_fields(&j.tag.branch.scope, name)?;
    let href = v
        .url()
        .split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/");
    Some((href, v.archive_name()))
}
