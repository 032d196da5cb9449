//! Registry answers: the OCI JSON error envelope (spec/CONTAINER.md §2), JSON bodies, empty
//! answers with headers, and manifest/blob file bodies (ETag, conditional GET, one byte
//! range, X-Sendfile, `sendfile(2)` through the connection).

use super::envelope::{API_VERSION, oci_body};
use crate::http::caching::Freshness;
use crate::http::download::Download;
use crate::http::observe::Failure;
use crate::http::reply::plain_status;
use crate::model::Digest;
use crate::model::oci::ManifestError;
use crate::state::AppState;
use crate::storage::registry::RegistryError;
use crate::storage::{BlobReader, StoreError};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub static DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");

pub enum Reply {
    Json {
        status: StatusCode,
        body: Value,
        content_type: &'static str,
        headers: Vec<(HeaderName, String)>,
    },
    Empty(StatusCode, Vec<(HeaderName, String)>),
    /// 405 as plain text, without the registry header (spec/CONTAINER.md §2).
    NotAllowed(&'static str),
    File(Box<FileReply>),
}

/// A manifest or blob body and the request it answers (for Range and validators).
pub struct FileReply {
    pub req: Request,
    /// Opened with its digest, which becomes `Docker-Content-Digest` and the ETag.
    pub file: BlobReader,
    pub content_type: String,
}

impl Reply {
    pub fn json(status: StatusCode, body: Value) -> Reply {
        Reply::json_with(status, body, vec![])
    }

    pub fn json_with(status: StatusCode, body: Value, headers: Vec<(HeaderName, String)>) -> Reply {
        Reply::Json {
            status,
            body,
            content_type: "application/json; charset=utf-8",
            headers,
        }
    }

    pub fn render(self, app: &AppState) -> Response {
        let mut res = match self {
            Reply::Json {
                status,
                body,
                content_type,
                headers,
            } => {
                let mut res = (
                    status,
                    [(header::CONTENT_TYPE, content_type)],
                    crate::pyjson::to_string(&body),
                )
                    .into_response();
                add(&mut res, headers);
                res
            }
            Reply::Empty(status, headers) => {
                let mut res = (status, [(header::CONTENT_LENGTH, "0")]).into_response();
                add(&mut res, headers);
                res
            }
            Reply::NotAllowed(allow) => {
                let mut res = plain_status(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                return res;
            }
            Reply::File(f) => {
                let FileReply {
                    req,
                    file,
                    content_type,
                } = *f;
                send_file(app, &req, file, &content_type)
            }
        };
        res.headers_mut().insert(
            API_VERSION.clone(),
            HeaderValue::from_static("registry/2.0"),
        );
        res
    }
}

fn add(res: &mut Response, headers: Vec<(HeaderName, String)>) {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(&v) {
            res.headers_mut().insert(k, v);
        }
    }
}

/// The OCI distribution error codes arbor sends (spec/CONTAINER.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    Denied,
    Unsupported,
    RangeInvalid,
    /// A blob DELETE of a blob an image of the repository still links.
    BlobInUse,
}

