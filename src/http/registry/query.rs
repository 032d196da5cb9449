//! Query strings of `/v2/` requests, percent-decoded; `+` stays a plus.

use axum::extract::Request;

/// Query parameters, decoded.
pub(super) fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            // `+` stays a plus (RFC 3986): no registry parameter holds a space, and media
            // types such as `application/spdx+json` are `artifactType` values.
            let dec = |s: &'_ str| {
                std::borrow::Cow::Owned(
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            };
            (dec(k), dec(v))
        })
        .collect()
}

pub(super) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
