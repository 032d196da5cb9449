//! The container registry under `/v2/` (spec/CONTAINER.md, OCI distribution spec v1.1):
//! parses the path, picks the method, makes one storage call and renders the answer. No
//! filesystem access here; `storage/registry.rs` does that.

pub(crate) mod path;
mod reply;

use crate::http::guard::Caller;
use crate::model::Digest;
use crate::state::AppState;
use crate::storage::Visibility as Listing;
use crate::storage::registry::{Code, ImageRepo, MAX_MANIFEST, RegError, Uploader};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use path::Target;
use reply::{FileReply, Reply, oci_error, plain};
use serde_json::{Value, json};

/// Query parameters, decoded.
fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn url_pairs(q: &str) -> Vec<(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            // `+` stays a plus (RFC 3986): no registry parameter holds a space, and media
            // types such as `application/spdx+json` are `artifactType` values.
            let dec = |s: &'_ str| {
                std::borrow::Cow::Owned(
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned(),
                )
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Read access of the caller, for listings, aliases and mounts: the guard identified the
/// caller and checked the request itself; without a caller, auth is disabled.
fn access(req: &Request) -> Listing {
    match req.extensions().get::<Caller>().cloned() {
        Some(caller) => Listing::new(move |url| caller.can_read(url)),
        None => Listing::everything(),
    }
}

/// Every `/v2/` request lands here.
pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    // The guard parsed and authorized this very value.
    let target = match req.extensions().get::<crate::http::Addressed>().cloned() {
        Some(crate::http::Addressed::Registry(t)) => t,
        Some(crate::http::Addressed::TooLong(_)) => {
            let why = "a name component is longer than 255 bytes".to_owned();
            return oci_error(RegError::Oci(Code::NameInvalid, why));
        }
        _ => return plain(StatusCode::NOT_FOUND, "Not Found"),
    };
    match handle(&app, target, req).await {
        Ok(r) => r.render(&app),
        Err(e) => oci_error(e),
    }
}

fn not_allowed(allow: &'static str) -> Result<Reply, RegError> {
    Ok(Reply::NotAllowed(allow))
}

async fn handle(app: &AppState, target: Target, req: Request) -> Result<Reply, RegError> {
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    match target {
        Target::Base if read => Ok(Reply::json(StatusCode::OK, json!({}))),
        Target::Base => not_allowed("GET,HEAD"),
        Target::Catalog if read => catalog(app, req).await,
        Target::Catalog => not_allowed("GET,HEAD"),
        Target::Tags(r) if read => tags(app, req, r).await,
        Target::Tags(_) => not_allowed("GET,HEAD"),
        Target::Manifest(r, reference) => match method {
            Method::GET | Method::HEAD => get_manifest(app, req, r, reference).await,
            Method::PUT if matches!(r, ImageRepo::Job { .. }) => {
                put_manifest(app, req, r, reference).await
            }
            Method::DELETE if matches!(r, ImageRepo::Job { .. }) => {
                let repo = &app.repo;
                repo.run(move |s| Ok(s.reg_delete_manifest(&r, &reference)))
                    .await??;
                Ok(Reply::Empty(StatusCode::ACCEPTED, vec![]))
            }
            _ if matches!(r, ImageRepo::Job { .. }) => not_allowed("GET,HEAD,PUT,DELETE"),
            _ => not_allowed("GET,HEAD"),
        },
        Target::Blob(r, digest) => match method {
            Method::GET | Method::HEAD => get_blob(app, req, r, digest).await,
            Method::DELETE if matches!(r, ImageRepo::Job { .. }) => {
                delete_blob(app, r, digest).await
            }
            _ if matches!(r, ImageRepo::Job { .. }) => not_allowed("GET,HEAD,DELETE"),
            _ => not_allowed("GET,HEAD"),
        },
        Target::Uploads(r) if method == Method::POST => start_upload(app, req, r).await,
        Target::Uploads(_) => not_allowed("POST"),
        Target::Upload(r, id) => uploads::session(app, req, r, id).await,
        Target::Referrers(r, digest) if read => referrers(app, req, r, digest).await,
        Target::Referrers(..) => not_allowed("GET,HEAD"),
    }
}

/// `n`/`last` pagination over a sorted list (OCI distribution spec, "Listing Tags").
fn paginate(all: Vec<String>, q: &[(String, String)]) -> (Vec<String>, bool) {
    let after: Vec<String> = match param(q, "last") {
        Some(last) => all.into_iter().filter(|t| t.as_str() > last).collect(),
        None => all,
    };
    match param(q, "n").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if n < after.len() => (after.into_iter().take(n).collect(), true),
        _ => (after, false),
    }
}

