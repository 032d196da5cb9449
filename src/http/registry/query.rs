//! Query strings of `/v2/` requests, decoded by the shared [`crate::http::query`] with `+`
//! kept a plus: no registry parameter holds a space, and media types such as
//! `application/spdx+json` are `artifactType` values.

use crate::http::query::{Plus, decode, raw_pairs};
use axum::extract::Request;

/// Query parameters, decoded; a pair without `=` has an empty value.
pub(super) fn query(req: &Request) -> Vec<(String, String)> {
    let Some(q) = req.uri().query() else {
        return Vec::new();
    };
    raw_pairs(q)
        .map(|(k, v)| {
            let v = v.map(|v| decode(v, Plus::Literal)).unwrap_or_default();
            (decode(k, Plus::Literal), v)
        })
        .collect()
}

pub(super) fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}
