//! A format's flat APT repository indexes (`Packages`, `Packages.gz`, `Packages.xz`,
//! `Release`; issue 15): answered for those names when the format holds no file of that
//! name, so an uploaded file always wins. Unsigned: `InRelease` and `Release.gpg` are 404.

use crate::http::context::Ctx;
use crate::http::reply::ApiResult;
use crate::model::FormatRef;
use crate::storage::apt::AptIndex;
use axum::http::header;
use axum::response::IntoResponse;

/// The index `which` of format `f`, made by [`crate::storage::Repo::apt_index`].
pub fn respond(ctx: &Ctx, f: &FormatRef, which: AptIndex, body: Vec<u8>) -> ApiResult {
    if let Some(r) = ctx.canonical(&format!("{}{}", f.url(), which.name())) {
        return r;
    }
    Ok((
        [
            (header::CONTENT_TYPE, which.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}
