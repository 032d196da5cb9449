//! `Cache-Control` on downloads: the handler says how long its answer stays valid (content
//! named by digest never changes; anything else is revalidated with its ETag), the access
//! guard says who may keep it (a shared cache only when anonymous callers may read the URL).

use axum::http::{HeaderValue, header};
use axum::response::Response;

/// How a cache may reuse an answer, as its handler knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A URL that names its content by digest (registry blobs, manifests by digest).
    Immutable,
    /// Anything else: reuse only after a conditional request with the ETag.
    Revalidate,
}

/// Marks `res` for [`finish`].
pub fn mark(res: &mut Response, freshness: Freshness) {
    res.extensions_mut().insert(freshness);
}

/// Writes the `Cache-Control` of a marked answer; `public()` tells whether anyone, without
/// credentials, may read what the request read (asked only for marked answers). Protected
/// answers are `private`, so that no shared cache hands them to someone else.
pub fn finish(res: &mut Response, public: impl FnOnce() -> bool) {
    let Some(freshness) = res.extensions().get::<Freshness>().copied() else {
        return;
    };
    let value = match (freshness, public()) {
        (Freshness::Immutable, true) => "public, max-age=31536000, immutable",
        (Freshness::Immutable, false) => "private, max-age=31536000, immutable",
        (Freshness::Revalidate, true) => "no-cache",
        (Freshness::Revalidate, false) => "private, no-cache",
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    fn finished(freshness: Option<Freshness>, public: bool) -> Option<String> {
        let mut res = ().into_response();
        if let Some(f) = freshness {
            mark(&mut res, f);
        }
        finish(&mut res, || public);
        res.headers()
            .get(header::CACHE_CONTROL)
            .map(|v| v.to_str().unwrap_or_default().to_owned())
    }

    #[test]
    fn who_may_keep_it_comes_from_the_guard() {
        assert_eq!(
            finished(Some(Freshness::Immutable), true).as_deref(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            finished(Some(Freshness::Immutable), false).as_deref(),
            Some("private, max-age=31536000, immutable")
        );
        assert_eq!(
            finished(Some(Freshness::Revalidate), true).as_deref(),
            Some("no-cache")
        );
        assert_eq!(
            finished(Some(Freshness::Revalidate), false).as_deref(),
            Some("private, no-cache")
        );
        assert_eq!(finished(None, true), None);
    }
}
