//! Uploads, deduplication, downloads, format views and tar bundles, in process.

use crate::common;
use common::*;
use serde_json::json;

fn blob_path(s: &App, data: &[u8]) -> std::path::PathBuf {
    let h = sha256_hex(data);
    s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))
}

#[test]
fn same_content_is_stored_once() {
    let s = App::start();
    let data = b"shared content";
    s.put_file("/branches/b/t/j1/f/a", data);
    s.put_file("/branches/b/t/j2/f/b", data);
    s.put_file("/branches/c/t/j/f/c", data);
    assert_eq!(nlink(&blob_path(&s, data)), 4);
    // Replacing a file at the same path drops its old link.
    s.put_file("/branches/c/t/j/f/c", b"other");
    assert_eq!(nlink(&blob_path(&s, data)), 3);
}

#[test]
fn head_with_digest_and_link_mode() {
    let s = App::start();
    let data = b"dedup me";
    let d = digest_of(data);
    let r = s.request("HEAD", "/branches/x/y/z/f/any", &[("Digest", &d)], None);
    assert_eq!(r.status, 404);
    s.put_file("/branches/b/t/j/f/orig", data);
    let r = s.request("HEAD", "/branches/x/y/z/f/any", &[("Digest", &d)], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("digest"), Some(d.as_str()));
    assert_eq!(r.header("content-length"), Some("8"));
    let r = s.request(
        "HEAD",
        "/branches/x/y/z/f/any",
        &[("Digest", "sha256:zz")],
        None,
    );
    assert_eq!(r.status, 422);
    // Link mode: no body, the blob must exist.
    let r = s.request(
        "PUT",
        "/branches/b/t/j/f/copy",
        &[("Digest", &d), ("X-Dlrepo-Link", &d)],
        Some(b""),
    );
    assert_eq!(r.status, 201);
    assert_eq!(nlink(&blob_path(&s, data)), 3);
    let missing = digest_of(b"never uploaded");
    let r = s.request(
        "PUT",
        "/branches/b/t/j/f/nope",
        &[("Digest", &missing), ("X-Dlrepo-Link", &missing)],
        Some(b""),
    );
    assert_eq!(r.status, 404);
    assert!(!s.path("branches/b/t/j/f/nope").exists());
    // Without Digest: HEAD answers what GET does, without the body (issue 14).
    s.request("PATCH", "/branches/b/t/j/f/", &[], None);
    let r = s.head("/branches/b/t/j/f/orig");
    assert_eq!(
        (r.status, r.header("digest"), r.header("content-length")),
        (200, Some(d.as_str()), Some("8"))
    );
    let get = s.get("/branches/b/t/j/f/orig");
    assert!(r.body.is_empty());
    assert_eq!(r.headers, get.headers);
}

#[test]
fn x_sendfile_mode_hands_the_path_to_the_proxy() {
    let s = App::start_with(&[("DLREPO_X_SENDFILE_HEADER", "X-Accel-Redirect")]);
    s.upload_format("/branches/b/t/j/f/", &[("g.txt", b"gz")]);
    let r = s.get("/branches/b/t/j/f/g.txt");
    assert_eq!((r.status, r.body.len()), (200, 0));
    let expected = std::fs::canonicalize(s.path("branches/b/t/j/f/g.txt")).unwrap();
    assert_eq!(
        r.header("x-accel-redirect"),
        Some(expected.to_str().unwrap())
    );
    assert_eq!(r.header("digest"), Some(digest_of(b"gz").as_str()));
}

