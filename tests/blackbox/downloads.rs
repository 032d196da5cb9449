//! Bundles of a locked job stay byte-identical across what happens to a server over time
//! (issue 14): a restart, `arbor fsck --repair`, a dedup upload and a digest `HEAD`; and GNU
//! tar reads them, their `SHA256SUMS.txt` matching what it extracted.

// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common::*;
use serde_json::json;
use std::process::Command;

const BUNDLES: [&str; 4] = [
    "/branches/b/t/j.tar",
    "/branches/b/t/j/fmt.tar",
    "/products/foo/x86/1.0/1.0.1.tar",
    "/products/foo/x86/1.0/1.0.1/fmt.tar",
];

/// Each bundle's bytes and ETag, and a file's Last-Modified.
fn snapshot(s: &TestServer) -> (Vec<(Vec<u8>, String)>, String) {
    let bundles = BUNDLES
        .iter()
        .map(|url| {
            let r = s.get(url);
            assert_eq!(r.status, 200, "{url}");
            // On a real connection: the length announced is the length sent.
            let len = r.header("content-length").map(str::to_owned);
            assert_eq!(len, Some(r.body.len().to_string()), "{url}");
            let tag = r.header("etag").unwrap_or_default().to_owned();
            (r.body, tag)
        })
        .collect();
    let lm = s.get("/branches/b/t/j/fmt/dir/a.txt");
    (
        bundles,
        lm.header("last-modified").unwrap_or_default().to_owned(),
    )
}

#[test]
fn bundles_survive_restart_fsck_dedup_and_digest_heads() {
    let s = TestServer::start();
    s.upload_format(
        "/branches/b/t/j/fmt/",
        &[("dir/a.txt", b"alpha"), ("b.bin", &[9u8; 70_000])],
    );
    s.upload_format("/branches/b/t/j/doc/", &[("index.html", b"<p>doc")]);
    let meta = json!({"job": {"product": "foo", "product_variant": "x86",
                              "product_branch": "1.0", "version": "1.0.1"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    let lock = json!({"job": {"locked": true}});
    assert_eq!(s.send_json("PUT", "/branches/b/t/j/", &lock).status, 200);
    let before = snapshot(&s);

    // GNU tar reads it, and the sums it carries are those of what it extracts.
    let out = tempfile::tempdir().unwrap();
    let tarball = out.path().join("j.tar");
    std::fs::write(&tarball, &before.0[0].0).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .current_dir(out.path()),
        "tar -xf",
    );
    let prefix = out.path().join("foo-x86-v1.0.1");
    run_ok(
        Command::new("sha256sum")
            .args(["--check", "--strict", "SHA256SUMS.txt"])
            .current_dir(&prefix),
        "sha256sum --check",
    );
    assert_eq!(
        std::fs::read(prefix.join("fmt/dir/a.txt")).unwrap(),
        b"alpha"
    );

    // A file copied over its blob link: fsck --repair links it again.
    let copied = s.path("branches/b/t/j/fmt/b.bin");
    std::fs::remove_file(&copied).unwrap();
    std::fs::write(&copied, [9u8; 70_000]).unwrap();
    let root = s.stop();
    let (_, report) = fsck(root.path(), true);
    assert!(report.contains("not a hard link of its blob"), "{report}");
    let (healthy, report) = fsck(root.path(), false);
    assert!(healthy, "{report}");

    let s = TestServer::start_in(root, &[]);
    assert_eq!(snapshot(&s), before, "after a restart and fsck --repair");
    // The same content elsewhere: a digest HEAD and a dedup upload touch the shared blob.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let d = digest_of(b"alpha");
    let r = s.request("HEAD", "/branches/o/t/j/f/x", &[("Digest", &d)], None);
    assert_eq!(r.status, 200);
    assert_eq!(s.put_file("/branches/o/t/j/f/y", b"alpha").status, 201);
    assert_eq!(
        snapshot(&s),
        before,
        "after a dedup upload and a digest HEAD"
    );
}
