//! Hostile and broken requests get the documented error and change nothing on disk.

use crate::common;
use common::*;
use serde_json::json;

#[test]
fn digest_errors_are_422_and_store_nothing() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/f/", &[("a", b"a")]);
    let before = snapshot(s.root.path());
    let good = digest_of(b"payload");
    let wrong = digest_of(b"something else");
    let r = s.request(
        "PUT",
        "/branches/b/t/j/f/x",
        &[("Digest", &wrong)],
        Some(b"payload"),
    );
    assert_eq!(
        (r.status, r.text()),
        (
            422,
            format!("422: Received data does not match digest: {wrong}")
        )
    );
    // The reason is the message, in the status line too.
    assert_eq!(
        r.reason,
        format!("Received data does not match digest: {wrong}")
    );
    for bad in ["sha256:xyz", "sha256", "crc32:0000", "", "sha256:abcd"] {
        let r = s.request(
            "PUT",
            "/branches/b/t/j/f/x",
            &[("Digest", bad)],
            Some(b"payload"),
        );
        assert_eq!(
            (r.status, r.text()),
            (422, format!("422: invalid digest: {bad}")),
            "{bad}"
        );
    }
    // Without Digest the body is accepted since issue 16 (spec/API.md Q21); a link still
    // needs one (tests/router/plain_uploads.rs).
    let r = s.request(
        "PUT",
        "/branches/b/t/j/f/x",
        &[("X-Dlrepo-Link", &good)],
        Some(b"payload"),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (422, "422: invalid digest: None")
    );
    assert_eq!(before, snapshot(s.root.path()));
    assert!(uploads_left(s.root.path()).is_empty());
    assert_eq!(
        s.request(
            "PUT",
            "/branches/b/t/j/f/x",
            &[("Digest", &good)],
            Some(b"payload")
        )
        .status,
        201
    );
}

#[test]
fn locked_jobs_and_containers_refuse_uploads() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/f/", &[("a", b"a")]);
    s.send_json("PUT", "/branches/b/t/j/", &json!({"job": {"locked": true}}));
    let before = snapshot(s.root.path());
    let r = s.put_file("/branches/b/t/j/f/a", b"changed");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Cannot upload files in locked jobs")
    );
    let r = s.put_file("/branches/b/t/j/new/a", b"new");
    assert_eq!(r.status, 400);
    let r = s.put_file("/branches/b/t/k/container/blobs/sha256/aa/aa", b"x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (
            400,
            "400: Uploading container images must be done with docker push"
        )
    );
    assert_eq!(before, snapshot(s.root.path()));
    assert!(uploads_left(s.root.path()).is_empty());
}

#[test]
fn internal_formats_may_change_in_locked_jobs() {
    let s = App::start_with(&[("DLREPO_INTERNAL_FORMAT_FILTER", "debug$")]);
    s.upload_format("/branches/b/t/j/f/", &[("a", b"a")]);
    s.send_json("PUT", "/branches/b/t/j/", &json!({"job": {"locked": true}}));
    assert_eq!(s.put_file("/branches/b/t/j/debug/sym", b"sym").status, 201);
    assert_eq!(
        s.get("/branches/b/t/j/debug/").json()["artifact_format"]["internal"],
        true
    );
}

#[test]
fn directory_in_the_way_is_a_clear_400() {
    let s = App::start();
    s.put_file("/branches/b/t/j/f/d/x", b"x");
    let r = s.put_file("/branches/b/t/j/f/d", b"d");
    assert_eq!(r.status, 400, "{}", r.text());
    let r = s.put_file("/branches/b/t/j/f/d/x/y", b"y");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(std::fs::read(s.path("branches/b/t/j/f/d/x")).unwrap(), b"x");
}

#[test]
fn oversized_json_and_bad_json() {
    let s = App::start();
    let big = vec![b' '; 2 << 20];
    let r = s.request("PATCH", "/branches/b/t/j/", &[], Some(&big));
    assert_eq!(r.status, 413);
    let r = s.request("PATCH", "/branches/b/t/j/", &[], Some(b"[1,"));
    assert_eq!(r.status, 400);
    assert!(!s.path("branches/b").exists());
}

#[test]
fn names_longer_than_a_file_name_can_be_are_a_clear_400_on_every_route() {
    let s = App::start();
    let max = "n".repeat(255);
    let over = "n".repeat(256);
    // 255 bytes is a name like any other, in every position.
    let ok = format!("/branches/{max}/{max}/{max}/{max}/{max}");
    assert_eq!(s.put_file(&ok, b"x").status, 201);
    assert_eq!(s.get(&ok).body, b"x");
    let user = format!("/~{max}/branches/b/t/j/f/x");
    assert_eq!(s.put_file(&user, b"x").status, 201);
    let before = snapshot(s.root.path());
    let tree = [
        format!("/branches/{over}/"),
        format!("/branches/{over}"),
        format!("/branches/b/{over}/j/"),
        format!("/branches/b/t/{over}/"),
        format!("/branches/b/t/{over}.tar"),
        format!("/branches/b/t/j/{over}/x"),
        format!("/branches/b/t/j/f/{over}"),
        format!("/branches/b/t/j/f/d/{over}/x"),
        format!("/~{over}/branches/"),
        format!("/products/{over}/v/pb/1.0/"),
        // Lower case takes three bytes for this two-byte capital: 130 fit only as sent.
        format!("/branches/{}/", "%C4%B0".repeat(130)),
    ];
    for url in &tree {
        for method in ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"] {
            let body: &[u8] = br#"{"job": {"a": "b"}}"#;
            let d = digest_of(body);
            let r = s.request(method, url, &[("Digest", &d)], Some(body));
            assert_eq!(r.status, 400, "{method} {url}: {}", r.text());
            if method != "HEAD" {
                assert_eq!(r.text(), "400: File name too long", "{method} {url}");
            }
        }
    }
    // Each name fits but the whole path does not (PATH_MAX is 4096 on Linux).
    let deep = vec![max.as_str(); 17].join("/");
    let r = s.put_file(&format!("/branches/b/t/j/f/{deep}"), b"x");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: File name too long")
    );
    for url in [
        format!("/v2/{over}/j/manifests/t"),
        format!("/v2/b/{over}/blobs/uploads/"),
        format!("/v2/u/{over}/b/j/tags/list"),
        format!("/v2/b/j/manifests/{over}"),
    ] {
        for method in ["GET", "PUT", "POST", "DELETE"] {
            let r = s.request(method, &url, &[], Some(b"{}"));
            assert_eq!(r.status, 400, "{method} {url}: {}", r.text());
            assert_eq!(
                r.json()["errors"][0]["code"],
                "NAME_INVALID",
                "{method} {url}"
            );
        }
    }
    assert_eq!(before, snapshot(s.root.path()));
}
