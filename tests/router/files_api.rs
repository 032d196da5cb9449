//! Uploads, deduplication, downloads, format views and tar bundles, in process.

use crate::common;
use common::*;
use serde_json::json;
use std::io::Read;

fn blob_path(s: &App, data: &[u8]) -> std::path::PathBuf {
    let h = sha256_hex(data);
    s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))
}

#[test]
fn upload_links_blob_and_records_digest() {
    let s = App::start();
    let r = s.put_file("/branches/b/t/j/fmt/Dir/A.txt", b"hello\n");
    assert_eq!((r.status, r.text().as_str()), (201, "201: Created"));
    let file = s.path("branches/b/t/j/fmt/Dir/A.txt");
    assert_eq!(std::fs::read(&file).unwrap(), b"hello\n");
    assert_eq!(nlink(&blob_path(&s, b"hello\n")), 2);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j/fmt/.digests")).unwrap(),
        format!(r#"{{"Dir/A.txt": "{}"}}"#, digest_of(b"hello\n"))
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| std::fs::metadata(s.path(p)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("branches/b/t/j/fmt/Dir/A.txt"), 0o644);
    assert_eq!(mode("branches/b/t/j/fmt/.digests"), 0o644);
    assert!(s.path("branches/b/t/j/fmt/.dirty").exists());
    assert!(uploads_left(s.root.path()).is_empty());
    // Upper-case digests are stored lower-cased (spec/API.md Q19).
    let d = digest_of(b"x").to_uppercase();
    assert_eq!(
        s.request(
            "PUT",
            "/branches/b/t/j/fmt/x",
            &[("Digest", &d)],
            Some(b"x")
        )
        .status,
        201
    );
    let digests: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("branches/b/t/j/fmt/.digests")).unwrap())
            .unwrap();
    assert_eq!(digests["x"], digest_of(b"x"));
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
    // Without Digest: HEAD answers the file's digest and size only.
    s.request("PATCH", "/branches/b/t/j/f/", &[], None);
    let r = s.head("/branches/b/t/j/f/orig");
    assert_eq!(
        (r.status, r.header("digest"), r.header("content-length")),
        (200, Some(d.as_str()), Some("8"))
    );
    assert_eq!(r.header("etag"), None);
}

#[test]
fn downloads_have_validators_ranges_and_conditionals() {
    let s = App::start();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    s.upload_format(
        "/branches/b/t/j/f/",
        &[("data.bin", &data), ("n.txt", b"text")],
    );
    let r = s.get("/branches/b/t/j/f/data.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, data);
    let d = digest_of(&data);
    assert_eq!(r.header("digest"), Some(d.as_str()));
    let etag = r.header("etag").unwrap().to_owned();
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&data)));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(r.header("last-modified").is_some());
    assert_eq!(
        s.get("/branches/b/t/j/f/n.txt").header("content-type"),
        Some("text/plain")
    );
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("Range", "bytes=10-19")],
        None,
    );
    assert_eq!(
        (r.status, r.header("content-range")),
        (206, Some("bytes 10-19/100000"))
    );
    assert_eq!(r.body, &data[10..20]);
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("Range", "bytes=-5")],
        None,
    );
    assert_eq!(r.body, &data[99_995..]);
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("Range", "bytes=100000-")],
        None,
    );
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some("bytes */100000"))
    );
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("digest"), Some(d.as_str()));
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("If-Match", "\"other\"")],
        None,
    );
    assert_eq!(r.status, 412);
    let lm = s
        .get("/branches/b/t/j/f/data.bin")
        .header("last-modified")
        .unwrap()
        .to_owned();
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("If-Modified-Since", &lm)],
        None,
    );
    assert_eq!(r.status, 304);
    // Non-canonical URLs redirect; missing files are 404.
    let r = s.get("/branches/B/T/J/F/data.bin");
    assert_eq!(r.header("location"), Some("/branches/b/t/j/f/data.bin"));
    assert_eq!(s.get("/branches/b/t/j/f/DATA.bin").status, 404);
    assert_eq!(s.get("/branches/b/t/j/f/data.bin/").status, 404);
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

fn read_tar(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().display().to_string();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, data)
        })
        .collect()
}

#[test]
fn tar_bundles_end_with_sha256sums() {
    let s = App::start();
    s.upload_format(
        "/branches/b/t/j/fmt/",
        &[("dir/f1.txt", b"1"), ("f2.txt", b"2")],
    );
    s.upload_format("/branches/b/t/j/doc/", &[("index.html", b"<p>")]);
    let r = s.get("/branches/b/t/j.tar");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-tar"));
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"j-t.tar\"; filename*=UTF-8''j-t.tar")
    );
    assert_eq!(r.body.len() % 10240, 0);
    let entries = read_tar(&r.body);
    let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "j-t/doc/index.html",
            "j-t/fmt/dir/f1.txt",
            "j-t/fmt/f2.txt",
            "j-t/SHA256SUMS.txt"
        ]
    );
    assert_eq!(
        String::from_utf8(entries[3].1.clone()).unwrap(),
        format!(
            "{}  doc/index.html\n{}  fmt/dir/f1.txt\n{}  fmt/f2.txt\n",
            sha256_hex(b"<p>"),
            sha256_hex(b"1"),
            sha256_hex(b"2")
        )
    );
    let r = s.get("/branches/b/t/j/fmt.tar");
    let names: Vec<_> = read_tar(&r.body).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        [
            "j-t-fmt/dir/f1.txt",
            "j-t-fmt/f2.txt",
            "j-t-fmt/SHA256SUMS.txt"
        ]
    );
    assert_eq!(s.get("/branches/b/t/nope.tar").status, 404);
    // With product metadata the archive is named after the product version.
    s.send_json("PATCH", "/branches/b/t/j/", &json!({"job": {"product": "foo", "product_variant": "x86", "product_branch": "1.0", "version": "1.0.1"}}));
    let r = s.get("/branches/b/t/j.tar");
    assert_eq!(
        r.header("content-disposition"),
        Some("attachment; filename=\"foo-x86-v1.0.1.tar\"; filename*=UTF-8''foo-x86-v1.0.1.tar")
    );
    let r = s.get("/products/foo/x86/1.0/1.0.1/fmt.tar");
    assert_eq!(
        r.header("content-disposition"),
        Some(
            "attachment; filename=\"foo-x86-v1.0.1-fmt.tar\"; filename*=UTF-8''foo-x86-v1.0.1-fmt.tar"
        )
    );
    let names: Vec<_> = read_tar(&s.get("/products/foo/x86/1.0/1.0.1.tar").body)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names[0], "foo-x86-v1.0.1/doc/index.html");
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
