//! Tar bundles of a job, a format or a product version as responses (spec/API.md §6):
//! one place for the headers every bundle carries.

use super::security;
use crate::storage::{TarPlan, archive};
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Streams `plan` in chunks of `chunk_size` bytes.
pub fn tar_response(plan: TarPlan, chunk_size: usize) -> Response {
    let stream = archive::tar_stream(
        plan.prefix.clone(),
        plan.members,
        plan.sums_mtime,
        chunk_size,
    );
    tar(&plan.prefix, Body::from_stream(stream))
}

/// A streamed tar bundle. `prefix` is made of names and job metadata that writers choose,
/// hence the encoder (spec/API.md Q52).
fn tar(prefix: &str, body: Body) -> Response {
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        security::attachment(&format!("{prefix}.tar")),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, security::nosniff());
    res
}
