//! Response shapes of the plain API (spec/API.md §1.3–1.4): PYJSON bodies, the
//! `"{code}: {reason}"` error bodies with the same reason in the status line, redirects.

use super::observe::Failure;
use crate::pyjson;
use crate::storage::StoreError;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::ext::ReasonPhrase;
use serde_json::Value;

/// The 400 reason for a name or path the filesystem could never hold.
pub(crate) const TOO_LONG: &str = "File name too long";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Not Found")]
    NotFound,
    /// A denial found past the guard; the dispatcher answers it as the guard would.
    #[error("Unauthorized")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    /// 405 with the `Allow` list of the route.
    #[error("Method Not Allowed")]
    MethodNotAllowed(&'static str),
    #[error("{0}")]
    Status(StatusCode, String),
    /// 507: the disk is full; the detail goes to the log only.
    #[error("Insufficient Storage: {0}")]
    NoSpace(String),
    #[error(transparent)]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Denied => ApiError::Unauthorized,
            StoreError::Refused(why) => ApiError::BadRequest(why),
            e @ (StoreError::InvalidDigest(_) | StoreError::DigestMismatch(_)) => {
                ApiError::Unprocessable(e.to_string())
            }
            StoreError::PostProcessFailed => {
                ApiError::Status(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            // A path under the limit per name but over the platform's whole-path limit.
            e if e.os_error() == Some(nix::libc::ENAMETOOLONG) => {
                ApiError::BadRequest(TOO_LONG.into())
            }
            StoreError::Conflict(why) => ApiError::Status(StatusCode::CONFLICT, why),
            StoreError::NoSpace(why) => ApiError::NoSpace(why),
            StoreError::ClientTimeout => {
                ApiError::Status(StatusCode::REQUEST_TIMEOUT, "Request Timeout".into())
            }
            // The client is gone or sent a broken body; the answer is mostly for logs.
            StoreError::Interrupted(why) => {
                ApiError::BadRequest(format!("upload interrupted: {why}"))
            }
            e => ApiError::Internal(Box::new(e)),
        }
    }
}

impl From<crate::model::NotFound> for ApiError {
    fn from(_: crate::model::NotFound) -> ApiError {
        ApiError::NotFound
    }
}

/// `status` with the plain-text body `"{code}: {reason}"` and `reason` in the status line.
pub fn plain_status(status: StatusCode, reason: &str) -> Response {
    let mut res = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}: {reason}", status.as_u16()),
    )
        .into_response();
    // Reason phrases must be visible ASCII; fall back to the standard one otherwise.
    if let Ok(phrase) = ReasonPhrase::try_from(reason.as_bytes().to_vec()) {
        res.extensions_mut().insert(phrase);
    }
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::NotFound => plain_status(StatusCode::NOT_FOUND, "Not Found"),
            ApiError::Unauthorized => plain_status(StatusCode::UNAUTHORIZED, "Unauthorized"),
            ApiError::BadRequest(why) => plain_status(StatusCode::BAD_REQUEST, &why),
            ApiError::Unprocessable(why) => plain_status(StatusCode::UNPROCESSABLE_ENTITY, &why),
            ApiError::Status(status, why) => plain_status(status, &why),
            ApiError::MethodNotAllowed(allow) => {
                let mut res = plain_status(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static(allow));
                res
            }
            ApiError::NoSpace(why) => {
                let mut res =
                    plain_status(StatusCode::INSUFFICIENT_STORAGE, "Insufficient Storage");
                res.extensions_mut().insert(Failure::refused(why));
                res
            }
            ApiError::Internal(err) => {
                let mut res = (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [
                        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                        (header::CONNECTION, "close"),
                    ],
                    "500 Internal Server Error\n\nServer got itself in trouble",
                )
                    .into_response();
                res.extensions_mut()
                    .insert(ReasonPhrase::from_static(b"Internal Server Error"));
                // Logged with the request's method and URL on the way out (observe.rs).
                res.extensions_mut().insert(Failure::error(err.to_string()));
                res
            }
        }
    }
}

pub type ApiResult = Result<Response, ApiError>;

/// A JSON answer written as Python's `json.dumps` writes it.
pub fn json(value: &Value) -> Response {
    json_bytes(pyjson::to_string(value).into())
}

/// A JSON answer already rendered (by [`json`]'s rules).
pub fn json_bytes(body: bytes::Bytes) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Wraps a serialisable view in its one-key envelope, e.g. `{"tag": {...}}`.
pub fn json_of(key: &str, view: &impl serde::Serialize) -> ApiResult {
    let value = serde_json::to_value(view).map_err(|e| ApiError::Internal(Box::new(e)))?;
    let mut m = serde_json::Map::new();
    m.insert(key.to_owned(), value);
    Ok(json(&Value::Object(m)))
}

/// 200 with an empty body (successful writes).
pub fn ok() -> ApiResult {
    Ok(StatusCode::OK.into_response())
}

pub fn created() -> ApiResult {
    Ok(plain_status(StatusCode::CREATED, "Created"))
}

pub fn text(body: String) -> ApiResult {
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response())
}

/// 302 to an absolute path (spec/API.md §1.4): percent-encoded, query dropped.
pub fn redirect(path: &str) -> Response {
    let mut res = plain_status(StatusCode::FOUND, "Found");
    let location = crate::model::escape::location(path);
    if let Ok(v) = HeaderValue::from_str(&location) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}
