//! File responses (spec/API.md §5.2): Digest, strong ETag, Last-Modified, conditional
//! requests, single byte ranges, and the X-Sendfile hand-off to a reverse proxy.

use super::caching::{self, Freshness};
use super::security;
use crate::storage::{BlobReader, ByteRange};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How a file answer should be sent.
pub struct Download<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// The URL's file name, for the Content-Type guess and a forced download's name.
    pub name: &'a str,
    pub chunk_size: usize,
    pub x_sendfile: Option<&'a str>,
    /// The registry sends the digest as `Docker-Content-Digest` and a manifest media type.
    pub digest_header: &'static str,
    pub content_type: Option<String>,
    /// The connection, when it can send files with `sendfile(2)`.
    pub conn: Option<&'a crate::zerocopy::ZcConn>,
    /// The operator lets active content here render inline (`Config::serves_inline`); it is
    /// sandboxed all the same (spec/API.md Q51, `http::security`).
    pub inline: bool,
    /// How long caches may reuse the answer (see `caching`).
    pub freshness: Freshness,
}

/// The `Content-Type` a file named `name` is served with: guessed from its extension.
pub fn content_type_of(name: &str) -> String {
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_owned()
}

fn etag(file: &BlobReader) -> String {
    // The content digest is a strong validator; files without one fall back to mtime+size.
    match file.digest().and_then(|d| d.split_once(':')) {
        Some((_, hex)) => format!("\"{hex}\""),
        None => {
            let ns = file
                .modified()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            format!("\"{ns:x}-{:x}\"", file.len())
        }
    }
}

pub(super) fn etag_matches(list: &str, tag: &str) -> bool {
    list.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == tag)
}

/// Truncated to whole seconds, as HTTP dates are.
fn secs(t: SystemTime) -> SystemTime {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    UNIX_EPOCH + Duration::from_secs(d.as_secs())
}

