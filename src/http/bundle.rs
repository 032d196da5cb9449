//! Tar bundles of a job, a format or a product version as responses (spec/API.md §6): one
//! place for the headers every bundle carries, its strong ETag (304, 412), its length and
//! single byte ranges, so that a broken download resumes.

use super::caching::{self, Freshness};
use super::download::{precondition, ranged};
use super::security;
use crate::storage::TarPlan;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The tar of `plan` as `method` with `headers` asks for it, streamed in chunks of
/// `chunk_size` bytes.
pub fn tar_response(
    plan: TarPlan,
    method: &Method,
    headers: &HeaderMap,
    chunk_size: usize,
) -> Response {
    let tag = plan.etag("tar");
    let mut res = tar(plan, method, headers, chunk_size, &tag);
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    caching::mark(&mut res, Freshness::Revalidate);
    res
}

fn tar(plan: TarPlan, method: &Method, h: &HeaderMap, chunk_size: usize, tag: &str) -> Response {
    let mut base = HeaderMap::new();
    base.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    // The prefix is made of names and job metadata that writers choose, hence the encoder
    // (spec/API.md Q52).
    base.insert(
        header::CONTENT_DISPOSITION,
        security::attachment(&format!("{}.tar", plan.prefix)),
    );
    base.insert(header::X_CONTENT_TYPE_OPTIONS, security::nosniff());
    base.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // No Last-Modified: the entity timestamp is not when the bundle's content last changed
    // (a job's `.stamp` is its creation), so dates must not validate it.
    if let Some(status) = precondition(h, method, tag, None) {
        return (status, base).into_response();
    }
    let len = plan.tar_layout().len;
    // A range of another version of the bundle would splice two archives: If-Range must
    // name this one (a date never does, as there is no Last-Modified).
    let (status, range, _) = match ranged(h, len, tag, &mut base) {
        Ok(answer) => answer,
        Err(()) => return (StatusCode::RANGE_NOT_SATISFIABLE, base).into_response(),
    };
    if method == Method::HEAD {
        return (status, base).into_response();
    }
    let body = Body::from_stream(plan.tar_stream(range, chunk_size));
    (status, base, body).into_response()
}
