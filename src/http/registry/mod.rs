//! The container registry under `/v2/` (spec/CONTAINER.md, OCI distribution spec v1.1):
//! parses the path, picks the method, makes one storage call and renders the answer. No
//! filesystem access here; `storage/registry/` does that.

pub(crate) mod envelope;
pub(crate) mod path;
mod query;
mod reply;
#[cfg(test)]
mod router_tests;
mod uploads;

use crate::http::guard::Caller;
use crate::http::reply::plain_status;
use crate::model::oci::{MAX_MANIFEST, OCI_INDEX, Referrer};
use crate::state::AppState;
use crate::storage::Visibility;
use crate::storage::registry::ImageRepo;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use path::Target;
use query::{param, query};
use reply::{Code, FileReply, Reply, V2Error, not_allowed, oci_error, parse_digest};
use serde_json::{Value, json};

/// Read access of the caller, for listings, aliases and mounts: the guard identified the
/// caller and checked the request itself; without a caller, auth is disabled.
fn access(req: &Request) -> Visibility {
    match req.extensions().get::<Caller>().cloned() {
        Some(caller) => Visibility::new(move |url| caller.can_read(url)),
        None => Visibility::everything(),
    }
}

/// What the caller may add to (a product version a push would link its image into).
fn adds(req: &Request) -> Visibility {
    match req.extensions().get::<Caller>().cloned() {
        Some(caller) => Visibility::new(move |url| caller.can_add(url)),
        None => Visibility::everything(),
    }
}

/// Every `/v2/` request lands here.
pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    // The guard parsed and authorized this very value.
    let target = match req.extensions().get::<crate::http::Addressed>().cloned() {
        Some(crate::http::Addressed::Registry(t)) => t,
        Some(crate::http::Addressed::TooLong(_)) => {
            let why = "a name component is longer than 255 bytes".to_owned();
            return oci_error(V2Error::Oci(Code::NameInvalid, why));
        }
        _ => return plain_status(StatusCode::NOT_FOUND, "Not Found"),
    };
    let written = crate::http::search::pushed(&target, req.method());
    let answer = handle(&app, target, req).await;
    if let Some(sub) = written {
        app.search.touch(sub);
    }
    match answer {
        Ok(r) => r.render(&app),
        Err(e) => oci_error(e),
    }
}

async fn handle(app: &AppState, target: Target, req: Request) -> Result<Reply, V2Error> {
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
                repo.run(move |s| Ok(s.delete_manifest(&r, &reference)))
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

/// `n`/`last` pagination over a sorted list (OCI distribution spec, "Visibility Tags").
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

async fn catalog(app: &AppState, req: Request) -> Result<Reply, V2Error> {
    let acl = access(&req);
    let all = app.repo.shared_catalog().await?;
    let visible: Vec<String> = all
        .iter()
        .filter(|name| acl.allows(|| format!("/v2/{name}/")))
        .cloned()
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

async fn tags(app: &AppState, req: Request, r: ImageRepo) -> Result<Reply, V2Error> {
    let acl = access(&req);
    let name = r.name();
    let repo = r.clone();
    let for_acl = name.clone();
    let all = app
        .repo
        .run(move |s| {
            Ok(s.image_tags(&repo, |t| {
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
) -> Result<Reply, V2Error> {
    let acl = access(&req);
    let m = app
        .repo
        .run(move |s| Ok(s.open_manifest(&r, &reference, &acl)))
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
) -> Result<Reply, V2Error> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let may_link = adds(&req);
    let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST)
        .await
        .map_err(|_| V2Error::Oci(Code::ManifestInvalid, "manifest too large or cut".into()))?;
    let name = r.name();
    let at = reference.clone();
    let pushed = app
        .repo
        .run(move |s| Ok(s.push_manifest(&r, &at, &body, content_type.as_deref(), &may_link)))
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

async fn get_blob(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    digest: String,
) -> Result<Reply, V2Error> {
    let d = parse_digest(&digest, Code::BlobUnknown)?;
    let file = app
        .repo
        .run(move |s| Ok(s.open_image_blob(&r, &d)))
        .await??;
    Ok(Reply::File(Box::new(FileReply {
        req,
        file: file.with_digest(digest),
        content_type: "application/octet-stream".into(),
    })))
}

async fn delete_blob(app: &AppState, r: ImageRepo, digest: String) -> Result<Reply, V2Error> {
    let d = parse_digest(&digest, Code::DigestInvalid)?;
    app.repo
        .run(move |s| Ok(s.delete_image_blob(&r, &d)))
        .await??;
    Ok(Reply::Empty(StatusCode::ACCEPTED, vec![]))
}

async fn start_upload(app: &AppState, req: Request, r: ImageRepo) -> Result<Reply, V2Error> {
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
                .run(move |s| Ok(s.mount_blob(&to, &src, &dd)))
                .await??;
            if mounted {
                return Ok(uploads::blob_created(&name, &d));
            }
        }
    }
    let who = uploads::uploader(&req, r);
    let digest = param(&q, "digest")
        .map(|d| parse_digest(d, Code::DigestInvalid))
        .transpose()?;
    if let Some(d) = digest {
        return uploads::finish(app, req, &who, uploads::Finishing::WholeBlob, d).await;
    }
    let id = app
        .repo
        .run(move |s| Ok(s.start_blob_upload(&who)))
        .await??;
    Ok(uploads::accepted(&name, &id, 0))
}

async fn referrers(
    app: &AppState,
    req: Request,
    r: ImageRepo,
    digest: String,
) -> Result<Reply, V2Error> {
    let d = parse_digest(&digest, Code::DigestInvalid)?;
    let q = query(&req);
    let atype = param(&q, "artifactType").map(str::to_owned);
    let filtered = atype.is_some();
    let acl = access(&req);
    let list = app
        .repo
        .run(move |s| Ok(s.manifest_referrers(&r, &d, atype.as_deref(), &acl)))
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
        json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list.into_iter().map(index_descriptor).collect::<Vec<_>>()}),
        headers,
    );
    if let Reply::Json { content_type, .. } = &mut res {
        *content_type = OCI_INDEX;
    }
    Ok(res)
}

/// A referrer as an index descriptor, keys in the order clients have always seen them.
fn index_descriptor(r: Referrer) -> Value {
    let mut desc = serde_json::Map::new();
    desc.insert("mediaType".into(), r.media_type.into());
    desc.insert("digest".into(), r.digest.to_string().into());
    desc.insert("size".into(), r.size.into());
    if let Some(t) = r.artifact_type {
        desc.insert("artifactType".into(), t.into());
    }
    if let Some(a) = r.annotations {
        desc.insert("annotations".into(), a);
    }
    Value::Object(desc)
}
