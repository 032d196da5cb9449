//! The HTML side of content negotiation (spec/API.md §1.3, §9): askama page structs over
//! the same data the JSON answers carry. Templates live in `templates/` at the crate root,
//! are compiled in, and do no I/O; everything they print is prepared here as plain strings.

mod autoindex;
mod branches;
mod error;
mod fetch;
mod format;
mod home;
mod job;
mod packages;
mod products;
mod snippet;

pub use autoindex::autoindex_page;
pub use branches::{branch_page, branches_page, tag_page};
pub use error::error_page;
pub use fetch::{Fetchable, fetch_snippets};
pub use home::home_page;
pub use job::job_page;
pub use packages::repo_snippets;
pub use products::{level_page, product_branch_page, version_page};

use super::reply::ApiError;
use crate::config::Config;
use askama::Template;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// HTML when `Accept` contains `html`, case-sensitively; a missing header means JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.as_bytes().windows(4).any(|w| w == b"html"))
}

/// Settings the page layer cannot honour; called once at start-up.
pub fn warn_unsupported_settings(config: &Config) {
    if let Some(dir) = &config.templates_dir {
        tracing::warn!(
            "DLREPO_TEMPLATES_DIR={} is ignored: arbor's templates are compiled in; \
             restyle the pages with DLREPO_STATIC_DIR (see docs/pages.md)",
            dir.display()
        );
    }
}

/// One step of the breadcrumb trail; the last one is the current page and has no link.
#[derive(Debug, Clone)]
pub struct Crumb {
    pub label: String,
    pub href: Option<String>,
}

/// What every page shows around its content: title, breadcrumbs, who is logged in.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    pub crumbs: Vec<Crumb>,
    pub login: Option<String>,
}

impl Chrome {
    /// The trail for an absolute URL path such as `/~bob/branches/main/t1/`: one crumb per
    /// segment, each linking to its own directory URL.
    pub fn for_path(path: &str, login: Option<String>) -> Chrome {
        let mut crumbs = vec![Crumb {
            label: "home".into(),
            href: Some("/".into()),
        }];
        let mut url = String::from("/");
        for seg in path.split('/').filter(|s| !s.is_empty()) {
            url.push_str(&encode_segment(seg));
            url.push('/');
            crumbs.push(Crumb {
                label: seg.to_owned(),
                href: Some(url.clone()),
            });
        }
        if let Some(last) = crumbs.last_mut() {
            last.href = None;
        }
        let title = match crumbs.last() {
            Some(c) if crumbs.len() > 1 => format!("{} — dlrepo", c.label),
            _ => "dlrepo".to_owned(),
        };
        Chrome {
            title,
            crumbs,
            login,
        }
    }
}

/// Renders a page as a 200 `text/html` answer.
pub fn render(page: &impl Template) -> Result<Response, ApiError> {
    let body = page.render().map_err(|e| ApiError::Internal(Box::new(e)))?;
    Ok(html_response(body))
}

/// Every page, error pages included, goes out with the strict page policy (spec/API.md Q51).
pub(crate) fn html_response(body: String) -> Response {
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    super::security::protect_page(res.headers_mut());
    res
}

/// A name as a relative link segment. A leading `.`/`~` never occurs in entity names, but
/// artifact names may contain `:`, which would read as a scheme: `./` guards it.
pub fn encode_segment(name: &str) -> String {
    let enc = crate::model::escape::segment(name);
    if enc.contains(':') {
        format!("./{enc}")
    } else {
        enc
    }
}

/// dlrepo's `pretty_time`: `%Y %b %d, %H:%M:%S UTC`, `n/a` for a missing time.
pub fn pretty_time(t: f64) -> String {
    match civil(t) {
        Some((y, mo, d, h, mi, s)) => {
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let month = MONTHS.get(mo as usize - 1).copied().unwrap_or("???");
            format!("{y} {month} {d:02}, {h:02}:{mi:02}:{s:02} UTC")
        }
        None => "n/a".into(),
    }
}

/// The same instant for `<time datetime>`; empty when there is none.
pub fn iso_time(t: f64) -> String {
    match civil(t) {
        Some((y, mo, d, h, mi, s)) => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        None => String::new(),
    }
}

/// UTC calendar fields of a Unix time (Howard Hinnant's days-to-civil); `None` for 0.
fn civil(t: f64) -> Option<(i64, u32, u32, u32, u32, u32)> {
    if !t.is_finite() || t <= 0.0 {
        return None;
    }
    let secs = t.floor() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    let rem = rem as u32;
    Some((y, m, d, rem / 3600, rem / 60 % 60, rem % 60))
}

