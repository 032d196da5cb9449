//! What a safely served artifact looks like (tests/router/security_headers.rs and
//! tests/blackbox/security_headers.rs).

use super::{Client, Res};

pub const HTML: &[u8] = b"<html><script>fetch('/branches/')</script></html>";

/// The active files of the tests, and what each is.
pub const ACTIVE: &[(&str, &[u8])] = &[
    ("evil.html", HTML),
    (
        "evil.svg",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
    ),
    ("x.js", b"alert(1)"),
    ("x.xml", b"<x/>"),
];

pub fn disposition(name: &str, encoded: &str) -> String {
    format!("attachment; filename=\"{name}\"; filename*=UTF-8''{encoded}")
}

/// A sandboxed download: what every active artifact gets by default.
pub fn assert_sandboxed_download(r: &Res, name: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        r.header("content-security-policy"),
        Some("sandbox"),
        "{what}"
    );
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition(name, name).as_str()),
        "{what}"
    );
}

pub fn browser_get(s: &impl Client, path: &str) -> Res {
    s.request("GET", path, &[("Accept", "text/html,*/*;q=0.8")], None)
}
