//! Bundles in the encodings other than `.tar` (spec/API.md §6): the same plan, compressed
//! or zipped, with the content type and file name of the encoding. `.tar` itself stays
//! with `bundle.rs`.

use super::security;
use crate::storage::TarPlan;
use crate::storage::archive;
use crate::storage::encodings::{self, Encoding};
use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;

/// Streams `plan` as `enc` in chunks of about `chunk_size` bytes.
pub fn bundle_response(plan: TarPlan, enc: Encoding, chunk_size: usize) -> Response {
    let name = format!("{}{}", plan.prefix, enc.suffix());
    let body = match enc {
        Encoding::Tar => return super::bundle::tar_response(plan, chunk_size),
        Encoding::Zip => Body::from_stream(encodings::zip_stream(plan, chunk_size)),
        compressed => {
            let tar = archive::tar_stream(plan.prefix, plan.members, plan.sums_mtime, chunk_size);
            Body::from_stream(encodings::compress_stream(tar, compressed, plan.sums_mtime))
        }
    };
    let mut res = Response::new(body);
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    // The prefix is made of names and job metadata that writers choose, hence the
    // encoder (spec/API.md Q52).
    h.insert(header::CONTENT_DISPOSITION, security::attachment(&name));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, security::nosniff());
    res
}
