//! Branches, tags and jobs through the JSON API, checked on the wire: the `Allow` list of a
//! 405 and `/healthz`. Every other case runs in process in tests/router/tree_api.rs.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;

fn seed(s: &TestServer) {
    s.upload_format("/branches/main/t1/job1/fmt/", &[("f1.txt", b"one")]);
    s.upload_format("/branches/main/t2/job1/fmt/", &[("f1.txt", b"two")]);
}

#[test]
fn method_not_allowed_lists_methods() {
    let s = TestServer::start();
    seed(&s);
    for (method, path, allow) in [
        ("PATCH", "/branches/main/", "DELETE,GET,POST"),
        ("PATCH", "/branches/main/t1/", "DELETE,GET,POST"),
        (
            "OPTIONS",
            "/branches/main/t1/job1/",
            "DELETE,GET,PATCH,POST,PUT",
        ),
        ("POST", "/branches/", "GET"),
        ("POST", "/branches/main/t1/job1/fmt/f1.txt", "GET,HEAD,PUT"),
        ("PUT", "/products/", "GET"),
    ] {
        let r = s.request(method, path, &[], Some(b"{}"));
        assert_eq!(
            (r.status, r.header("allow")),
            (405, Some(allow)),
            "{method} {path}"
        );
        assert_eq!(r.text(), "405: Method Not Allowed");
    }
}

#[test]
fn healthz_answers() {
    let s = TestServer::start();
    let r = s.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, r#"{"status": "ok"}"#));
}
