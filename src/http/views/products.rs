//! The products tree: products, product, variant, product branch and version pages
//! (spec/API.md §3.10, §9).

use super::branches::{AliasLink, alias_links};
use super::format::{FormatRow, format_rows};
use super::{Chrome, encode_segment, iso_time, natural_cmp, pretty_time, render, timestamp_of};
use crate::http::reply::ApiResult;
use crate::model::VersionRef;
use crate::storage::VersionSummary;
use crate::storage::page_info::FormatSummary;
use askama::Template;

#[derive(Template)]
#[template(path = "products.html")]
pub struct LevelPage {
    pub chrome: Chrome,
    /// What the page lists: "Products", "Variants", "Branches".
    pub heading: &'static str,
    pub name: String,
    pub children: Vec<(String, String)>,
}

/// `/products/`, `/products/{p}/`, `/products/{p}/{v}/`; `depth` is the number of segments.
pub fn level_page(chrome: Chrome, depth: usize, name: String, children: &[String]) -> ApiResult {
    let heading = match depth {
        0 => "Products",
        1 => "Variants",
        _ => "Product branches",
    };
    let mut children: Vec<(String, String)> = children
        .iter()
        .map(|c| (c.clone(), format!("{}/", encode_segment(c))))
        .collect();
    children.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    render(&LevelPage {
        chrome,
        heading,
        name,
        children,
    })
}

pub struct VersionRow {
    pub name: String,
    pub href: String,
    pub time: String,
    pub iso: String,
    pub locked: bool,
    pub released: bool,
    pub stable: bool,
}

#[derive(Template)]
#[template(path = "product_branch.html")]
pub struct ProductBranchPage {
    pub chrome: Chrome,
    /// `{product} {variant}, branch {name}`: the branch name alone (`1.x`) says little.
    pub heading: String,
    pub aliases: Vec<AliasLink>,
    pub versions: Vec<VersionRow>,
    /// The `sources.list` line of the branch's APT archive (docs/packages.md).
    pub snippets: Vec<super::snippet::Snippet>,
}

pub fn product_branch_page(
    mut chrome: Chrome,
    name: String,
    list: &[VersionSummary],
    snippets: Vec<super::snippet::Snippet>,
) -> ApiResult {
    // The page is `.../products/{p}/{v}/{name}/`: the crumbs before the last name the
    // product and the variant.
    let n = chrome.crumbs.len();
    let heading = match chrome.crumbs.get(n.saturating_sub(3)..n.saturating_sub(1)) {
        Some([p, v]) => format!("{} {}, branch {name}", p.label, v.label),
        _ => format!("Branch {name}"),
    };
    chrome.title = format!("{heading} — dlrepo");
    let mut versions: Vec<VersionRow> = list
        .iter()
        .map(|v| {
            let ts = timestamp_of(&v.timestamp);
            VersionRow {
                href: format!("{}/", encode_segment(&v.name)),
                name: v.name.clone(),
                time: pretty_time(ts),
                iso: iso_time(ts),
                locked: v.locked,
                released: v.released,
                stable: v.stable,
            }
        })
        .collect();
    versions.sort_by(|a, b| natural_cmp(&b.name, &a.name));
    let stable = versions.iter().filter(|v| v.stable).count();
    render(&ProductBranchPage {
        chrome,
        heading,
        aliases: alias_links(versions.len(), stable),
        versions,
        snippets,
    })
}

#[derive(Template)]
#[template(path = "version.html")]
pub struct VersionPage {
    pub chrome: Chrome,
    pub name: String,
    /// The bundle's URL without the suffix of its encodings.
    pub bundle: String,
    pub formats: Vec<FormatRow>,
    /// How to fetch the version: the client, curl, and its image if it has one.
    pub fetch: Vec<super::snippet::Snippet>,
}

pub fn version_page(
    chrome: Chrome,
    v: &VersionRef,
    formats: &[FormatSummary],
    base: &str,
) -> ApiResult {
    let image = formats.iter().any(|f| f.name == "container");
    let fetch = super::fetch::fetch_snippets(base, &super::fetch::Fetchable::version(v, image));
    let name = v.version.to_string();
    render(&VersionPage {
        chrome,
        bundle: format!("../{}", encode_segment(&name)),
        name,
        formats: format_rows(formats),
        fetch,
    })
}
