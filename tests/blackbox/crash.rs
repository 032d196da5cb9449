//! Crash safety of artifact uploads (spec/API.md §5.1, LAYOUT.md §3.1): a server killed
//! mid-upload, a client that goes away before the end of its body, or data that does not
//! match its digest must leave no artifact, no `.digests` entry and no blob behind.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{Client as _, TestServer, digest_of, sha256_hex, snapshot, uploads_left};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Deterministic pseudo-random bytes (xorshift64), so that no two MiB are alike.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = vec![0u8; len.next_multiple_of(8)];
    for word in out.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Polls `cond` until it holds or `limit` has passed; returns whether it held.
fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn blob_path(srv: &TestServer, hex: &str) -> PathBuf {
    srv.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2]))
}

/// Sizes of the temp files in `.uploads/`.
fn upload_sizes(srv: &TestServer) -> Vec<u64> {
    uploads_left(srv.root.path())
        .iter()
        .filter_map(|n| std::fs::metadata(srv.path(".uploads").join(n)).ok())
        .map(|m| m.len())
        .collect()
}

/// Opens a connection and sends the head of an artifact PUT; the caller sends the body.
/// `len` Some → `Content-Length`, None → `Transfer-Encoding: chunked`.
fn start_put(srv: &TestServer, path: &str, digest: &str, len: Option<usize>) -> TcpStream {
    let mut s = TcpStream::connect(&srv.addr).expect("connect");
    // A stalled server fails the test instead of hanging it.
    s.set_write_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let framing = match len {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    write!(
        s,
        "PUT {path} HTTP/1.1\r\nHost: {}\r\nDigest: {digest}\r\n\
         Content-Type: application/octet-stream\r\n{framing}\r\nConnection: close\r\n\r\n",
        srv.addr
    )
    .expect("send head");
    s
}

/// Writes one chunk of a chunked body.
fn send_chunk(s: &mut TcpStream, data: &[u8]) {
    write!(s, "{:x}\r\n", data.len()).expect("chunk size");
    s.write_all(data).expect("chunk data");
    s.write_all(b"\r\n").expect("chunk end");
}

/// Reads a whole response (the request said `Connection: close`): status line and body.
fn read_response(s: TcpStream) -> (String, Vec<u8>) {
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    let (mut len, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header line");
        let (k, v) = (k.to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            len = Some(v.parse::<usize>().expect("length"));
        } else if k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).expect("chunk size");
            let n = usize::from_str_radix(size.trim(), 16).expect("hex size");
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).expect("chunk");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body).expect("body");
    } else {
        r.read_to_end(&mut body).expect("body");
    }
    (status.trim_end().to_owned(), body)
}

/// The artifact left no trace: no file, no `.digests` entry, 404 on GET, no blob, and the
/// dedup probe that dlrepo-cli sends before an upload says the blob is unknown.
fn assert_no_trace(srv: &TestServer, fmt_url: &str, name: &str, hex: &str) {
    let fmt_dir = srv.path(fmt_url.trim_start_matches('/'));
    assert!(
        !fmt_dir.join(name).exists(),
        "{name} exists in {}",
        fmt_dir.display()
    );
    if let Ok(bytes) = std::fs::read(fmt_dir.join(".digests")) {
        let digests: serde_json::Value = serde_json::from_slice(&bytes).expect(".digests JSON");
        assert!(
            digests.get(name).is_none(),
            ".digests lists {name}: {digests}"
        );
    }
    let r = srv.get(&format!("{fmt_url}{name}"));
    assert_eq!(r.status, 404, "GET {fmt_url}{name}: {}", r.text());
    assert!(!blob_path(srv, hex).exists(), "a blob sha256:{hex} exists");
    let d = format!("sha256:{hex}");
    let r = srv.request("HEAD", &format!("{fmt_url}{name}"), &[("Digest", &d)], None);
    assert_eq!(r.status, 404, "HEAD with Digest {d}");
}

