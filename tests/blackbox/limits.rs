//! Slow and silent clients against a server with small limits (issue 12): they cost a
//! socket and a timer, never a thread, and never the server's availability.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Threads of the server process right now.
fn threads(s: &TestServer) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap()
}

/// Reads until the server closes the connection (or `limit` passes); returns what came
/// and how long it took.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("still open after {limit:?}: {e}"),
        }
    }
    (got, start.elapsed())
}

#[test]
fn silent_and_half_sent_requests_are_closed_after_the_header_timeout() {
    let s = TestServer::start_with(&[("DLREPO_HEADER_TIMEOUT", "1")]);
    for sent in [
        &b""[..],
        b"GET /bran",
        b"GET /branches/ HTTP/1.1\r\nHost: x\r\n",
    ] {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        c.write_all(sent).unwrap();
        let (_, took) = read_until_closed(&mut c, Duration::from_secs(5));
        assert!(
            took < Duration::from_secs(4),
            "{sent:?}: closed after {took:?}"
        );
    }
    // An idle keep-alive connection goes the same way, after its request was answered.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, took) = read_until_closed(&mut c, Duration::from_secs(5));
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"));
    assert!(took < Duration::from_secs(4), "idle for {took:?}");
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn a_stalled_upload_is_dropped_and_leaves_nothing() {
    let s = TestServer::start_with(&[("DLREPO_CLIENT_TIMEOUT", "1")]);
    s.upload_format("/branches/b/t/j/f/", &[("keep", b"keep")]);
    let before = snapshot(s.root.path());
    let data = vec![5u8; 1 << 20];
    let mut c = TcpStream::connect(&s.addr).unwrap();
    let head = format!(
        "PUT /branches/b/t/j/f/stalled HTTP/1.1\r\nHost: x\r\nDigest: {}\r\nContent-Length: {}\r\n\r\n",
        digest_of(&data),
        data.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&data[..300 << 10]).unwrap();
    let (got, took) = read_until_closed(&mut c, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    assert_eq!(before, snapshot(s.root.path()));
    assert!(uploads_left(s.root.path()).is_empty());
    // A small body (received whole, in memory), a chunked body and a JSON body that stall
    // are dropped the same way.
    for (path, head) in [
        ("/branches/b/t/j/f/small", "Content-Length: 100\r\n\r\nabc"),
        (
            "/branches/b/t/j/f/chunked",
            "Transfer-Encoding: chunked\r\n\r\n400\r\nabc",
        ),
        ("/branches/b/t/j/", "Content-Length: 100\r\n\r\n{\"job\": "),
    ] {
        let method = if path.ends_with('/') { "PATCH" } else { "PUT" };
        let mut c = TcpStream::connect(&s.addr).unwrap();
        let d = digest_of(b"x");
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nDigest: {d}\r\n{head}"
        )
        .unwrap();
        let (got, _) = read_until_closed(&mut c, Duration::from_secs(10));
        let answer = String::from_utf8_lossy(&got);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
    }
    assert_eq!(before, snapshot(s.root.path()));
}

#[test]
fn a_download_nobody_reads_is_dropped() {
    let s = TestServer::start_with(&[("DLREPO_CLIENT_TIMEOUT", "1")]);
    let big = vec![9u8; 64 << 20];
    s.upload_format("/branches/b/t/j/f/", &[("big", &big)]);
    for path in ["/branches/b/t/j/f/big", "/branches/b/t/j.tar"] {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let (got, _) = read_until_closed(&mut c, Duration::from_secs(10));
        assert!(
            got.len() < big.len(),
            "{path}: the whole body was sent to a stalled client"
        );
    }
    assert_eq!(s.get("/branches/b/t/j/f/big").body.len(), big.len());
}

#[test]
fn over_the_connection_limit_is_a_503_with_retry_after() {
    let s = TestServer::start_with(&[("DLREPO_MAX_CONNECTIONS", "3")]);
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (got, _) = read_until_closed(&mut c, Duration::from_secs(5));
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After: 1\r\n"), "{answer}");
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(s.get("/healthz").status, 200);
}

#[test]
fn hundreds_of_stalled_clients_hold_no_threads_and_healthz_answers() {
    let s = TestServer::start();
    let big = vec![3u8; 8 << 20];
    s.upload_format("/branches/b/t/j/f/", &[("big", &big)]);
    let idle = threads(&s);
    let mut stalled = Vec::new();
    for i in 0..150 {
        // An upload that stops after its first bytes...
        let mut c = TcpStream::connect(&s.addr).unwrap();
        let d = digest_of(b"never sent");
        write!(
            c,
            "PUT /branches/b/t/j/f/u{i} HTTP/1.1\r\nHost: x\r\nDigest: {d}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nab"
        )
        .unwrap();
        stalled.push(c);
        // ...and a bundle nobody reads.
        let mut c = TcpStream::connect(&s.addr).unwrap();
        write!(c, "GET /branches/b/t/j.tar HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        stalled.push(c);
    }
    std::thread::sleep(Duration::from_secs(1));
    let start = Instant::now();
    assert_eq!(s.get("/healthz").status, 200);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.put_file("/branches/b/t/j/f/ok", b"ok").status, 201);
    // The short tasks that made the first chunks may have started many threads at once;
    // idle ones end after tokio's 10 s keep-alive. What is left is what stalled clients
    // hold: a server that parked a thread per client would keep 450 or more (two per
    // upload, one per bundle).
    std::thread::sleep(Duration::from_secs(11));
    let held = threads(&s);
    assert!(
        held < idle + 30,
        "{held} threads with 300 stalled clients ({idle} before)"
    );
    drop(stalled);
}

#[test]
fn a_stalled_registry_chunk_is_cut_back_and_does_not_block_its_session() {
    let s = TestServer::start_with(&[("DLREPO_CLIENT_TIMEOUT", "2")]);
    let r = s.request("POST", "/v2/main/img/blobs/uploads/", &[], Some(b""));
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_owned();
    assert_eq!(s.request("PATCH", &loc, &[], Some(b"abc")).status, 202);
    // A chunk that stops half way...
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Range: 3-\r\nContent-Length: 1000\r\n\r\nxyz"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    // ...refuses a second writer at once, instead of queueing it behind the lock...
    let start = Instant::now();
    let r = s.request("PATCH", &loc, &[], Some(b"def"));
    assert_eq!(r.status, 416, "{}", r.text());
    assert!(start.elapsed() < Duration::from_secs(1));
    // ...and is dropped after the timeout, the session back where it was.
    let (got, _) = read_until_closed(&mut c, Duration::from_secs(10));
    let answer = String::from_utf8_lossy(&got);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let r = s.get(&loc);
    assert_eq!((r.status, r.header("range")), (204, Some("0-2")));
    let r = s.request("PATCH", &loc, &[("Content-Range", "3-5")], Some(b"def"));
    assert_eq!(r.status, 202, "{}", r.text());
}
