//! The products view built from job metadata (spec/API.md §3.10, spec/LAYOUT.md §4).

use crate::common;
use common::*;
use serde_json::json;

fn meta(p: &str, v: &str, pb: &str, ver: &str) -> serde_json::Value {
    json!({"job": {"product": p, "product_variant": v, "product_branch": pb, "version": ver}})
}

#[test]
fn relinking_and_deleting_keep_the_tree_clean() {
    let s = App::start();
    s.upload_format("/branches/main/t1/bin/bin/", &[("a", b"a")]);
    s.upload_format("/branches/main/t1/doc/doc/", &[("b", b"b")]);
    s.send_json("PATCH", "/branches/main/t1/bin/", &meta("p", "v", "b", "1"));
    s.send_json("PATCH", "/branches/main/t1/doc/", &meta("p", "v", "b", "1"));
    // One version takes formats from two jobs.
    assert_eq!(
        s.get("/products/p/v/b/1/").json()["version"]["artifact_formats"],
        json!(["bin", "doc"])
    );
    // A clash gives a clear 400 without server paths (spec/API.md Q16).
    s.upload_format("/branches/main/t1/dup/bin/", &[("c", b"c")]);
    let r = s.send_json("PATCH", "/branches/main/t1/dup/", &meta("p", "v", "b", "1"));
    assert_eq!(r.status, 400);
    assert!(
        !r.text().contains(s.root.path().to_str().unwrap()),
        "{}",
        r.text()
    );
    // Moving a job to another version unlinks it from the first one.
    s.send_json(
        "PATCH",
        "/branches/main/t1/doc/",
        &json!({"job": {"version": "2"}}),
    );
    assert_eq!(
        s.get("/products/p/v/b/1/").json()["version"]["artifact_formats"],
        json!(["bin"])
    );
    assert_eq!(
        s.get("/products/p/v/b/2/").json()["version"]["artifact_formats"],
        json!(["doc"])
    );
    // Deleting the jobs removes the whole product tree they made.
    assert_eq!(s.delete("/branches/main/t1/doc/").status, 200);
    assert!(!s.path("products/p/v/b/2").exists());
    assert_eq!(s.delete("/branches/main/t1/bin/bin/").status, 200);
    // spec/API.md Q11: no dangling product link after a format delete.
    assert!(std::fs::symlink_metadata(s.path("products/p/v/b/1/bin")).is_err());
    assert_eq!(s.delete("/branches/main/").status, 200);
    assert!(!s.path("products/p").exists());
}

#[test]
fn bad_product_coordinates_are_refused_before_writing() {
    let s = App::start();
    s.send_json("PATCH", "/branches/b/t/j/", &json!({"job": {"build": "1"}}));
    let before = std::fs::read(s.path("branches/b/t/j/.metadata")).unwrap();
    for bad in [
        meta("p", "v", "b", "latest"),
        meta(".p", "v", "b", "1"),
        meta("p", "a/b", "b", "1"),
    ] {
        let r = s.send_json("PATCH", "/branches/b/t/j/", &bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert_eq!(
            std::fs::read(s.path("branches/b/t/j/.metadata")).unwrap(),
            before
        );
    }
    assert!(!s.path("products").exists());
}

#[test]
fn user_repositories_share_the_blob_store() {
    let s = App::start();
    assert_eq!(s.get("/~bob/branches/").json(), json!({"branches": []}));
    assert_eq!(s.get("/~bob/").status, 404);
    s.upload_format("/~Bob/branches/b/t/j/f/", &[("a", b"shared")]);
    s.upload_format("/branches/b/t/j/f/", &[("a", b"shared")]);
    assert!(s.path("users/bob/branches/b/t/j/f/a").exists());
    let h = sha256_hex(b"shared");
    assert_eq!(nlink(&s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))), 3);
    assert_eq!(s.get("/~bob").header("location"), Some("/~bob/"));
    assert_eq!(s.get("/%7Ebob/branches/b/t/j/f/a").body, b"shared");
    assert_eq!(
        s.get("/~bob/branches/B/t/j/").header("location"),
        Some("/~bob/branches/b/t/j/")
    );
    s.send_json("PATCH", "/~bob/branches/b/t/j/", &meta("p", "v", "b", "1"));
    assert!(s.path("users/bob/products/p/v/b/1/f").exists());
    assert_eq!(s.get("/~bob/products/p/v/b/1/f/a").body, b"shared");
}

#[test]
fn user_quota_refuses_uploads_and_counts_deletes() {
    let s = App::start_with(&[("DLREPO_USER_QUOTA", "2000")]);
    let root = s.root.path();
    let kib = vec![b'x'; 1000];
    assert_eq!(s.put_file("/~bob/branches/b/t/j/f/one", &kib).status, 201);
    // The file, its `.digests` entry and `.disk_usage` itself (spec/API.md Q40).
    let used = disk_usage(root, "bob");
    assert_eq!(used, recount(root, "bob"));
    assert!((1000..1100).contains(&used), "{used}");
    // Replacing a file gives its bytes back first.
    assert_eq!(
        s.put_file("/~bob/branches/b/t/j/f/one", &vec![b'y'; 1000])
            .status,
        201
    );
    assert_eq!(disk_usage(root, "bob"), used);
    let before = snapshot(root);
    let r = s.put_file("/~bob/branches/b/t/j/f/two", &vec![b'z'; 900]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "400: User bob quota exceeded (1.1K/2.0K). Please make some ménage."
    );
    // Refused before the blob was stored: nothing changed.
    assert_eq!(snapshot(root), before);
    // The root repository has no quota; deleting gives the bytes back.
    assert_eq!(
        s.put_file("/branches/b/t/j/f/big", &vec![b'w'; 5000])
            .status,
        201
    );
    assert_eq!(s.delete("/~bob/branches/b/t/j/").status, 200);
    let left = disk_usage(root, "bob");
    assert_eq!(left, recount(root, "bob"));
    assert!(left < 100, "{left}");
    assert_eq!(
        s.put_file("/~bob/branches/b/t/j/f/two", &vec![b'z'; 1500])
            .status,
        201
    );
    assert_eq!(disk_usage(root, "bob"), recount(root, "bob"));
}