/// GETs `path` over a raw socket and compares the body with `want` as it streams in
/// (ureq in a debug build reads 200 MiB slowly).
fn assert_download_equals(srv: &TestServer, path: &str, want: &[u8], want_digest: &str) {
    let mut s = TcpStream::connect(&srv.addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        srv.addr
    )
    .expect("send");
    let mut r = BufReader::with_capacity(1 << 20, s);
    let mut status = String::new();
    r.read_line(&mut status).expect("status line");
    assert_eq!(status.trim_end(), "HTTP/1.1 200 OK", "GET {path}");
    let (mut len, mut digest) = (None, None);
    loop {
        let mut line = String::new();
        r.read_line(&mut line).expect("header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').expect("header line");
        match k.to_ascii_lowercase().as_str() {
            "content-length" => len = Some(v.trim().parse::<usize>().expect("length")),
            "digest" => digest = Some(v.trim().to_owned()),
            _ => {}
        }
    }
    assert_eq!(len, Some(want.len()), "GET {path}: Content-Length");
    assert_eq!(digest.as_deref(), Some(want_digest), "GET {path}: Digest");
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < want.len() {
        let n = r.read(&mut buf).expect("read body");
        assert!(n > 0, "GET {path}: body ends at {off}");
        assert!(
            off + n <= want.len(),
            "GET {path}: body longer than {}",
            want.len()
        );
        let end = off + n;
        assert!(
            buf[..end - off] == want[off..end],
            "GET {path}: bytes {off}..{end} differ"
        );
        off += n;
    }
}

#[test]
fn server_killed_mid_upload_leaves_no_trace_and_a_retry_succeeds() {
    const TOTAL: usize = 200 << 20;
    const BEFORE_KILL: usize = 60 << 20;
    const FMT: &str = "/branches/crash/t/j/f/";
    // SHA-256 of `pattern(TOTAL, 42)`, precomputed: the sha2 crate takes ~8 s over 200 MiB in
    // a debug build. If `pattern` changes, the retry below fails with 422: recompute it.
    const HEX: &str = "904f23b7f70fc237d8763622d6129259b081f5fa6388941682f10b0f06e57b95";
    let data = pattern(TOTAL, 42);
    let (hex, digest) = (HEX, format!("sha256:{HEX}"));
    let mut srv = TestServer::start();
    // The format already holds a file, so `.digests` exists and must not gain an entry.
    srv.upload_format(FMT, &[("small.txt", b"small\n")]);
    let before = snapshot(srv.root.path());

    let mut s = start_put(&srv, &format!("{FMT}big.bin"), &digest, Some(TOTAL));
    for chunk in data[..BEFORE_KILL].chunks(1 << 20) {
        s.write_all(chunk).expect("send body");
    }
    // The server is streaming the body into `.uploads/`: the kill lands mid-upload.
    assert!(
        wait_until(Duration::from_secs(10), || upload_sizes(&srv)
            .iter()
            .any(|&n| n > 0)),
        "no partial upload in .uploads/"
    );
    assert!(upload_sizes(&srv).iter().all(|&n| n < TOTAL as u64));
    srv.kill_and_restart();
    drop(s);

    // `.uploads/` may keep the partial file (nothing can remove it at SIGKILL; orphan GC
    // does later); everything else is as before the upload began.
    assert_eq!(snapshot(srv.root.path()), before, "the disk changed");
    assert_no_trace(&srv, FMT, "big.bin", hex);
    let r = srv.get(&format!("{FMT}small.txt"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"small\n"[..]));

    // Retry the whole upload on the restarted server.
    let mut s = start_put(&srv, &format!("{FMT}big.bin"), &digest, Some(TOTAL));
    for chunk in data.chunks(1 << 20) {
        s.write_all(chunk).expect("send body");
    }
    let (status, body) = read_response(s);
    assert_eq!(
        (status.as_str(), body.as_slice()),
        ("HTTP/1.1 201 Created", &b"201: Created"[..]),
        "retry (a 422 here means HEX is stale)"
    );
    let r = srv.request("PATCH", FMT, &[], Some(b""));
    assert_eq!(r.status, 200, "{}", r.text());

    let digests = std::fs::read(srv.path("branches/crash/t/j/f/.digests")).expect(".digests");
    let digests: serde_json::Value = serde_json::from_slice(&digests).expect("JSON");
    assert_eq!(digests["big.bin"], digest.as_str());
    assert_eq!(common::nlink(&blob_path(&srv, hex)), 2);
    assert_download_equals(&srv, &format!("{FMT}big.bin"), &data, &digest);
}

/// Starts an upload in a format that already holds a file, sends part of the body (with
/// `Content-Length` or chunked), checks the server is streaming it, disconnects, and checks
/// that nothing changed on disk.
fn disconnect_mid_upload(chunked: bool) {
    const FMT: &str = "/branches/gone/t/j/f/";
    let srv = TestServer::start();
    srv.upload_format(FMT, &[("keep.txt", b"keep\n")]);
    let before = snapshot(srv.root.path());
    let data = pattern(4 << 20, 7);
    let hex = sha256_hex(&data);
    let digest = format!("sha256:{hex}");

    let len = (!chunked).then_some(data.len());
    let mut s = start_put(&srv, &format!("{FMT}part.bin"), &digest, len);
    if chunked {
        for chunk in data[..512 << 10].chunks(64 << 10) {
            send_chunk(&mut s, chunk);
        }
        // And a chunk cut short.
        write!(s, "{:x}\r\n", 64 << 10).expect("chunk size");
        s.write_all(&data[512 << 10..(512 << 10) + 1000])
            .expect("chunk data");
    } else {
        // Content-Length says 4 MiB; 512 KiB come.
        s.write_all(&data[..512 << 10]).expect("send body");
    }
    assert!(
        wait_until(Duration::from_secs(5), || upload_sizes(&srv)
            .iter()
            .any(|&n| n > 0)),
        "the server is not streaming the body into .uploads/"
    );
    drop(s);

    assert!(
        wait_until(Duration::from_secs(2), || uploads_left(srv.root.path())
            .is_empty()),
        "temp upload left behind after the client went away: {:?}",
        uploads_left(srv.root.path())
    );
    assert_eq!(snapshot(srv.root.path()), before, "the disk changed");
    assert_no_trace(&srv, FMT, "part.bin", &hex);
    let r = srv.get(&format!("{FMT}keep.txt"));
    assert_eq!((r.status, r.body.as_slice()), (200, &b"keep\n"[..]));
}

#[test]
fn content_length_body_cut_short_leaves_nothing() {
    disconnect_mid_upload(false);
}

#[test]
fn chunked_body_cut_short_leaves_nothing() {
    disconnect_mid_upload(true);
}

#[test]
fn wrong_digest_is_422_and_leaves_nothing() {
    const FMT: &str = "/branches/wd/t/j/f/";
    let srv = TestServer::start();
    srv.upload_format(FMT, &[("keep.txt", b"keep\n")]);
    let before = snapshot(srv.root.path());
    let body = b"actual content\n";
    let claimed = digest_of(b"claimed content\n");
    let expected = format!("422: Received data does not match digest: {claimed}");

    // Content-Length framing, in a format that exists.
    let r = srv.request(
        "PUT",
        &format!("{FMT}bad.txt"),
        &[("Digest", &claimed)],
        Some(body),
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.text(), expected);

    // Chunked framing (as dlrepo-cli sends), in a branch that does not exist yet; the reason
    // phrase of the status line carries the same text.
    let line = srv.raw_status_line(&format!(
        "PUT /branches/new/t/j/f/bad.txt HTTP/1.1\r\nHost: x\r\nDigest: {claimed}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
        body.len(),
        std::str::from_utf8(body).expect("ASCII"),
    ));
    assert_eq!(
        line,
        format!("HTTP/1.1 422 Received data does not match digest: {claimed}")
    );

    assert!(
        wait_until(Duration::from_secs(2), || uploads_left(srv.root.path())
            .is_empty()),
        "temp upload left behind: {:?}",
        uploads_left(srv.root.path())
    );
    assert_eq!(snapshot(srv.root.path()), before, "the disk changed");
    assert!(!srv.path("branches/new").exists());
    assert_no_trace(&srv, FMT, "bad.txt", &sha256_hex(body));
    assert!(!blob_path(&srv, claimed.trim_start_matches("sha256:")).exists());
}
