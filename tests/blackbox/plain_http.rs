//! A plain HTTP client, no dlrepo-cli: `curl -T file URL` uploads (spec/API.md Q21, issue
//! 16 item 4) with a Content-Length, with `Expect: 100-continue` for big files, and
//! chunked from a pipe; `curl -f` fails on a refused upload.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use std::process::{Command, Output, Stdio};

/// curl with `args`, its response headers dumped to stdout (`-D -`), the body discarded.
fn curl(args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl (tests/deps/install installs curl)");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.unwrap_or_default()).expect("write");
    drop(input);
    child.wait_with_output().expect("curl")
}

/// The last response's status and its `Digest` header, from `curl -D -`.
fn status_and_digest(out: &Output) -> (u16, Option<String>) {
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.rsplit("HTTP/1.1 ").next().unwrap_or_default();
    let status = last.get(..3).and_then(|s| s.parse().ok()).unwrap_or(0);
    let digest = last.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("digest")
            .then(|| v.trim().to_owned())
    });
    (status, digest)
}

#[test]
fn curl_upload_file_needs_no_digest() {
    let s = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.txt");
    std::fs::write(&small, b"hello from curl\n").unwrap();
    // 3 MiB: curl asks `Expect: 100-continue` first and the body streams to disk.
    let big_data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 249) as u8).collect();
    let big = dir.path().join("big.bin");
    std::fs::write(&big, &big_data).unwrap();
    for (file, data) in [(&small, &b"hello from curl\n"[..]), (&big, &big_data)] {
        let url = s.url("/branches/b/t/j/f/");
        let out = curl(&["-f", "-T", file.to_str().unwrap(), &url], None);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(status_and_digest(&out), (201, Some(digest_of(data))));
        let name = file.file_name().unwrap().to_str().unwrap();
        assert_eq!(s.get(&format!("/branches/b/t/j/f/{name}")).body, data);
    }
    assert!(uploads_left(s.root.path()).is_empty());
    // The README's finishing step, with curl too.
    let out = curl(&["-f", "-X", "PATCH", &s.url("/branches/b/t/j/f/")], None);
    assert!(out.status.success(), "{out:?}");
    assert!(!s.path("branches/b/t/j/f/.dirty").exists());
}

#[test]
fn curl_upload_from_a_pipe_is_chunked_and_hashed() {
    let s = TestServer::start();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 241) as u8).collect();
    let url = s.url("/branches/b/t/j/f/piped.bin");
    let out = curl(&["-f", "-T", "-", &url], Some(&data));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(status_and_digest(&out), (201, Some(digest_of(&data))));
    let r = s.head("/branches/b/t/j/f/piped.bin");
    assert_eq!(r.header("digest"), Some(digest_of(&data).as_str()));
}

#[test]
fn curl_with_a_wrong_digest_fails_and_stores_nothing() {
    let s = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"content").unwrap();
    let wrong = format!("Digest: {}", digest_of(b"not the content"));
    let url = s.url("/branches/b/t/j/f/a.txt");
    let out = curl(
        &["-f", "-H", &wrong, "-T", file.to_str().unwrap(), &url],
        None,
    );
    // curl -f: exit 22 on an HTTP error.
    assert_eq!(out.status.code(), Some(22), "{out:?}");
    assert_eq!(status_and_digest(&out).0, 422);
    assert_eq!(s.get("/branches/b/t/j/f/a.txt").status, 404);
    assert!(uploads_left(s.root.path()).is_empty());
}

/// `curl -f $URL/cli > dlrepo-cli` on a server without the script (the README's old advice)
/// gets the page saying how to get a client; run as dlrepo-cli, it prints that page and
/// fails instead of a Python syntax error.
#[test]
fn cli_page_run_as_a_script_explains_itself() {
    let s = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("dlrepo-cli");
    let out = Command::new("curl")
        .args(["-fsS", "-o"])
        .arg(&script)
        .arg(s.url("/cli"))
        .output()
        .expect("curl (tests/deps/install installs curl)");
    assert!(out.status.success(), "{out:?}");
    let out = Command::new("python3")
        .arg(&script)
        .args(["upload", "main", "v1", "j", "f", "x"])
        .output()
        .expect("python3");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not serve dlrepo-cli"), "{err}");
    assert!(
        err.contains(&format!("export DLREPO_URL={}\n", s.base)),
        "{err}"
    );
    assert!(!err.contains("Traceback"), "{err}");
    // A Host that is no host name is not echoed into the page.
    let page = Command::new("curl")
        .args(["-fsS", "-H", "Host: x<b>"])
        .arg(s.url("/cli"))
        .output()
        .expect("curl");
    let page = String::from_utf8_lossy(&page.stdout);
    assert!(page.contains("DLREPO_URL=http://HOST:PORT\n"), "{page}");
}