pub(super) fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses a single `bytes=` range against `len`. `Ok(None)`: serve the whole file (no
/// header, or a form we do not handle such as several ranges); `Err(())`: 416.
pub(super) fn parse_range(value: &str, len: u64) -> Result<Option<ByteRange>, ()> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        ByteRange {
            start: len.saturating_sub(n),
            end: len - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(());
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

impl Download<'_> {
    pub fn respond(self, file: BlobReader) -> Response {
        let freshness = self.freshness;
        let mut res = self.answer(file);
        caching::mark(&mut res, freshness);
        res
    }

    fn answer(self, file: BlobReader) -> Response {
        let mut base = HeaderMap::new();
        if let Some(d) = file.digest().and_then(|d| HeaderValue::from_str(d).ok()) {
            base.insert(self.digest_header, d);
        }
        let ctype = self
            .content_type
            .clone()
            .unwrap_or_else(|| content_type_of(self.name));
        // On every answer, X-Sendfile included (the example nginx site passes them on).
        security::protect_file(&mut base, &ctype, self.name, self.inline);
        if let Some(name) = self.x_sendfile {
            return self.hand_off(name, &file, base);
        }
        let tag = etag(&file);
        let modified = secs(file.modified());
        if let Ok(v) = HeaderValue::from_str(&tag) {
            base.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
            base.insert(header::LAST_MODIFIED, v);
        }
        if let Some(status) = precondition(self.headers, self.method, &tag, Some(modified)) {
            return (status, base).into_response();
        }
        if let Ok(v) = HeaderValue::from_str(&ctype) {
            base.insert(header::CONTENT_TYPE, v);
        }
        base.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        self.send(file, base, &tag)
    }

    /// X-Sendfile: an empty answer naming the file; the proxy does ranges and validators
    /// itself (spec/API.md §5.2).
    fn hand_off(&self, name: &str, file: &BlobReader, mut base: HeaderMap) -> Response {
        if let (Ok(n), Ok(v)) = (
            header::HeaderName::try_from(name),
            HeaderValue::from_str(&file.accel_path()),
        ) {
            base.insert(n, v);
        }
        if let Some(ct) = self
            .content_type
            .as_deref()
            .and_then(|c| HeaderValue::from_str(c).ok())
        {
            base.insert(header::CONTENT_TYPE, ct);
        }
        base.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        (StatusCode::OK, base).into_response()
    }

    /// The file, or the one range of it asked for, with `base` headers.
    fn send(self, file: BlobReader, mut base: HeaderMap, tag: &str) -> Response {
        let h = self.headers;
        let len = file.len();
        let (status, range, body_len) = match ranged(h, len, tag, &mut base) {
            Ok(answer) => answer,
            Err(()) => return (StatusCode::RANGE_NOT_SATISFIABLE, base).into_response(),
        };
        if self.method == Method::HEAD || body_len == 0 {
            return (status, base).into_response();
        }
        if let Some(content) = file.content() {
            let body = match range {
                Some(r) => content.slice(r.start as usize..=r.end as usize),
                None => content.clone(),
            };
            return (status, base, Body::from(body)).into_response();
        }
        let body = match self.conn.filter(|c| c.sends_files()) {
            Some(conn) => match file.into_send_job(range) {
                Ok(job) => Body::from_stream(conn.body(job)),
                Err(e) => {
                    let mut res = StatusCode::INTERNAL_SERVER_ERROR.into_response();
                    res.extensions_mut()
                        .insert(super::observe::Failure::error(format!(
                            "cannot queue a file body: {e}"
                        )));
                    return res;
                }
            },
            None => Body::from_stream(file.into_stream(range, self.chunk_size)),
        };
        (status, base, body).into_response()
    }
}

/// What a `len`-byte body answers to the request's `Range`, honoured only when its
/// `If-Range` (if any) names `tag`: the status, the range and the length sent, with
/// `Content-Range` and `Content-Length` set in `base`; or `Err` for a 416, with its
/// `Content-Range` set in `base`.
pub(super) fn ranged(
    h: &HeaderMap,
    len: u64,
    tag: &str,
    base: &mut HeaderMap,
) -> Result<(StatusCode, Option<ByteRange>, u64), ()> {
    let if_range_ok = header_str(h, header::IF_RANGE).is_none_or(|v| v == tag);
    let range = match header_str(h, header::RANGE).filter(|_| if_range_ok) {
        Some(r) => match parse_range(r, len) {
            Ok(r) => r,
            Err(()) => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    base.insert(header::CONTENT_RANGE, v);
                }
                return Err(());
            }
        },
        None => None,
    };
    let (status, body_len) = match range {
        Some(r) => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start, r.end)) {
                base.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, r.end + 1 - r.start)
        }
        None => (StatusCode::OK, len),
    };
    base.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    Ok((status, range, body_len))
}

/// The 412 or 304 the conditional headers ask for, in RFC 9110 §13.2.2 order:
/// If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
/// `modified` is `None` for answers without `Last-Modified`: date conditions then never
/// hold against them.
pub(super) fn precondition(
    h: &HeaderMap,
    method: &Method,
    tag: &str,
    modified: Option<SystemTime>,
) -> Option<StatusCode> {
    if let Some(im) = header_str(h, header::IF_MATCH) {
        if !etag_matches(im, tag) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let Some(t) =
        header_str(h, header::IF_UNMODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok())
        && modified.is_some_and(|m| m > t)
    {
        return Some(StatusCode::PRECONDITION_FAILED);
    }
    let safe = method == Method::GET || method == Method::HEAD;
    if let Some(inm) = header_str(h, header::IF_NONE_MATCH) {
        if etag_matches(inm, tag) && safe {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let Some(t) =
        header_str(h, header::IF_MODIFIED_SINCE).and_then(|v| httpdate::parse_http_date(v).ok())
        && modified.is_some_and(|m| m <= t)
        && safe
    {
        return Some(StatusCode::NOT_MODIFIED);
    }
    None
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
        assert_eq!(parse_range("bytes=8-100", 10), r(8, 9));
        assert_eq!(
            parse_range("bytes=4294967296-", 8589934592),
            r(4294967296, 8589934591)
        );
        assert_eq!(parse_range("bytes=10-", 10), Err(()));
        assert_eq!(parse_range("bytes=5-2", 10), Err(()));
        assert_eq!(parse_range("bytes=0-1,3-4", 10), Ok(None));
        assert_eq!(parse_range("items=0-1", 10), Ok(None));
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