/// A byte count for people, with its unit: `6 B`, `2.5 kB`, `1.2 GB` (decimal units, as
/// dlrepo's bare `6.0`/`2.5K`; the exact count goes in the markup beside it).
pub fn size_label(n: u64) -> String {
    if n < 1000 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = "B";
    for u in ["kB", "MB", "GB", "TB", "PB"] {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    if value < 100.0 {
        format!("{value:.1} {unit}")
    } else {
        format!("{value:.0} {unit}")
    }
}

/// A file name cut into pieces after each `.`, `-`, `_` or `+`, so that a page may break
/// it there (`<wbr>`) at phone width rather than in the middle of a word.
pub fn name_pieces(name: &str) -> Vec<String> {
    let mut pieces = vec![String::new()];
    for c in name.chars() {
        if let Some(last) = pieces.last_mut() {
            last.push(c);
        }
        if matches!(c, '.' | '-' | '_' | '+') {
            pieces.push(String::new());
        }
    }
    pieces.retain(|p| !p.is_empty());
    pieces
}

/// A JSON timestamp (`float`, or the integer 0 when `.stamp` is missing) as seconds.
pub fn timestamp_of(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// dlrepo's `semantic_sort` order: split on `.`, `-`, `_`; numbers compare as numbers and
/// sort before text; text compares case-insensitively. `1.10` comes after `1.9`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let split = |s: &str| -> Vec<String> {
        s.split(['.', '-', '_'])
            .map(str::to_lowercase)
            .collect::<Vec<_>>()
    };
    let (pa, pb) = (split(a), split(b));
    for (x, y) in pa.iter().zip(pb.iter()) {
        let ord = match (num(x), num(y)) {
            (Some(m), Some(n)) => m.cmp(&n).then_with(|| x.len().cmp(&y.len())),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len()).then_with(|| a.cmp(b))
}

/// A numeric part; `u128` so long build numbers do not overflow.
fn num(s: &str) -> Option<u128> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_only_when_accept_says_so() {
        let mut h = HeaderMap::new();
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(!wants_html(&h));
        h.insert(header::ACCEPT, HeaderValue::from_static("text/HTML"));
        assert!(!wants_html(&h), "the test is case-sensitive");
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(&h));
    }

    #[test]
    fn times_are_utc() {
        assert_eq!(pretty_time(0.0), "n/a");
        assert_eq!(pretty_time(1_795_315_711.12), "2026 Nov 22, 02:48:31 UTC");
        assert_eq!(iso_time(951_782_400.0), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn sizes_have_units() {
        let labels: Vec<String> = [0, 6, 999, 1000, 2_500_000, 123_456_789, 1 << 40]
            .into_iter()
            .map(size_label)
            .collect();
        assert_eq!(
            labels,
            [
                "0 B", "6 B", "999 B", "1.0 kB", "2.5 MB", "123 MB", "1.1 TB"
            ]
        );
    }

    #[test]
    fn names_break_after_separators() {
        assert_eq!(
            name_pieces("arbor_1.2-x86+b.tar"),
            ["arbor_", "1.", "2-", "x86+", "b.", "tar"]
        );
        assert_eq!(name_pieces("..a"), [".", ".", "a"]);
        assert!(name_pieces("").is_empty());
    }

    #[test]
    fn version_aware_order() {
        let mut v = vec!["1.10", "1.9", "1.9-rc1", "v2", "1.2.3", "10.0", "1_9"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["1.2.3", "1.9", "1_9", "1.9-rc1", "1.10", "10.0", "v2"]);
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a b#?/%"), "a%20b%23%3F%2F%25");
        assert_eq!(encode_segment("é"), "%C3%A9");
        assert_eq!(encode_segment("c:d"), "./c:d");
    }

    #[test]
    fn breadcrumbs_link_each_level() {
        let c = Chrome::for_path("/branches/main/t 1/", Some("bob".into()));
        let hrefs: Vec<_> = c.crumbs.iter().map(|c| c.href.clone()).collect();
        assert_eq!(
            hrefs,
            [
                Some("/".to_owned()),
                Some("/branches/".to_owned()),
                Some("/branches/main/".to_owned()),
                None
            ]
        );
        assert_eq!(c.title, "t 1 — dlrepo");
    }
}

#[cfg(test)]
mod page_tests;