fn link_header(path: &str, n: usize, last: Option<&String>) -> Vec<(header::HeaderName, String)> {
    match last {
        Some(last) => {
            let enc =
                percent_encoding::utf8_percent_encode(last, percent_encoding::NON_ALPHANUMERIC);
            vec![(
                header::LINK,
                format!("<{path}?n={n}&last={enc}>; rel=\"next\""),
            )]
        }
        None => vec![],
    }
}

async fn catalog(app: &AppState, req: Request) -> Result<Reply, RegError> {
    let acl = access(&req);
    let all = app.repo.run(|s| Ok(s.reg_catalog())).await?;
    let visible: Vec<String> = all
        .into_iter()
        .filter(|name| acl.allows(|| format!("/v2/{name}/")))
        .collect();
    let q = query(&req);
    let (page, more) = paginate(visible, &q);
    let n = page.len();
    let headers = link_header("/v2/_catalog", n, page.last().filter(|_| more));
    Ok(Reply::json_with(
        StatusCode::OK,
        json!({ "repositories": page }),
        headers,
    ))
}

async fn tags(app: &AppState, req: Request, r: ImageRepo) -> Result<Reply, RegError> {
    let acl = access(&req);
    let name = r.name();
    let repo = r.clone();
    let for_acl = name.clone();
    let all = app
        .repo
        .run(move |s| {
            Ok(s.reg_tags(&repo, |t| {
                acl.allows(|| format!("/v2/{for_acl}/manifests/{t}"))
            }))
        })
        .await??;
    let q = query(&req);
    let (page, more) = paginate(all, &q);
    let n = page.len();
    let headers = link_header(
        &format!("/v2/{name}/tags/list"),
        n,
        page.last().filter(|_| more),
    );
    Ok(Reply::json_with(
        StatusCode::OK,
        json!({ "name": name, "tags": page }),
        headers,
    ))
}

async fn get_manifest(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    reference: String,
) -> Result<Reply, RegError> {
    let acl = access(&req);
    let m = app
        .repo
        .run(move |s| Ok(s.reg_manifest(&r, &reference, &acl)))
        .await??;
    Ok(Reply::File(Box::new(FileReply {
        req,
        file: m.file,
        content_type: m.media_type,
    })))
}

async fn put_manifest(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    reference: String,
) -> Result<Reply, RegError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST)
        .await
        .map_err(|_| RegError::Oci(Code::ManifestInvalid, "manifest too large or cut".into()))?;
    let name = r.name();
    let at = reference.clone();
    let pushed = app
        .repo
        .run(move |s| Ok(s.reg_put_manifest(&r, &at, &body, content_type.as_deref())))
        .await??;
    let digest = pushed.digest;
    let mut headers = vec![
        (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
        (reply::DIGEST.clone(), digest.to_string()),
    ];
    // Tells the client the referrers API lists this manifest under its subject (OCI
    // distribution spec, "Pushing Manifests with Subject").
    if let Some(subject) = pushed.subject {
        headers.push((
            header::HeaderName::from_static("oci-subject"),
            subject.to_string(),
        ));
    }
    Ok(Reply::Empty(StatusCode::CREATED, headers))
}

fn parse_digest(raw: &str, code: Code) -> Result<Digest, RegError> {
    Digest::parse(Some(raw)).map_err(|e| RegError::Oci(code, format!("invalid digest: {}", e.0)))
}

async fn get_blob(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    digest: String,
) -> Result<Reply, RegError> {
    let d = parse_digest(&digest, Code::BlobUnknown)?;
    let file = app.repo.run(move |s| Ok(s.reg_open_blob(&r, &d))).await??;
    Ok(Reply::File(Box::new(FileReply {
        req,
        file: file.with_digest(digest),
        content_type: "application/octet-stream".into(),
    })))
}

async fn delete_blob(app: &AppState, r: ImageRepo, digest: String) -> Result<Reply, RegError> {
    let d = parse_digest(&digest, Code::DigestInvalid)?;
    app.repo
        .run(move |s| Ok(s.reg_delete_blob(&r, &d)))
        .await??;
    Ok(Reply::Empty(StatusCode::ACCEPTED, vec![]))
}

