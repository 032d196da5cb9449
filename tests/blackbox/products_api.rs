//! The products view built from job metadata (spec/API.md §3.10, spec/LAYOUT.md §4), in a
//! real server; tests/router/products_api.rs has the others.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use serde_json::json;

fn meta(p: &str, v: &str, pb: &str, ver: &str) -> serde_json::Value {
    json!({"job": {"product": p, "product_variant": v, "product_branch": pb, "version": ver}})
}

#[test]
fn metadata_links_jobs_into_products() {
    let s = TestServer::start();
    s.upload_format("/branches/main/t1/job1/fmt/", &[("dir/f1.txt", b"1")]);
    assert_eq!(
        s.send_json(
            "PATCH",
            "/branches/main/t1/job1/",
            &meta("Foo", "x86", "1.0", "1.0.1")
        )
        .status,
        200
    );
    let link = std::fs::read_link(s.path("branches/main/t1/job1/.product")).unwrap();
    assert_eq!(
        link.to_str(),
        Some("../../../../products/foo/x86/1.0/1.0.1")
    );
    let link = std::fs::read_link(s.path("products/foo/x86/1.0/1.0.1/fmt")).unwrap();
    assert_eq!(
        link.to_str(),
        Some("../../../../../branches/main/t1/job1/fmt")
    );
    assert_eq!(
        s.get("/products/").text(),
        r#"{"products": [{"name": "foo"}]}"#
    );
    assert_eq!(
        s.get("/products/foo/").text(),
        r#"{"product": {"name": "foo", "product_variants": [{"name": "x86"}]}}"#
    );
    assert_eq!(
        s.get("/products/foo/x86/").text(),
        r#"{"product_variant": {"name": "x86", "product_branches": [{"name": "1.0"}]}}"#
    );
    let pb = s.get("/products/foo/x86/1.0/").json();
    let v = &pb["product_branch"]["versions"][0];
    assert_eq!(
        (
            v["name"].as_str(),
            v["locked"].as_bool(),
            v["released"].as_bool(),
            v["stable"].as_bool()
        ),
        (Some("1.0.1"), Some(false), Some(false), Some(false))
    );
    assert_eq!(
        s.get("/products/foo/x86/1.0/1.0.1/").text(),
        r#"{"version": {"name": "1.0.1", "artifact_formats": ["fmt"]}}"#
    );
    assert_eq!(
        s.get("/products/foo/x86/1.0/1.0.1/fmt/dir/f1.txt").body,
        b"1"
    );
    assert_eq!(
        s.get("/products/foo/x86/1.0/1.0.1/fmt/").json()["artifact_format"]["files"],
        json!(["dir/f1.txt"])
    );
    // Redirects, aliases, and a stable tag making the version stable.
    assert_eq!(
        s.get("/products/foo").header("location"),
        Some("/products/foo/")
    );
    assert_eq!(
        s.get("/products/FOO/x86/1.0/1.0.1").header("location"),
        Some("/products/foo/x86/1.0/1.0.1/")
    );
    assert_eq!(
        s.get("/products/foo/x86/1.0/latest/").header("location"),
        Some("/products/foo/x86/1.0/1.0.1/")
    );
    assert_eq!(
        s.get("/products/foo/x86/1.0/latest.tar").header("location"),
        Some("/products/foo/x86/1.0/1.0.1.tar")
    );
    assert_eq!(s.get("/products/foo/x86/1.0/stable/").status, 404);
    s.send_json(
        "POST",
        "/branches/main/t1/",
        &json!({"tag": {"stable": true}}),
    );
    assert_eq!(
        s.get("/products/foo/x86/1.0/stable/").header("location"),
        Some("/products/foo/x86/1.0/1.0.1/")
    );
    assert_eq!(s.get("/products/nope/").status, 404);
    // Writes on product URLs are refused.
    let r = s.put_file("/products/foo/x86/1.0/1.0.1/fmt/x", b"x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Uploading products is not supported")
    );
    let r = s.delete("/products/foo/x86/1.0/1.0.1/fmt/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Deleting product formats is not supported")
    );
    let r = s.request("PATCH", "/products/foo/x86/1.0/1.0.1/fmt/", &[], None);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}
