//! A format's flat APT repository indexes (`Packages`, `Packages.gz`, `Packages.xz`,
//! `Release`, and with `DLREPO_SIGNING_KEY` set `InRelease` and `Release.gpg`; issue 15):
//! answered for those names when the format holds no file of that name, so an uploaded file
//! always wins. Without a key the signed forms are 404, as for any missing file. A product
//! branch answers the same names as one archive of all its versions (`products.rs`).

use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult};
use crate::model::FormatRef;
use crate::storage::apt::{AptFile, AptIndex};
use axum::http::header;
use axum::response::IntoResponse;
use std::time::{Duration, UNIX_EPOCH};

/// The index `which` of format `f`, made by [`crate::storage::Repo::apt_index`].
pub fn respond(ctx: &Ctx, f: &FormatRef, which: AptIndex, file: AptFile) -> ApiResult {
    respond_at(ctx, &format!("{}{}", f.url(), which.name()), which, file)
}

/// The index `which` whose canonical URL is `url`: a format's or a product branch's.
pub fn respond_at(ctx: &Ctx, url: &str, which: AptIndex, file: AptFile) -> ApiResult {
    if let Some(r) = ctx.canonical(url) {
        return r;
    }
    let body = match which {
        AptIndex::InRelease | AptIndex::ReleaseGpg => {
            let signer = ctx.app.signer.as_ref().ok_or(ApiError::NotFound)?;
            // Signed at the format's time: the same Release always gets the same bytes,
            // so the signature is made once and kept with the indexes.
            file.signed(which, &signer.fingerprint(), |release, time| {
                let at = UNIX_EPOCH + Duration::from_secs_f64(time.max(0.0));
                match which {
                    AptIndex::InRelease => signer.clearsign_at(release, at),
                    _ => signer.detached_at(release, at),
                }
            })
            .into()
        }
        _ => file.bytes,
    };
    Ok((
        [
            (header::CONTENT_TYPE, which.content_type()),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response())
}
