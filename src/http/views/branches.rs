//! Branches list, branch and tag pages (spec/API.md §3.3–3.5, §9).

use super::{Chrome, encode_segment, iso_time, natural_cmp, pretty_time, render, timestamp_of};
use crate::http::reply::ApiResult;
use crate::storage::{BranchInfo, BranchSummary, TagInfo};
use askama::Template;
use serde_json::Value;

pub struct BranchRow {
    pub name: String,
    pub href: String,
    pub daily: u64,
    pub released: u64,
    pub locked: u64,
    pub stable: u64,
}

#[derive(Template)]
#[template(path = "branches.html")]
pub struct BranchesPage {
    pub chrome: Chrome,
    pub branches: Vec<BranchRow>,
}

pub fn branches_page(chrome: Chrome, list: &[BranchSummary]) -> ApiResult {
    let mut branches: Vec<BranchRow> = list
        .iter()
        .map(|b| BranchRow {
            href: format!("{}/", encode_segment(&b.name)),
            name: b.name.clone(),
            daily: b.daily_tags,
            released: b.released_tags,
            locked: b.locked_tags,
            stable: b.stable_tags,
        })
        .collect();
    branches.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    render(&BranchesPage { chrome, branches })
}

/// A link to `latest/`, `stable/` or `oldstable/`.
pub struct AliasLink {
    pub name: &'static str,
    pub href: &'static str,
}

/// The alias links that resolve to something, given how many entries there are and how
/// many of them are stable (spec/API.md §4: `oldstable` is the second stable one).
pub fn alias_links(count: usize, stable: usize) -> Vec<AliasLink> {
    let mut out = Vec::new();
    if count > 0 {
        out.push(AliasLink {
            name: "latest",
            href: "latest/",
        });
    }
    if stable > 0 {
        out.push(AliasLink {
            name: "stable",
            href: "stable/",
        });
    }
    if stable > 1 {
        out.push(AliasLink {
            name: "oldstable",
            href: "oldstable/",
        });
    }
    out
}

pub struct TagRow {
    pub name: String,
    pub href: String,
    pub time: String,
    pub iso: String,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub published: bool,
    pub description: String,
}

#[derive(Template)]
#[template(path = "branch.html")]
pub struct BranchPage {
    pub chrome: Chrome,
    pub name: String,
    pub aliases: Vec<AliasLink>,
    pub policy: Vec<(String, String)>,
    pub tags: Vec<TagRow>,
}

pub fn branch_page(chrome: Chrome, info: &BranchInfo) -> ApiResult {
    let mut tags: Vec<TagRow> = info
        .tags
        .iter()
        .map(|t| {
            let ts = timestamp_of(&t.timestamp);
            TagRow {
                href: format!("{}/", encode_segment(&t.name)),
                name: t.name.clone(),
                time: pretty_time(ts),
                iso: iso_time(ts),
                released: t.released,
                locked: t.locked,
                stable: t.stable,
                published: t.publish_status.is_some(),
                description: t.description.clone().unwrap_or_default(),
            }
        })
        .collect();
    // Newest first: the natural order reversed, as dlrepo shows it.
    tags.sort_by(|a, b| natural_cmp(&b.name, &a.name));
    let stable = tags.iter().filter(|t| t.stable).count();
    render(&BranchPage {
        chrome,
        name: info.name.clone(),
        aliases: alias_links(tags.len(), stable),
        policy: info
            .cleanup_policy
            .iter()
            .map(|(k, v)| (k.replace('_', " "), plain(v)))
            .collect(),
        tags,
    })
}

/// A JSON value as page text: strings without quotes.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub struct JobRow {
    pub name: String,
    pub href: String,
    /// `{product}-{variant}-v{version}` when the job belongs to a product version.
    pub product: String,
    /// That version's page, relative to the tag page (so it stays in a user repository).
    pub product_href: String,
    pub locked: bool,
    pub released: bool,
}

#[derive(Template)]
#[template(path = "tag.html")]
pub struct TagPage {
    pub chrome: Chrome,
    pub name: String,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub publish_status: String,
    pub description: String,
    pub jobs: Vec<JobRow>,
    /// Some job is locked or released: the State column is shown.
    pub any_state: bool,
}

/// The product version page a job's metadata names, from its tag page
/// (`{scope}/branches/{b}/{t}/` up to `{scope}/`), when all four names are valid.
fn product_href(get: &dyn Fn(&str) -> String) -> Option<String> {
    let mut href = String::from("../../../products/");
    for key in crate::model::PRODUCT_KEYS {
        let name = crate::model::Name::parse(&get(key)).ok()?;
        href.push_str(&encode_segment(name.as_str()));
        href.push('/');
    }
    Some(href)
}

pub fn tag_page(chrome: Chrome, info: &TagInfo) -> ApiResult {
    let jobs = info
        .jobs
        .iter()
        .map(|j| {
            let get = |k: &str| j.metadata.get(k).map(plain).unwrap_or_default();
            let name = j.name.clone();
            let product = match (get("product"), get("product_variant"), get("version")) {
                (p, v, ver) if !p.is_empty() && !v.is_empty() && !ver.is_empty() => {
                    crate::storage::product_archive_name(&p, &v, &ver)
                }
                _ => String::new(),
            };
            JobRow {
                href: format!("{}/", encode_segment(&name)),
                name,
                product_href: product_href(&get).unwrap_or_default(),
                product,
                locked: j.locked,
                released: j.released,
            }
        })
        .collect::<Vec<JobRow>>();
    render(&TagPage {
        any_state: jobs.iter().any(|j| j.locked || j.released),
        chrome,
        name: info.name.clone(),
        released: info.released,
        locked: info.locked,
        stable: info.stable,
        publish_status: info.publish_status.clone().unwrap_or_default(),
        description: info.description.clone().unwrap_or_default(),
        jobs,
    })
}
