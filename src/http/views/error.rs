//! Error pages for browsers (issue 5): the same status, reason phrase and headers (`Allow`,
//! `WWW-Authenticate`) as the plain-text answer API clients get, with an HTML body.

use super::{Chrome, html_response};
use askama::Template;
use axum::response::Response;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub code: u16,
    pub reason: String,
    pub hint: &'static str,
}

/// Turns a plain 4xx answer into a page; anything else is returned unchanged.
pub fn error_page(plain: Response, path: &str, login: Option<String>) -> Response {
    let status = plain.status();
    if !status.is_client_error() {
        return plain;
    }
    let reason = plain
        .extensions()
        .get::<hyper::ext::ReasonPhrase>()
        .and_then(|r| std::str::from_utf8(r.as_bytes()).ok())
        .or(status.canonical_reason())
        .unwrap_or("Error")
        .to_owned();
    let hint = match status.as_u16() {
        401 => "You need to log in, or your account may not read this page.",
        403 => "Your account may not read this page.",
        404 => "Nothing here: the name may be misspelt, or it was deleted.",
        _ => "",
    };
    let mut chrome = Chrome::for_path(path, login);
    chrome.title = format!("{} {reason} — dlrepo", status.as_u16());
    let page = ErrorPage {
        chrome,
        code: status.as_u16(),
        reason,
        hint,
    };
    let Ok(body) = page.render() else {
        return plain;
    };
    let (mut parts, _) = plain.into_parts();
    let mut res = html_response(body);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    for (k, v) in res.headers() {
        parts.headers.insert(k.clone(), v.clone());
    }
    *res.headers_mut() = parts.headers;
    *res.status_mut() = status;
    *res.extensions_mut() = parts.extensions;
    res
}
