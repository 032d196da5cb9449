//! Uploads, downloads and tar bundles through a real socket (the zero-copy path), post-process
//! commands, and concurrent writers, in one process or two. The request-and-answer cases
//! (deduplication, link mode, format views, `/cli`, `/static/`) are in tests/router/files_api.rs.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use serde_json::json;
use std::io::Read;

fn blob_path(s: &TestServer, data: &[u8]) -> std::path::PathBuf {
    let h = sha256_hex(data);
    s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))
}

#[test]
fn upload_links_blob_and_records_digest() {
    let s = TestServer::start();
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
fn downloads_have_validators_ranges_and_conditionals() {
    // 100,000 bytes stream from the file; 5,000 are read with its opening (`preload`).
    for len in [100_000u32, 5_000] {
        validators_ranges_and_conditionals(len);
    }
}

fn validators_ranges_and_conditionals(len: u32) {
    let s = TestServer::start();
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
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
        (206, Some(format!("bytes 10-19/{len}").as_str()))
    );
    assert_eq!(r.body, &data[10..20]);
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("Range", "bytes=-5")],
        None,
    );
    assert_eq!(r.body, &data[data.len() - 5..]);
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/data.bin",
        &[("Range", &format!("bytes={len}-"))],
        None,
    );
    assert_eq!(
        (r.status, r.header("content-range")),
        (416, Some(format!("bytes */{len}").as_str()))
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
    let s = TestServer::start();
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
fn post_process_runs_on_copies_and_rehashes() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pp.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\nsha256sum *.deb > SUMS\necho changed >> a.deb\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = TestServer::start_with(&[
        ("DLREPO_POST_PROCESS_CMD", script.to_str().unwrap()),
        ("DLREPO_POST_PROCESS_FILTER", r".*\.deb$"),
    ]);
    let orig = b"package";
    s.put_file("/branches/b/t/other/f/keep.deb", orig);
    s.upload_format("/branches/b/t/j/deb/", &[("a.deb", orig)]);
    // The shared blob was not touched by the script; the format got new digests.
    assert_eq!(std::fs::read(blob_path(&s, orig)).unwrap(), orig);
    assert_eq!(
        std::fs::read(s.path("branches/b/t/other/f/keep.deb")).unwrap(),
        orig
    );
    let changed = b"packagechanged\n";
    assert_eq!(
        std::fs::read(s.path("branches/b/t/j/deb/a.deb")).unwrap(),
        changed
    );
    let files = s.get("/branches/b/t/j/deb/").json();
    assert_eq!(files["artifact_format"]["files"], json!(["SUMS", "a.deb"]));
    assert_eq!(nlink(&blob_path(&s, changed)), 2);
    assert!(!s.path("branches/b/t/j/deb/.dirty").exists());
    // The filter skips formats without a matching file.
    s.upload_format("/branches/b/t/j/txt/", &[("a.txt", b"t")]);
    assert_eq!(
        s.get("/branches/b/t/j/txt/").json()["artifact_format"]["files"],
        json!(["a.txt"])
    );
}

#[test]
fn failing_post_process_keeps_dirty() {
    let s = TestServer::start_with(&[("DLREPO_POST_PROCESS_CMD", "/bin/false")]);
    s.put_file("/branches/b/t/j/f/a", b"a");
    let r = s.request("PATCH", "/branches/b/t/j/f/", &[], None);
    assert_eq!(
        (r.status, r.text().as_str()),
        (500, "500: post process failed")
    );
    assert!(s.path("branches/b/t/j/f/.dirty").exists());
}

#[test]
fn concurrent_uploads_to_one_format_lose_nothing() {
    let s = TestServer::start();
    let url = s.base.clone();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let url = url.clone();
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for i in 0..20 {
                    let data = format!("file {t} {i}");
                    let d = digest_of(data.as_bytes());
                    let r = agent
                        .put(format!("{url}/branches/b/t/j/f/{t}/{i}"))
                        .header("Digest", &d)
                        .send(data.as_bytes())
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            });
        }
    });
    let files = s.get("/branches/b/t/j/f/").json()["artifact_format"]["files"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(files, 160);
    assert!(uploads_left(s.root.path()).is_empty());
}

/// Reads one HTTP/1.1 response with a Content-Length body from `r`.
fn read_response(r: &mut impl std::io::BufRead) -> (String, Vec<u8>) {
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).unwrap();
    (status.trim_end().to_owned(), body)
}

#[test]
fn file_bodies_on_one_connection_stay_in_order() {
    // Several sendfile-backed bodies (larger than one placeholder chunk), pipelined on one
    // keep-alive connection with a small response in between, must come back byte-exact.
    use std::io::Write;
    let s = TestServer::start();
    let big: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let small = b"tiny file".to_vec();
    s.upload_format(
        "/branches/b/t/j/f/",
        &[("big.bin", &big), ("small.txt", &small)],
    );
    let mut conn = std::net::TcpStream::connect(&s.addr).unwrap();
    let mut requests = String::new();
    for (path, range) in [
        ("/branches/b/t/j/f/big.bin", None),
        ("/branches/b/t/j/f/small.txt", None),
        ("/branches/b/t/j/", None),
        ("/branches/b/t/j/f/big.bin", Some("bytes=1000000-2500000")),
        ("/branches/b/t/j/f/small.txt", Some("bytes=5-")),
    ] {
        requests.push_str(&format!("GET {path} HTTP/1.1\r\nHost: x\r\n"));
        if let Some(r) = range {
            requests.push_str(&format!("Range: {r}\r\n"));
        }
        requests.push_str("\r\n");
    }
    conn.write_all(requests.as_bytes()).unwrap();
    let mut r = std::io::BufReader::new(conn);
    assert_eq!(
        read_response(&mut r),
        ("HTTP/1.1 200 OK".into(), big.clone())
    );
    assert_eq!(
        read_response(&mut r),
        ("HTTP/1.1 200 OK".into(), small.clone())
    );
    let (status, job) = read_response(&mut r);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(String::from_utf8(job).unwrap().starts_with("{\"job\": "));
    assert_eq!(
        read_response(&mut r),
        (
            "HTTP/1.1 206 Partial Content".into(),
            big[1_000_000..=2_500_000].to_vec()
        )
    );
    assert_eq!(
        read_response(&mut r),
        ("HTTP/1.1 206 Partial Content".into(), small[5..].to_vec())
    );
}

#[test]
fn two_processes_on_one_root_lose_no_upload() {
    let s = TestServer::start();
    let (mut other, other_addr) = s.second_process();
    let bases = [s.base.clone(), format!("http://{other_addr}")];
    std::thread::scope(|scope| {
        for t in 0..6 {
            let base = bases[t % 2].clone();
            scope.spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .http_status_as_error(false)
                    .build()
                    .into();
                for i in 0..25 {
                    // Same content from both processes too: one blob, many links.
                    let data = if i % 5 == 0 {
                        "shared".to_owned()
                    } else {
                        format!("file {t} {i}")
                    };
                    let d = digest_of(data.as_bytes());
                    let r = agent
                        .put(format!("{base}/branches/b/t/j/f/{t}/{i}"))
                        .header("Digest", &d)
                        .send(data.as_bytes())
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            });
        }
    });
    let _ = other.kill();
    let _ = other.wait();
    let files = s.get("/branches/b/t/j/f/").json()["artifact_format"]["files"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(files, 150);
    let h = sha256_hex(b"shared");
    assert_eq!(
        nlink(&s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))),
        1 + 30
    );
    assert!(uploads_left(s.root.path()).is_empty());
}
