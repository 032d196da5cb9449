//! A format's dnf repository metadata (`repodata/repomd.xml`, `repodata/primary.xml.gz`,
//! `repodata/filelists.xml.gz`, `repodata/other.xml.gz`, and with `DLREPO_SIGNING_KEY` set
//! `repodata/repomd.xml.asc`; issue 15): answered for those names when the format holds no
//! file of that name, so an uploaded file always wins. Without a key the signature is 404,
//! as for any missing file.

use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult};
use crate::model::FormatRef;
use crate::storage::rpm::{RpmIndex, RpmRepoFile};
use axum::http::header;
use axum::response::IntoResponse;
use std::time::{Duration, UNIX_EPOCH};

/// The `repodata/` file `which` of format `f`, made by [`crate::storage::Repo::rpm_index`].
pub fn respond(ctx: &Ctx, f: &FormatRef, which: RpmIndex, file: RpmRepoFile) -> ApiResult {
    if let Some(r) = ctx.canonical(&format!("{}{}", f.url(), which.name())) {
        return r;
    }
    let body = match which {
        RpmIndex::RepoMdAsc => {
            let signer = ctx.app.signer.as_ref().ok_or(ApiError::NotFound)?;
            // Signed at the format's time: the same repomd.xml always gets the same bytes,
            // so the signature is made once and kept with the metadata.
            file.signed(&signer.fingerprint(), |repomd, time| {
                let at = UNIX_EPOCH + Duration::from_secs_f64(time.max(0.0));
                signer.detached_at(repomd, at)
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
