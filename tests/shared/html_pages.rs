//! Reading the HTML pages as a browser would (tests/router/pages.rs and
//! tests/blackbox/pages.rs), on either tier's server.

use super::Client;

pub const HTML: (&str, &str) = ("Accept", "text/html,application/xhtml+xml,*/*;q=0.8");

pub fn page(s: &impl Client, path: &str) -> String {
    let r = s.request("GET", path, &[HTML], None);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{path}"
    );
    r.text()
}

/// A job with a product, a nested format and a hostile job name next to it.
pub fn seeded<S: Client>() -> S {
    let s = S::start();
    let meta = serde_json::json!({"job": {"product": "foo", "product_variant": "x86",
        "product_branch": "1", "version": "1.0"}});
    s.upload_format(
        "/branches/main/t1/job1/fmt/",
        &[("dir/a%20b.txt", b"hello"), ("f2.txt", b"hi")],
    );
    assert_eq!(
        s.send_json("PATCH", "/branches/main/t1/job1/", &meta)
            .status,
        200
    );
    s.upload_format("/branches/main/t1/%3Cscript%3E/fmt/", &[("x", b"x")]);
    s
}
