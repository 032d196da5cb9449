//! Response headers that keep uploaded files from acting as arbor's own pages (spec/API.md
//! Q51, Q52): which content types a browser would run or render as a document, the
//! sandbox and download headers they get, the policy of the server's own pages, and the
//! one `Content-Disposition` encoder. Pure: no I/O, no configuration lookups.

use axum::http::{HeaderMap, HeaderValue, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What every file response carries: browsers must not guess a runnable type from the bytes
/// of a file served as, say, `text/plain` or `application/octet-stream`.
const NOSNIFF: &str = "nosniff";

/// An active file served the default way: no script, no form, no plugin and an opaque
/// origin, should anything render it despite `Content-Disposition: attachment`.
const SANDBOX: &str = "sandbox";

/// An active file in a tree the operator opted in (`DLREPO_INLINE_ACTIVE_FILTER`): it renders
/// and its scripts run, but always in an opaque origin. `allow-same-origin` is never granted:
/// with scripts allowed it would hand the file arbor's origin, hence every page and API
/// answer the visitor's credentials can read, which is what Q51 is about. Forms, pop-ups
/// (unsandboxed, so external links open normal pages), downloads and dialogs are what
/// generated documentation sites use.
const SANDBOX_INLINE: &str = "sandbox allow-scripts allow-forms allow-popups \
     allow-popups-to-escape-sandbox allow-downloads allow-modals";

/// The pages arbor renders itself (templates/): one style sheet and images from `/static/`,
/// no script at all, no inline style. `data:` images are allowed for `DLREPO_STATIC_DIR` style
/// sheets that inline their icons. Never framed, against click-jacking.
const PAGE_POLICY: &str = "default-src 'self'; script-src 'none'; object-src 'none'; \
     img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// JavaScript under every name a browser executes: the HTML standard's "JavaScript MIME type"
/// list.
const JAVASCRIPT: &[&str] = &[
    "application/ecmascript",
    "application/javascript",
    "application/x-ecmascript",
    "application/x-javascript",
    "text/ecmascript",
    "text/javascript",
    "text/javascript1.0",
    "text/javascript1.1",
    "text/javascript1.2",
    "text/javascript1.3",
    "text/javascript1.4",
    "text/javascript1.5",
    "text/jscript",
    "text/livescript",
    "text/x-ecmascript",
    "text/x-javascript",
];

/// Document types that are neither `+xml` nor JavaScript.
const DOCUMENTS: &[&str] = &["text/html", "text/xml", "application/xml", "text/xsl"];

/// Content types a browser runs, or renders as a document that can run script or load
/// other resources with the server's origin:
/// - HTML (`text/html`);
/// - every XML type (`text/xml`, `application/xml`, any `+xml`: XHTML, SVG, RSS, Atom,
///   MathML, XSLT...), since XML documents can embed XHTML and script elements;
/// - XSL style sheets (`text/xsl`), which turn XML into HTML;
/// - JavaScript ([`JAVASCRIPT`]): opened, it only shows as text, but it is code meant for a
///   page, so it goes out as a download like the pages themselves (against a page loading
///   some other file as a script, `nosniff` on every file is what counts);
/// - MIME archives (`message/*`, `multipart/*`: `.mht`, `.eml`), which some browsers render
///   as HTML;
/// - a type that does not parse: what a browser makes of it is anyone's guess.
///
/// Left out on purpose: CSS (shown as text when opened, and it only styles pages that link
/// it; arbor's pages link only `/static/`), PDF (browsers show it in their own isolated
/// viewer; a forced download would only make manuals harder to read), images other than
/// SVG, plain text, JSON, archives and packages.
pub fn is_active(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return true;
    };
    if kind.is_empty() || sub.is_empty() {
        return true;
    }
    matches!(kind, "message" | "multipart")
        || sub.ends_with("+xml")
        || DOCUMENTS.contains(&essence.as_str())
        || JAVASCRIPT.contains(&essence.as_str())
}

/// Marks a file response: always `nosniff`; for an active type also a sandbox policy and,
/// unless `inline` (the operator's opt-in), `Content-Disposition: attachment` naming `name`.
pub fn protect_file(headers: &mut HeaderMap, content_type: &str, name: &str, inline: bool) {
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, nosniff());
    if !is_active(content_type) {
        return;
    }
    let policy = if inline { SANDBOX_INLINE } else { SANDBOX };
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(policy),
    );
    if !inline {
        headers.insert(header::CONTENT_DISPOSITION, attachment(name));
    }
}

/// The headers of every page arbor renders (views/).
pub fn protect_page(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, nosniff());
}

/// `X-Content-Type-Options: nosniff`, for responses that are not files (tar streams).
pub fn nosniff() -> HeaderValue {
    HeaderValue::from_static(NOSNIFF)
}

