//! Bundles in the encodings other than `.tar` (spec/API.md §6): the same plan, compressed
//! or zipped, with the content type, file name and validator of the encoding. `.tar`
//! itself stays with `bundle.rs`.

use super::caching::{self, Freshness};
use super::download::precondition;
use super::security;
use crate::storage::TarPlan;
use crate::storage::encodings::{self, Encoding};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

/// Streams `plan` as `enc` in chunks of about `chunk_size` bytes, as `method` with `headers`
/// asks for it: a strong ETag (another one per encoding), 304 and 412 as for the `.tar`.
/// No Content-Length or ranges: a compressed length is only known once compressed.
pub fn bundle_response(
    plan: TarPlan,
    enc: Encoding,
    method: &Method,
    headers: &HeaderMap,
    chunk_size: usize,
) -> Response {
    if enc == Encoding::Tar {
        return super::bundle::tar_response(plan, method, headers, chunk_size);
    }
    let tag = plan.etag(enc.suffix().trim_start_matches('.'));
    let mut base = HeaderMap::new();
    base.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    // The prefix is made of names and job metadata that writers choose, hence the
    // encoder (spec/API.md Q52).
    base.insert(
        header::CONTENT_DISPOSITION,
        security::attachment(&format!("{}{}", plan.prefix, enc.suffix())),
    );
    base.insert(header::X_CONTENT_TYPE_OPTIONS, security::nosniff());
    if let Ok(v) = HeaderValue::from_str(&tag) {
        base.insert(header::ETAG, v);
    }
    let mut res = if let Some(status) = precondition(headers, method, &tag, None) {
        (status, base).into_response()
    } else if method == Method::HEAD {
        base.into_response()
    } else {
        let body = match enc {
            Encoding::Zip => Body::from_stream(encodings::zip_stream(plan, chunk_size)),
            compressed => {
                let mtime = plan.sums_mtime;
                let tar = plan.tar_stream(None, chunk_size);
                Body::from_stream(encodings::compress_stream(tar, compressed, mtime))
            }
        };
        (base, body).into_response()
    };
    caching::mark(&mut res, Freshness::Revalidate);
    res
}
