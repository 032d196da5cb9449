//! Registry answers: the OCI JSON error envelope (spec/CONTAINER.md §2), JSON bodies, empty
//! answers with headers, and manifest/blob file bodies (ETag, conditional GET, one byte
//! range, X-Sendfile, `sendfile(2)` through the connection).

use crate::state::AppState;
use crate::storage::registry::{Code, RegError};
use crate::storage::{BlobReader, ByteRange, StoreError};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub static DIGEST: HeaderName = HeaderName::from_static("docker-content-digest");
static API_VERSION: HeaderName = HeaderName::from_static("docker-distribution-api-version");

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
    pub file: BlobReader,
    pub content_type: String,
    pub digest: String,
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
                let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                return res;
            }
            Reply::File(f) => {
                let FileReply {
                    req,
                    file,
                    content_type,
                    digest,
                } = *f;
                send_file(app, &req, file, &content_type, &digest)
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

/// Plain-text answer for route misses and 405s (spec/API.md §1.4).
pub fn plain(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}: {reason}", status.as_u16()),
    )
        .into_response()
}

fn code_info(code: Code) -> (&'static str, StatusCode) {
    use Code::*;
    match code {
        BlobUnknown => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
        BlobUploadInvalid => ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST),
        BlobUploadUnknown => ("BLOB_UPLOAD_UNKNOWN", StatusCode::NOT_FOUND),
        DigestInvalid => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
        ManifestBlobUnknown => ("MANIFEST_BLOB_UNKNOWN", StatusCode::NOT_FOUND),
        ManifestInvalid => ("MANIFEST_INVALID", StatusCode::BAD_REQUEST),
        ManifestUnknown => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
        NameUnknown => ("NAME_UNKNOWN", StatusCode::NOT_FOUND),
        SizeInvalid => ("SIZE_INVALID", StatusCode::BAD_REQUEST),
        Denied => ("DENIED", StatusCode::FORBIDDEN),
        Unsupported => ("UNSUPPORTED", StatusCode::BAD_REQUEST),
        RangeInvalid => ("BLOB_UPLOAD_INVALID", StatusCode::RANGE_NOT_SATISFIABLE),
    }
}

/// The only mapping from storage errors to registry answers.
pub fn oci_error(e: RegError) -> Response {
    let (code, status, message) = match e {
        RegError::Oci(code, msg) => {
            let (name, status) = code_info(code);
            (name, status, msg)
        }
        RegError::Store(StoreError::NotFound) => (
            "NAME_UNKNOWN",
            StatusCode::NOT_FOUND,
            "repository name not known to registry".into(),
        ),
        RegError::Store(StoreError::BadRequest(why)) => ("DENIED", StatusCode::FORBIDDEN, why),
        RegError::Store(StoreError::Interrupted(why)) => {
            ("BLOB_UPLOAD_INVALID", StatusCode::BAD_REQUEST, why)
        }
        RegError::Store(other) => {
            tracing::error!(error = %other, "registry request failed");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "500: Internal Server Error",
            )
                .into_response();
        }
    };
    let body = json!({"errors": [{"code": code, "message": message}]});
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        crate::pyjson::to_string(&body),
    )
        .into_response();
    res.headers_mut().insert(
        API_VERSION.clone(),
        HeaderValue::from_static("registry/2.0"),
    );
    res
}

fn header_str(req: &Request, name: HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// One `bytes=a-b`, `a-` or `-n` range; `Ok(None)` for none or forms served whole.
fn parse_range(value: &str, len: u64) -> Result<Option<ByteRange>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    let Some((a, b)) = spec.split_once('-').filter(|_| !spec.contains(',')) else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return Err(());
    }
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        ByteRange {
            start: len.saturating_sub(n),
            end: len - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = match b {
            "" => len - 1,
            b => b.parse::<u64>().map_err(|_| ())?.min(len - 1),
        };
        if start >= len || end < start {
            return Err(());
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

fn send_file(
    app: &AppState,
    req: &Request,
    file: BlobReader,
    content_type: &str,
    digest: &str,
) -> Response {
    let mut h = axum::http::HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(digest) {
        h.insert(DIGEST.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Some(name) = &app.config.x_sendfile_header
        && let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::from_str(&file.accel_path()),
        )
    {
        // The proxy sends the body, ranges included (spec/API.md §5.2).
        h.insert(n, v);
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        return (StatusCode::OK, h).into_response();
    }
    // Content-addressed: the digest is a strong validator.
    let etag = format!("\"{}\"", digest.split_once(':').map_or(digest, |x| x.1));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(file.modified())) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if header_str(req, header::IF_NONE_MATCH).is_some_and(|l| {
        l.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*")
    }) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    let len = file.len();
    let if_range_ok = header_str(req, header::IF_RANGE).is_none_or(|v| v == etag);
    let range = match header_str(req, header::RANGE).filter(|_| if_range_ok) {
        Some(r) => match parse_range(r, len) {
            Ok(r) => r,
            Err(()) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    h.insert(header::CONTENT_RANGE, v);
                }
                return (StatusCode::RANGE_NOT_SATISFIABLE, h).into_response();
            }
        },
        None => None,
    };
    let (status, body_len) = match range {
        Some(r) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start, r.end)) {
                h.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, r.end + 1 - r.start)
        }
        None => (StatusCode::OK, len),
    };
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    if req.method() == Method::HEAD || body_len == 0 {
        return (status, h).into_response();
    }
    let conn = req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::zerocopy::ZcConn>>()
        .map(|c| c.0.clone());
    let body = match conn {
        Some(conn) => match file.into_send_job(range) {
            Ok(job) => Body::from_stream(conn.body(job)),
            Err(e) => {
                tracing::error!(error = %e, "cannot queue a file body");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        },
        None => Body::from_stream(file.into_stream(range, app.repo.chunk_size())),
    };
    (status, h, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |a, b| Ok(Some(ByteRange { start: a, end: b }));
        assert_eq!(parse_range("bytes=0-4", 10), r(0, 4));
        assert_eq!(parse_range("bytes=5-", 10), r(5, 9));
        assert_eq!(parse_range("bytes=-3", 10), r(7, 9));
        assert_eq!(parse_range("bytes=10-", 10), Err(()));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Ok(None));
    }
}