async fn start_upload(app: &AppState, req: Request, r: ImageRepo) -> Result<Reply, RegError> {
    let q = query(&req);
    let name = r.name();
    if let (Some(mount), Some(from)) = (param(&q, "mount"), param(&q, "from")) {
        let d = parse_digest(mount, Code::DigestInvalid)?;
        let acl = access(&req);
        let segs: Vec<String> = from.split('/').map(str::to_owned).collect();
        // Mounting needs read access on the source, as a pull of that blob would.
        if let Some(src) =
            path::repo(&segs).filter(|src| acl.allows(|| format!("/v2/{}/blobs/{d}", src.name())))
        {
            let (to, dd) = (r.clone(), d.clone());
            let mounted = app
                .repo
                .run(move |s| Ok(s.reg_mount(&to, &src, &dd)))
                .await??;
            if mounted {
                return Ok(Reply::Empty(
                    StatusCode::CREATED,
                    vec![
                        (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
                        (reply::DIGEST.clone(), d.to_string()),
                    ],
                ));
            }
        }
    }
    let who = uploads::uploader(&req, r);
    let digest = param(&q, "digest")
        .map(|d| parse_digest(d, Code::DigestInvalid))
        .transpose()?;
    let owner = who.clone();
    let id = app
        .repo
        .run(move |s| Ok(s.reg_start_upload(&owner)))
        .await??;
    if let Some(d) = digest {
        // Monolithic upload in one POST: a refused one leaves no session behind.
        let done = uploads::finish(app, req, &who, id.clone(), d).await;
        if done.is_err() {
            let _ = app
                .repo
                .run(move |s| Ok(s.reg_cancel_upload(&who, &id)))
                .await;
        }
        return done;
    }
    Ok(uploads::accepted(&name, &id, 0))
}

async fn referrers(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    digest: String,
) -> Result<Reply, RegError> {
    let d = parse_digest(&digest, Code::DigestInvalid)?;
    let q = query(&req);
    let atype = param(&q, "artifactType").map(str::to_owned);
    let filtered = atype.is_some();
    let acl = access(&req);
    let list = app
        .repo
        .run(move |s| Ok(s.reg_referrers(&r, &d, atype.as_deref(), &acl)))
        .await??;
    let mut headers = vec![];
    if filtered {
        headers.push((
            header::HeaderName::from_static("oci-filters-applied"),
            "artifactType".to_owned(),
        ));
    }
    let mut res = Reply::json_with(
        StatusCode::OK,
        json!({"schemaVersion": 2, "mediaType": crate::storage::registry::OCI_INDEX, "manifests": Value::Array(list)}),
        headers,
    );
    if let Reply::Json { content_type, .. } = &mut res {
        *content_type = crate::storage::registry::OCI_INDEX;
    }
    Ok(res)
}

mod uploads {
    //! Blob upload sessions: status, chunks, finish, cancel (spec/CONTAINER.md §3.6).
    use super::*;

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
    fn range_start(headers: &HeaderMap) -> Result<Option<u64>, RegError> {
        let Some(v) = headers.get(header::CONTENT_RANGE) else {
            return Ok(None);
        };
        let bad = || RegError::Oci(Code::RangeInvalid, "invalid Content-Range".into());
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

    /// Appends the request's body to the session; a refused chunk is read to the end (up
    /// to a bound) so that the client, still sending, gets the answer.
    async fn append(
        app: &AppState,
        who: &Uploader,
        id: &str,
        start: Option<u64>,
        req: Request,
    ) -> Result<u64, RegError> {
        let mut body = crate::http::byte_stream(req.into_body());
        let appended = app.repo.reg_append(who, id, start, &mut body).await;
        if appended.is_err() {
            crate::http::drain(body).await;
        }
        appended
    }

    pub async fn finish(
        app: &AppState,
        req: Request,
        who: &Uploader,
        id: String,
        d: Digest,
    ) -> Result<Reply, RegError> {
        let name = who.repo.name();
        let start = range_start(req.headers())?;
        append(app, who, &id, start, req).await?;
        let (dd, who) = (d.clone(), who.clone());
        app.repo
            .run(move |s| Ok(s.reg_finish_upload(&who, &id, &dd)))
            .await??;
        Ok(Reply::Empty(
            StatusCode::CREATED,
            vec![
                (header::LOCATION, format!("/v2/{name}/blobs/{d}")),
                (reply::DIGEST.clone(), d.to_string()),
            ],
        ))
    }

    pub async fn session(
        app: &AppState,
        req: Request,
        r: ImageRepo,
        id: String,
    ) -> Result<Reply, RegError> {
        let name = r.name();
        let who = uploader(&req, r);
        match req.method().clone() {
            Method::GET | Method::HEAD => {
                let (sid, owner) = (id.clone(), who.clone());
                let st = app
                    .repo
                    .run(move |s| Ok(s.reg_upload_state(&owner, &sid)))
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
                    return Err(RegError::Oci(
                        Code::DigestInvalid,
                        "the digest parameter is required".into(),
                    ));
                };
                let d = parse_digest(raw, Code::DigestInvalid)?;
                finish(app, req, &who, id, d).await
            }
            Method::DELETE => {
                app.repo
                    .run(move |s| Ok(s.reg_cancel_upload(&who, &id)))
                    .await??;
                Ok(Reply::Empty(StatusCode::NO_CONTENT, vec![]))
            }
            _ => not_allowed("GET,HEAD,PATCH,PUT,DELETE"),
        }
    }
}
