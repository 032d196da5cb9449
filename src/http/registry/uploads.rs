//! Blob upload sessions: status, chunks, finish, cancel (spec/CONTAINER.md §3.6).

use super::query::{param, query};
use super::reply::{self, Code, Reply, V2Error, not_allowed, parse_digest};
use crate::http::guard::Caller;
use crate::model::Digest;
use crate::state::AppState;
use crate::storage::registry::{ImageRepo, Uploader};
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};

/// Clients may send chunks this small or bigger; smaller ones only cost round trips.
const CHUNK_MIN: u64 = 1 << 20;

pub fn accepted(name: &str, id: &str, size: u64) -> Reply {
    let range = if size == 0 {
        "0-0".to_owned()
    } else {
        format!("0-{}", size - 1)
    };
    Reply::Empty(
        StatusCode::ACCEPTED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/uploads/{id}")),
            (header::RANGE, range),
            (
                header::HeaderName::from_static("docker-upload-uuid"),
                id.to_owned(),
            ),
            (
                header::HeaderName::from_static("oci-chunk-min-length"),
                CHUNK_MIN.to_string(),
            ),
        ],
    )
}

/// `Content-Range: a-b` (also `bytes a-b/*`): the offset the chunk starts at.
fn range_start(headers: &HeaderMap) -> Result<Option<u64>, V2Error> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || V2Error::Oci(Code::RangeInvalid, "invalid Content-Range".into());
    let s = v.to_str().map_err(|_| bad())?;
    let s = s.trim().trim_start_matches("bytes").trim();
    let start = s.split(['-', '/']).next().ok_or_else(bad)?;
    start.trim().parse().map(Some).map_err(|_| bad())
}

/// The session key of a request: the repository it names and the caller.
pub fn uploader(req: &Request, repo: ImageRepo) -> Uploader {
    let login = req
        .extensions()
        .get::<Caller>()
        .and_then(|c| c.id.login.clone());
    Uploader { repo, login }
}

/// Appends the request's body to the session. A refused body is read to the end (up to a
/// bound) so that the client, still sending, gets the answer.
async fn append(
    app: &AppState,
    who: &Uploader,
    id: &str,
    start: Option<u64>,
    req: Request,
) -> Result<u64, V2Error> {
    let mut body = crate::http::byte_stream(req.into_body());
    let appended = app.repo.append_blob_upload(who, id, start, &mut body).await;
    if appended.is_err() {
        crate::http::drain(body).await;
    }
    Ok(appended?)
}

/// The session the last bytes of a blob go to.
pub enum Finishing {
    /// The one the client opened (`PUT`).
    Session(String),
    /// A new one, for a whole blob in one `POST`.
    WholeBlob,
}

/// Receives the last (or only) bytes of a blob and finishes it against `d`.
pub async fn finish(
    app: &AppState,
    req: Request,
    who: &Uploader,
    into: Finishing,
    d: Digest,
) -> Result<Reply, V2Error> {
    let name = who.repo.name();
    let start = range_start(req.headers())?;
    let mut body = crate::http::byte_stream(req.into_body());
    let done = match &into {
        Finishing::Session(id) => {
            let repo = &app.repo;
            repo.complete_blob_upload(who, id, start, &mut body, &d)
                .await
        }
        Finishing::WholeBlob => app.repo.upload_whole_blob(who, start, &mut body, &d).await,
    };
    if done.is_err() {
        // As for a chunk; a body already read to its end (a digest mismatch) costs nothing.
        crate::http::drain(body).await;
    }
    done?;
    Ok(blob_created(&name, &d))
}

/// 201 for a blob now in the repository `name` (finished upload or mount).
pub fn blob_created(name: &str, d: &Digest) -> Reply {
    Reply::Empty(
        StatusCode::CREATED,
        vec![
            (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
            (reply::DIGEST.clone(), d.to_string()),
        ],
    )
}

pub async fn session(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    id: String,
) -> Result<Reply, V2Error> {
    let name = r.name();
    let who = uploader(&req, r);
    match req.method().clone() {
        Method::GET | Method::HEAD => {
            let (sid, owner) = (id.clone(), who.clone());
            let st = app
                .repo
                .run(move |s| Ok(s.blob_upload_state(&owner, &sid)))
                .await??;
            let mut reply = accepted(&name, &id, st.size);
            if let Reply::Empty(status, _) = &mut reply {
                *status = StatusCode::NO_CONTENT;
            }
            Ok(reply)
        }
        Method::PATCH => {
            let start = range_start(req.headers())?;
            let size = append(app, &who, &id, start, req).await?;
            Ok(accepted(&name, &id, size))
        }
        Method::PUT => {
            let q = query(&req);
            let Some(raw) = param(&q, "digest") else {
                return Err(V2Error::Oci(
                    Code::DigestInvalid,
                    "the digest parameter is required".into(),
                ));
            };
            let d = parse_digest(raw, Code::DigestInvalid)?;
            finish(app, req, &who, Finishing::Session(id), d).await
        }
        Method::DELETE => {
            app.repo
                .run(move |s| Ok(s.cancel_blob_upload(&who, &id)))
                .await??;
            Ok(Reply::Empty(StatusCode::NO_CONTENT, vec![]))
        }
        _ => not_allowed("GET,HEAD,PATCH,PUT,DELETE"),
    }
}