/// RFC 5987 `attr-char`: what `filename*` may hold unencoded.
const ATTR_CHAR: AsciiSet = NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="..."; filename*=UTF-8''...` (RFC 6266 §4.3, RFC 5987): the only way a
/// file name reaches a `Content-Disposition` header. `filename*` carries the exact name
/// (percent-encoded UTF-8); the quoted `filename` is an ASCII approximation for old clients,
/// where `"`, `\`, controls, non-ASCII and `%` (which some clients decode, RFC 6266 App. D)
/// become `_`, so nothing in it can end the string or add a parameter. Any name gives a
/// valid header value; an empty one gives a bare `attachment`.
pub fn attachment(name: &str) -> HeaderValue {
    if name.is_empty() {
        return HeaderValue::from_static("attachment");
    }
    let fallback: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '%') => c,
            _ => '_',
        })
        .collect();
    let exact = utf8_percent_encode(name, &ATTR_CHAR);
    let value = format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{exact}");
    // Visible ASCII and spaces only, by construction.
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_types() {
        for t in [
            "text/html",
            "text/html; charset=utf-8",
            "TEXT/HTML",
            " application/xhtml+xml ",
            "image/svg+xml",
            "text/xml",
            "application/xml",
            "application/rss+xml",
            "application/atom+xml",
            "application/mathml+xml",
            "text/xsl",
            "application/javascript",
            "text/javascript",
            "application/ecmascript",
            "text/ecmascript",
            "application/x-javascript",
            "text/x-javascript",
            "text/jscript",
            "message/rfc822",
            "multipart/related",
            "nonsense",
            "text/",
            "",
        ] {
            assert!(is_active(t), "{t:?} must count as active");
        }
        for t in [
            "text/plain",
            "text/plain; charset=utf-8",
            "text/css",
            "text/csv",
            "application/pdf",
            "application/json",
            "application/octet-stream",
            "application/gzip",
            "application/x-tar",
            "application/vnd.oci.image.manifest.v1+json",
            "image/png",
            "image/jpeg",
            "video/mp4",
            "font/woff2",
            // Not XML: the `xml` must be the `+xml` suffix.
            "application/x-xmlish",
        ] {
            assert!(!is_active(t), "{t:?} must not count as active");
        }
    }

    #[test]
    fn the_types_mime_guess_gives_common_active_names_are_active() {
        for name in [
            "a.html", "a.htm", "a.xhtml", "a.svg", "a.xml", "a.js", "a.mjs", "a.xsl", "a.mht",
            "a.eml",
        ] {
            let guess = mime_guess::from_path(name).first_or_octet_stream();
            assert!(is_active(guess.as_ref()), "{name}: {guess}");
        }
        for name in [
            "a.txt", "a.tar.gz", "a.png", "a.deb", "a.json", "a.css", "a",
        ] {
            let guess = mime_guess::from_path(name).first_or_octet_stream();
            assert!(!is_active(guess.as_ref()), "{name}: {guess}");
        }
    }

    fn cd(name: &str) -> String {
        attachment(name).to_str().expect("ASCII").to_owned()
    }

    #[test]
    fn plain_names_are_quoted_and_encoded() {
        assert_eq!(
            cd("a.txt"),
            "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
        );
        assert_eq!(
            cd("only file.bin"),
            "attachment; filename=\"only file.bin\"; filename*=UTF-8''only%20file.bin"
        );
        assert_eq!(cd(""), "attachment");
    }

    #[test]
    fn hostile_names_cannot_escape_the_quotes() {
        assert_eq!(
            cd("a\";b=c;\\.txt"),
            "attachment; filename=\"a_;b=c;_.txt\"; filename*=UTF-8''a%22%3Bb%3Dc%3B%5C.txt"
        );
        assert_eq!(
            cd("x\r\nSet-Cookie: a=b"),
            "attachment; filename=\"x__Set-Cookie: a=b\"; \
             filename*=UTF-8''x%0D%0ASet-Cookie%3A%20a%3Db"
        );
        assert_eq!(
            cd("résumé 100%.pdf"),
            "attachment; filename=\"r_sum_ 100_.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20100%25.pdf"
        );
        assert_eq!(
            cd("日本\u{7f}.txt"),
            "attachment; filename=\"___.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC%7F.txt"
        );
        // attr-chars stay as they are.
        assert_eq!(
            cd("a!#$&+-.^_`|~z"),
            "attachment; filename=\"a!#$&+-.^_`|~z\"; filename*=UTF-8''a!#$&+-.^_`|~z"
        );
    }

    #[test]
    fn the_quoted_fallback_is_always_clean() {
        let nasty: String = (0u32..0x250).filter_map(char::from_u32).collect();
        let v = cd(&nasty);
        let quoted = v
            .strip_prefix("attachment; filename=\"")
            .and_then(|s| s.split_once("\"; filename*=UTF-8''"))
            .expect("shape");
        assert!(
            quoted
                .0
                .chars()
                .all(|c| (' '..='~').contains(&c) && !matches!(c, '"' | '\\' | '%')),
            "{:?}",
            quoted.0
        );
        assert!(
            quoted
                .1
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~%".contains(&b))
        );
    }

    #[test]
    fn file_headers() {
        let mut h = HeaderMap::new();
        protect_file(&mut h, "text/html", "evil.html", false);
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["content-security-policy"], "sandbox");
        assert_eq!(
            h["content-disposition"],
            "attachment; filename=\"evil.html\"; filename*=UTF-8''evil.html"
        );
        let mut h = HeaderMap::new();
        protect_file(&mut h, "text/html", "doc.html", true);
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().expect("ASCII");
        assert!(csp.starts_with("sandbox allow-scripts"), "{csp}");
        assert!(!csp.contains("allow-same-origin"), "{csp}");
        assert!(!csp.contains("allow-top-navigation"), "{csp}");
        assert!(h.get("content-disposition").is_none());
        let mut h = HeaderMap::new();
        protect_file(&mut h, "text/plain", "a.txt", false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
}
