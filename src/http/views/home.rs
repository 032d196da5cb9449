//! `/` and `/~{user}/` (spec/API.md §3.1).

use super::{Chrome, encode_segment, iso_time, pretty_time, render, size_label};
use crate::http::reply::ApiResult;
use crate::storage::page_info::HomeInfo;
use askama::Template;

pub struct ReleaseRow {
    pub label: String,
    pub href: String,
    /// `/static/{product}.svg` when the deployment provides that icon.
    pub icon: Option<String>,
    pub time: String,
    pub iso: String,
}

pub struct Quota {
    pub used: String,
    pub quota: String,
    pub bytes: u64,
    pub max: u64,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub chrome: Chrome,
    pub user: Option<String>,
    pub branches: bool,
    pub products: bool,
    pub users: Vec<(String, String)>,
    pub show_releases: bool,
    pub releases: Vec<ReleaseRow>,
    pub quota: Option<Quota>,
    /// A signing key is configured: link `/pubkey` and `/pubkey.gpg`.
    pub pubkey: bool,
}

pub fn home_page(
    chrome: Chrome,
    user: Option<String>,
    info: &HomeInfo,
    show_releases: bool,
    quota: u64,
    pubkey: bool,
) -> ApiResult {
    let releases = info
        .releases
        .iter()
        .map(|r| {
            let v = &r.version;
            ReleaseRow {
                label: v.archive_name(),
                href: v
                    .url()
                    .split('/')
                    .map(encode_segment)
                    .collect::<Vec<_>>()
                    .join("/"),
                icon: r
                    .icon
                    .then(|| format!("/static/{}.svg", encode_segment(v.product.as_str()))),
                time: pretty_time(r.timestamp),
                iso: iso_time(r.timestamp),
            }
        })
        .collect();
    render(&HomePage {
        chrome,
        user,
        branches: info.branches,
        products: info.products,
        users: info
            .users
            .iter()
            .map(|u| (u.clone(), format!("/~{}/", encode_segment(u))))
            .collect(),
        show_releases,
        releases,
        quota: info.disk_usage.map(|used| Quota {
            used: size_label(used),
            quota: size_label(quota),
            bytes: used,
            max: quota,
        }),
        pubkey,
    })
}