#[test]
fn format_views() {
    let s = App::start();
    s.upload_format(
        "/branches/b/t/j/f/",
        &[("dir/f1.txt", b"1"), ("f2.txt", b"2")],
    );
    let r = s.get("/branches/b/t/j/f/");
    assert_eq!(
        r.text(),
        r#"{"artifact_format": {"name": "f", "internal": false, "dirty": false, "files": ["dir/f1.txt", "f2.txt"]}}"#
    );
    assert_eq!(
        s.get("/branches/b/t/j/F/").header("location"),
        Some("/branches/b/t/j/f/")
    );
    let r = s.get("/branches/b/t/j/f.sha256");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(
        r.text(),
        format!(
            "{}  dir/f1.txt\n{}  f2.txt\n",
            sha256_hex(b"1"),
            sha256_hex(b"2")
        )
    );
    let r = s.get("/branches/b/t/j/f/dir/f1.txt.sha256");
    assert_eq!(r.text(), format!("{}  f1.txt\n", sha256_hex(b"1")));
    // Several files: the bare format URL goes to the dir; a single file: to the file.
    assert_eq!(
        s.get("/branches/b/t/j/f").header("location"),
        Some("/branches/b/t/j/f/")
    );
    s.upload_format("/branches/b/t/j/one/", &[("only%20file.bin", b"x")]);
    let r = s.get("/branches/b/t/j/one");
    assert_eq!(
        r.header("location"),
        Some("/branches/b/t/j/one/only%20file.bin")
    );
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"only file.bin\"; filename*=UTF-8''only%20file.bin")
    );
    // Deleting a format removes its links and nothing else.
    assert_eq!(s.delete("/branches/b/t/j/one/").status, 200);
    assert!(!s.path("branches/b/t/j/one").exists());
    assert_eq!(nlink(&blob_path(&s, b"x")), 1);
    assert_eq!(s.delete("/branches/b/t/j/one/").status, 404);
}

#[test]
fn cli_script_is_served_with_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dlrepo-cli");
    std::fs::write(
        &script,
        "#!/usr/bin/env python3\nURL = 'http://127.0.0.1:1337'\n",
    )
    .unwrap();
    let s = App::start_with(&[
        ("DLREPO_CLI_PATH", script.to_str().unwrap()),
        ("DLREPO_PUBLIC_URL", "https://repo.example"),
    ]);
    let r = s.get("/cli");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "#!/usr/bin/env python3\nURL = 'https://repo.example'\n"
    );
    let s = App::start_with(&[("DLREPO_CLI_PATH", "/nonexistent/dlrepo-cli")]);
    let r = s.get("/cli");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("DLREPO_CLI_PATH"));
}

#[test]
fn cli_without_a_script_says_how_to_get_a_client() {
    let s = App::start();
    let r = s.get("/cli");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let page = r.text();
    for needle in [
        "export DLREPO_URL=http://arbor.test\n",
        "curl -fT ./out/app.bin $J/binaries/",
        "pip download --no-deps --no-binary :all: dlrepo==0.44",
        "DLREPO_CLI_PATH=/path/to/dlrepo-cli",
        "curl -fo dlrepo-cli http://arbor.test/cli",
    ] {
        assert!(page.contains(needle), "{needle:?} in {page}");
    }
    // The configured public URL wins over the Host (tests/blackbox/plain_http.rs sends
    // one that is no host name).
    let s = App::start_with(&[("DLREPO_PUBLIC_URL", "https://repo.example/")]);
    assert!(
        s.get("/cli")
            .text()
            .contains("DLREPO_URL=https://repo.example\n")
    );
}

#[test]
fn static_assets_are_public_files() {
    let s = App::start();
    let r = s.get("/static/dlrepo.css");
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("text/css"))
    );
    assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
    assert_eq!(
        s.get("/static/logo.svg").header("content-type"),
        Some("image/svg+xml")
    );
    assert_eq!(s.get("/static/nope.css").status, 404);
    assert_eq!(s.get("/static/..%2Fetc").status, 404);
    assert_eq!(s.get("/favicon.ico").status, 404);
}

#[test]
fn digests_edited_behind_the_servers_back_are_reread() {
    let s = App::start();
    s.put_file("/branches/b/t/j/f/a", b"a");
    // Another tool (or a dlrepo process) rewrites .digests in place.
    let path = s.path("branches/b/t/j/f/.digests");
    let mut digests: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    digests["x"] = json!(digest_of(b"x"));
    std::fs::write(&path, serde_json::to_vec(&digests).unwrap()).unwrap();
    s.put_file("/branches/b/t/j/f/b", b"b");
    let files = s.get("/branches/b/t/j/f/").json()["artifact_format"]["files"].clone();
    assert_eq!(files, json!(["a", "b", "x"]));
}
