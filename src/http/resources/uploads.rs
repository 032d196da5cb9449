//! Uploads (spec/API.md §5.1): link mode, small bodies in memory, streamed ones (with or
//! without a `Digest`, Q21), and the `HEAD` with a `Digest` that asks whether the content
//! is already there (§3.9).

use crate::http::context::Ctx;
use crate::http::reply::{ApiError, ApiResult, created};
use crate::http::route::FormatParent;
use crate::model::{Digest, FormatRef, JobRef, RelPath, TagRef};
use crate::storage::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;

/// Bodies up to this size (by Content-Length) are received in memory.
const SMALL_UPLOAD: usize = 256 << 10;

/// The job a format URL names literally, where a dedup lookup starts.
fn near_job(parent: &FormatParent) -> Option<JobRef> {
    match parent {
        FormatParent::Job { branch, tag, job } => Some(JobRef {
            tag: TagRef {
                branch: branch.clone(),
                tag: tag.clone(),
            },
            job: job.clone(),
        }),
        FormatParent::Version { .. } => None,
    }
}

/// "Do you have this content?" answers yes only when the caller may read some artifact
/// holding it (spec/API.md Q49); dlrepo-cli then links instead of uploading.
pub(super) async fn head_digest(ctx: &Ctx, raw: Option<&str>, parent: &FormatParent) -> ApiResult {
    let near = near_job(parent);
    let digest = Digest::parse(raw).map_err(StoreError::InvalidDigest)?;
    let (d, acl, index) = (digest.clone(), ctx.acl.clone(), ctx.app.search.clone());
    let size = ctx
        .app
        .repo
        .run(move |r| r.readable_blob(&d, near.as_ref(), &acl, Some(&index)))
        .await?;
    let Some(size) = size else {
        return Err(ApiError::NotFound);
    };
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("digest", v);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    Ok(res)
}

/// `PUT .../{format}/{artifact}` (spec/API.md §5.1).
pub(super) async fn upload(ctx: &mut Ctx, f: FormatRef, rel: RelPath) -> ApiResult {
    let header = |name: &str| ctx.headers.get(name).and_then(|v| v.to_str().ok());
    if f.name().as_str() == "container"
        && !header("user-agent").is_some_and(|ua| ua.starts_with("dlrepo-server/"))
    {
        return Err(ApiError::BadRequest(
            "Uploading container images must be done with docker push".into(),
        ));
    }
    let raw_digest = header("digest").map(str::to_owned);
    let raw_link = header("x-dlrepo-link").map(str::to_owned);
    // Checked before reading the body, so a bad request never costs a transfer. A missing
    // Digest is fine for a body (spec/API.md Q21), never for a link.
    let digest = match (&raw_digest, &raw_link) {
        (None, None) => None,
        _ => Some(Digest::parse(raw_digest.as_deref()).map_err(StoreError::InvalidDigest)?),
    };
    match digest {
        Some(digest) if raw_link == raw_digest => {
            let (acl, stored, index) = (ctx.acl.clone(), digest.clone(), ctx.app.search.clone());
            ctx.app
                .repo
                .run(move |r| r.link_upload(&f, &rel, &digest, &acl, Some(&index)))
                .await?;
            stored_as(&stored)
        }
        digest => upload_body(ctx, f, rel, digest).await,
    }
}

/// 201 with the digest the content is stored under: the client's, or the one the server
/// computed when it sent none.
fn stored_as(digest: &Digest) -> ApiResult {
    let mut res = created()?;
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        res.headers_mut().insert("digest", v);
    }
    Ok(res)
}

/// An upload with its content in the body: small ones are read into memory and stored in
/// one trip to the blocking pool, others stream to disk as they arrive.
async fn upload_body(
    ctx: &mut Ctx,
    f: FormatRef,
    rel: RelPath,
    expected: Option<Digest>,
) -> ApiResult {
    let repo = ctx.app.repo.clone();
    let small = ctx
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n <= SMALL_UPLOAD);
    if let Some(len) = small {
        return small_upload(ctx, f, rel, expected, len).await;
    }
    // Before the body: a job locked by then refuses it (400, as dlrepo); a lock that lands
    // while the body arrives refuses it when it is linked (409), which only this early
    // check can tell apart.
    let (target, target_rel) = (f.clone(), rel.clone());
    repo.run(move |r| r.check_upload_target(&target, &target_rel))
        .await?;
    let mut body = crate::http::body::byte_stream(ctx.take_body());
    let upload = match repo.receive(expected.as_ref(), &mut body).await {
        Ok(upload) => upload,
        Err(e) => {
            // Stopped half way (a full disk, say): the client still hears why.
            crate::http::body::drain(body).await;
            return Err(e.into());
        }
    };
    let stored = upload.digest().clone();
    repo.run(move |r| r.store_and_queue(upload, &f, &rel))
        .await?
        .wait()
        .await?;
    stored_as(&stored)
}

/// A body of at most `len` bytes, read into memory. When it has already arrived with the
/// headers (the usual case for a few KiB), nothing is left to arrive while a lock lands: the
/// checks of [`crate::storage::Repo::check_upload_target`] and the store take one trip to
/// the blocking pool. Otherwise (the body still on its way, or `Expect: 100-continue`, which
/// asks for a verdict before the body) the target is checked first, in a trip of its own,
/// so that a lock landing while the body arrives stays a 409 and one before it a 400.
async fn small_upload(
    ctx: &mut Ctx,
    f: FormatRef,
    rel: RelPath,
    expected: Option<Digest>,
    len: usize,
) -> ApiResult {
    let repo = ctx.app.repo.clone();
    let waits_for_continue = ctx
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let mut read = Box::pin(axum::body::to_bytes(ctx.take_body(), len));
    let here = match waits_for_continue {
        true => None,
        false => arrived(&mut read).await,
    };
    let (data, checked) = match here {
        Some(Ok(data)) => (data, false),
        here => {
            let (target, target_rel) = (f.clone(), rel.clone());
            repo.run(move |r| r.check_upload_target(&target, &target_rel))
                .await?;
            let data = match here {
                Some(read) => read,
                None => read.await,
            };
            let data =
                data.map_err(|e| crate::storage::body_error(crate::http::body::classify(e)))?;
            (data, true)
        }
    };
    // The link is awaited here, not on a pool thread: its batch may be another upload's
    // to apply.
    let (stored, linked) = repo
        .run(move |r| {
            if !checked {
                r.check_upload_target(&f, &rel)?;
            }
            r.queue_small_upload(&f, &rel, expected.as_ref(), &data)
        })
        .await?;
    linked.wait().await?;
    stored_as(&stored)
}

/// The output of `read` if it is ready without waiting for the client: polled, then polled
/// again after letting the connection's task take in what the socket already holds.
async fn arrived<F: std::future::Future + Unpin>(read: &mut F) -> Option<F::Output> {
    use futures_util::FutureExt;
    for _ in 0..2 {
        if let Some(out) = (&mut *read).now_or_never() {
            return Some(out);
        }
        tokio::task::yield_now().await;
    }
    (&mut *read).now_or_never()
}