/// Why a `/v2/` request failed: refused by the HTTP side itself (a header, a parameter, a
/// body too big), or by storage.
#[derive(Debug, thiserror::Error)]
pub enum V2Error {
    #[error("{1}")]
    Oci(Code, String),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

impl From<StoreError> for V2Error {
    fn from(e: StoreError) -> V2Error {
        V2Error::Registry(RegistryError::Store(e))
    }
}

fn code_info(code: Code) -> (&'static str, StatusCode) {
    use Code::*;
    match code {
        BlobUnknown => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
        BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
        DigestInvalid => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
        ManifestInvalid => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
        ManifestUnknown => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
        NameInvalid => ("NAME_INVALID", StatusCode::BAD_REQUEST),
        NameUnknown => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
        Denied => ("DENIED", StatusCode::FORBIDDEN),
        Unsupported => ("UNSUPPORTED", StatusCode::BAD_REQUEST),
        RangeInvalid => ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
        // 405 is the refusal the OCI spec and its conformance suite know for a blob DELETE;
        // `DENIED` and the message say it is this blob, for now, not blob deletes at all.
        BlobInUse => ("DENIED", StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// The OCI code of a registry refusal, with its message; a storage failure is handed back.
fn registry_code(e: RegistryError) -> Result<(Code, String), StoreError> {
    use RegistryError as E;
    let code = match &e {
        E::UploadUnknown => Code::BlobUploadUnknown,
        E::UploadBusy | E::WrongOffset(_) => Code::RangeInvalid,
        E::UploadDigestMismatch(_) | E::ManifestDigestMismatch(_) | E::InvalidDigest(_) => {
            Code::DigestInvalid
        }
        E::OverQuota(_) | E::PushToLockedJob | E::DeleteInLockedJob => Code::Denied,
        E::RepositoryUnknown => Code::NameUnknown,
        E::BlobUnknown | E::MissingBlob(_) => Code::BlobUnknown,
        E::ManifestUnknown(_) => Code::ManifestUnknown,
        E::BadManifest(ManifestError::Unsupported(_)) => Code::Unsupported,
        E::InvalidReference(_)
        | E::BadManifest(_)
        | E::BadChild(_)
        | E::SizeMismatch { .. }
        | E::InvalidTag => Code::ManifestInvalid,
        E::AliasTag | E::PushToProduct | E::DeleteInProduct => Code::Unsupported,
        E::BlobInUse { .. } => Code::BlobInUse,
        E::Store(_) => {
            let E::Store(store) = e else {
                unreachable!("matched just above")
            };
            return Err(store);
        }
    };
    Ok((code, e.to_string()))
}

/// The only mapping from registry failures to answers: an OCI code and status for each
/// refusal, the plain 500 (logged) for a storage failure nothing else explains.
pub fn oci_error(e: V2Error) -> Response {
    let refused = match e {
        V2Error::Oci(code, msg) => Ok((code, msg)),
        V2Error::Registry(e) => registry_code(e),
    };
    let (code, msg) = match refused {
        Ok(refusal) => refusal,
        Err(store) => return store_failure(store),
    };
    let (name, status) = code_info(code);
    let mut res = oci_body(name, status, msg);
    // A blob in use can still be read (RFC 9110: a 405 lists what the resource allows).
    if code == Code::BlobInUse {
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
    }
    res
}

/// A storage error under `/v2/`: the few a client can act on in the OCI envelope, a full
/// disk as 507, anything else the plain 500.
fn store_failure(e: StoreError) -> Response {
    let (code, status, message) = match e {
        StoreError::NotFound => (
            "NAME_UNKNOWN",
            StatusCode::NOT_FOUND,
            "repository name not known to registry".into(),
        ),
        StoreError::Refused(why) => ("DENIED", StatusCode::FORBIDDEN, why),
        StoreError::ClientTimeout => (
            "BLOB_UPLOAD_INVALID",
            StatusCode::REQUEST_TIMEOUT,
            "the client stopped sending".into(),
        ),
        StoreError::Denied => ("DENIED", StatusCode::FORBIDDEN, "access denied".into()),
        e if e.os_error() == Some(nix::libc::ENAMETOOLONG) => (
            "NAME_INVALID",
            StatusCode::BAD_REQUEST,
            "name too long".into(),
        ),
        StoreError::Interrupted(why) => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST, why),
        StoreError::NoSpace(why) => {
            let mut res = oci_body(
                "UNKNOWN",
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient storage: the registry's disk is full".into(),
            );
            res.extensions_mut().insert(Failure::refused(why));
            return res;
        }
        other => {
            let mut res = plain_status(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            // Logged with the request's method and URL on the way out.
            res.extensions_mut()
                .insert(Failure::error(format!("registry: {other}")));
            return res;
        }
    };
    oci_body(code, status, message)
}

/// Manifests and blobs are sent like any artifact (`http::download`): validators, one byte
/// range, X-Sendfile and `sendfile(2)` (to clients on other hosts, `ZeroCopy::Remote`),
/// with the digest as `Docker-Content-Digest`.
fn send_file(app: &AppState, req: &Request, file: BlobReader, content_type: &str) -> Response {
    let conn = req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::zerocopy::ZcConn>>()
        .map(|c| c.0.clone());
    Download {
        method: req.method(),
        headers: req.headers(),
        name: "",
        chunk_size: app.repo.chunk_size(),
        x_sendfile: app.config.x_sendfile_header.as_deref(),
        digest_header: DIGEST.as_str(),
        content_type: Some(content_type.to_owned()),
        conn: conn.as_ref(),
        // Registry clients never render what they pull; only nosniff applies to its types.
        inline: false,
        freshness: freshness(req),
    }
    .respond(file)
}

/// Blobs, and manifests fetched by digest, never change under their URL; a manifest by
/// tag may.
fn freshness(req: &Request) -> Freshness {
    use super::path::Target;
    match req.extensions().get::<crate::http::Addressed>() {
        Some(crate::http::Addressed::Registry(Target::Blob(..))) => Freshness::Immutable,
        Some(crate::http::Addressed::Registry(Target::Manifest(_, reference)))
            if reference.contains(':') =>
        {
            Freshness::Immutable
        }
        _ => Freshness::Revalidate,
    }
}

/// A method the resource does not allow: 405 with `Allow`.
pub(super) fn not_allowed(allow: &'static str) -> Result<Reply, V2Error> {
    Ok(Reply::NotAllowed(allow))
}

/// A digest from the path or the query; `code` says what a bad one means there.
pub(super) fn parse_digest(raw: &str, code: Code) -> Result<Digest, V2Error> {
    Digest::parse(Some(raw)).map_err(|e| V2Error::Oci(code, format!("invalid digest: {}", e.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table, one row per case (hence its length), read back from the wire bytes.
    #[tokio::test]
    async fn each_refusal_has_its_code_and_status() {
        let d = Digest::parse(Some(&format!("sha256:{}", "a".repeat(64)))).unwrap();
        let cases: Vec<(RegistryError, &str, StatusCode)> = vec![
            (
                RegistryError::UploadUnknown,
                "BLOB_UPLOAD_UNKNOWN",
                StatusCode::NOT_FOUND,
            ),
            (
                RegistryError::UploadBusy,
                "BLOB_UPLOAD_INVALID",
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
            (
                RegistryError::WrongOffset(3),
                "BLOB_UPLOAD_INVALID",
                StatusCode::RANGE_NOT_SATISFIABLE,
            ),
            (
                RegistryError::UploadDigestMismatch(d.clone()),
                "DIGEST_INVALID",
                StatusCode::BAD_REQUEST,
            ),
            (
                RegistryError::OverQuota("full".into()),
                "DENIED",
                StatusCode::FORBIDDEN,
            ),
            (
                RegistryError::PushToLockedJob,
                "DENIED",
                StatusCode::FORBIDDEN,
            ),
            (
                RegistryError::RepositoryUnknown,
                "NAME_UNKNOWN",
                StatusCode::NOT_FOUND,
            ),
            (
                RegistryError::MissingBlob(d.clone()),
                "BLOB_UNKNOWN",
                StatusCode::NOT_FOUND,
            ),
            (
                RegistryError::ManifestUnknown("t".into()),
                "MANIFEST_UNKNOWN",
                StatusCode::NOT_FOUND,
            ),
            (
                RegistryError::BadManifest(ManifestError::Unsupported("x".into())),
                "UNSUPPORTED",
                StatusCode::BAD_REQUEST,
            ),
            (
                RegistryError::BadManifest(ManifestError::BadSize),
                "MANIFEST_INVALID",
                StatusCode::BAD_REQUEST,
            ),
            (
                RegistryError::AliasTag,
                "UNSUPPORTED",
                StatusCode::BAD_REQUEST,
            ),
            (
                RegistryError::BlobInUse {
                    digest: d.clone(),
                    tags: vec!["t1".into()],
                    repo: "main/app".into(),
                },
                "DENIED",
                StatusCode::METHOD_NOT_ALLOWED,
            ),
            (
                RegistryError::Store(StoreError::NotFound),
                "NAME_UNKNOWN",
                StatusCode::NOT_FOUND,
            ),
            (
                RegistryError::Store(StoreError::ClientTimeout),
                "BLOB_UPLOAD_INVALID",
                StatusCode::REQUEST_TIMEOUT,
            ),
            (
                RegistryError::Store(StoreError::NoSpace("x".into())),
                "UNKNOWN",
                StatusCode::INSUFFICIENT_STORAGE,
            ),
        ];
        for (e, code, status) in cases {
            // A refusal's text is the message; a storage error's is for the log only.
            let message = (!matches!(e, RegistryError::Store(_))).then(|| e.to_string());
            let res = oci_error(e.into());
            assert_eq!(res.status(), status, "{code}");
            let allow = res.headers().get(header::ALLOW).cloned();
            assert_eq!(
                allow.is_some(),
                status == StatusCode::METHOD_NOT_ALLOWED,
                "{code}"
            );
            let body = axum::body::to_bytes(res.into_body(), 1 << 12)
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body["errors"][0]["code"], code);
            if let Some(message) = message {
                assert_eq!(body["errors"][0]["message"], message.as_str());
            }
        }
    }

    /// What storage cannot explain is a plain 500, its cause kept for the log.
    #[tokio::test]
    async fn a_storage_failure_is_a_plain_500() {
        let e = StoreError::Io(std::io::Error::other("disk on fire"));
        let res = oci_error(e.into());
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.extensions().get::<Failure>().is_some());
        let body = axum::body::to_bytes(res.into_body(), 1 << 12)
            .await
            .unwrap();
        assert_eq!(body, "500: Internal Server Error");
    }
}
