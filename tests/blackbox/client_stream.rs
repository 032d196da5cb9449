//! Large uploads sent while they are hashed (issue 16 item 6): to arbor, a `PUT` without a
//! `Digest` whose answered digest the client checks; a file the server turns out to hold is
//! linked instead, the `PUT` cut short; to any other server (dlrepo), the usual hash first.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::client::client;
use crate::common::dlrepo::Dlrepo;
use crate::common::*;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Over the client's threshold for sending while hashing (8 MiB).
const BIG: usize = 24 << 20;

fn big_file(dir: &Path, seed: u8) -> (std::path::PathBuf, String) {
    let data: Vec<u8> = (0..BIG)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect();
    let path = dir.join(format!("big{seed}.bin"));
    std::fs::write(&path, &data).unwrap();
    (path, digest_of(&data))
}

#[test]
fn a_large_file_reaches_arbor_whole_and_true() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let (_, digest) = big_file(work.path(), 1);
    let run = |args: &[&str]| client(false, &s.base, work.path(), args, &[]);
    let up = run(&["upload", "b", "t", "j", "f", "big1.bin"]);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let got = s.get("/branches/b/t/j/f/big1.bin");
    assert_eq!(got.header("digest"), Some(digest.as_str()));
    // The same content again, elsewhere: stored once.
    let again = run(&["upload", "b", "t", "j2", "f", "big1.bin"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    let down = run(&["get", "b", "t", "j2", "f", "out"]);
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    let bytes = std::fs::read(work.path().join("out/big1.bin")).unwrap();
    assert_eq!(digest_of(&bytes), digest);
    assert!(uploads_left(s.root.path()).is_empty());
}

#[test]
fn a_large_file_goes_to_dlrepo_with_its_digest_first() {
    let s = Dlrepo::start(&[]);
    let work = tempfile::tempdir().unwrap();
    let (_, digest) = big_file(work.path(), 2);
    let up = client(
        false,
        &s.base,
        work.path(),
        &["upload", "b", "t", "j", "f", "big2.bin"],
        &[],
    );
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    let listed = client(
        false,
        &s.base,
        work.path(),
        &["-j", "get-info", "b", "t", "j"],
        &[],
    );
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let down = client(
        false,
        &s.base,
        work.path(),
        &["get", "b", "t", "j", "f", "out"],
        &[],
    );
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    let bytes = std::fs::read(work.path().join("out/big2.bin")).unwrap();
    assert_eq!(digest_of(&bytes), digest);
}

/// One request as a scripted server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    digest: Option<String>,
    link: bool,
    /// Body bytes received before the answer (or the end of the connection).
    received: usize,
    length: usize,
}

/// A server that says it is arbor and answers by `answer(request)`: a status and the
/// `Digest` to send back. A `PUT` body is read slowly when `slow` (64 KiB per 5 ms), as
/// over a slow network. Every request is recorded.
fn scripted(
    slow: bool,
    answer: impl Fn(&Seen) -> (u16, Option<String>) + Send + Sync + 'static,
) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let (log, answer) = (log.clone(), answer.clone());
            std::thread::spawn(move || serve_one(conn, slow, &*answer, &log));
        }
    });
    (base, seen)
}

fn serve_one(
    mut conn: std::net::TcpStream,
    slow: bool,
    answer: &dyn Fn(&Seen) -> (u16, Option<String>),
    log: &Mutex<Vec<Seen>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut seen = Seen {
        method: line.split(' ').next().unwrap_or("").to_owned(),
        digest: None,
        link: false,
        received: 0,
        length: 0,
    };
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => seen.length = value.trim().parse().unwrap_or(0),
            "digest" => seen.digest = Some(value.trim().to_owned()),
            "x-dlrepo-link" => seen.link = true,
            _ => {}
        }
    }
    let mut buf = vec![0u8; 64 << 10];
    while seen.received < seen.length {
        let want = buf.len().min(seen.length - seen.received);
        match reader.read(&mut buf[..want]) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.received += n,
        }
        if slow {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let (status, digest) = answer(&seen);
    log.lock().unwrap().push(seen);
    let digest = digest
        .map(|d| format!("Digest: {d}\r\n"))
        .unwrap_or_default();
    let reply = format!(
        "HTTP/1.1 {status} X\r\nServer: arbor\r\n{digest}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = conn.write_all(reply.as_bytes());
}

#[test]
fn bytes_the_server_stored_otherwise_are_sent_again_with_their_digest() {
    // The server stores something else than the file (a file that changed while it was
    // read looks the same): the client sends it again the checked way.
    let (base, seen) = scripted(false, |r| match (r.method.as_str(), &r.digest) {
        ("HEAD", _) => (404, None),
        ("PUT", None) => (201, Some(format!("sha256:{}", "0".repeat(64)))),
        ("PUT", Some(d)) => (201, Some(d.clone())),
        _ => (200, None),
    });
    let work = tempfile::tempdir().unwrap();
    let (_, digest) = big_file(work.path(), 3);
    let up = client(
        false,
        &base,
        work.path(),
        &["upload", "b", "t", "j", "f", "big3.bin"],
        &[],
    );
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    assert!(up.stderr.contains("sending it again"), "{}", up.stderr);
    let puts: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.method == "PUT")
        .cloned()
        .collect();
    assert_eq!(puts.len(), 2, "{puts:?}");
    assert_eq!(puts[0].digest, None);
    assert_eq!(puts[1].digest.as_deref(), Some(digest.as_str()));
    assert_eq!(puts[1].received, BIG);
}

#[test]
fn content_the_server_holds_is_linked_and_the_put_cut_short() {
    let (base, seen) = scripted(true, |r| match (r.method.as_str(), &r.digest) {
        ("HEAD", Some(_)) => (200, None),
        ("HEAD", None) => (404, None),
        ("PUT", Some(d)) if r.link => (201, Some(d.clone())),
        ("PUT", _) => (400, None),
        _ => (200, None),
    });
    let work = tempfile::tempdir().unwrap();
    let (_, digest) = big_file(work.path(), 4);
    let up = client(
        false,
        &base,
        work.path(),
        &["upload", "b", "t", "j", "f", "big4.bin"],
        &[],
    );
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    assert!(up.stderr.contains("(deduplicated)"), "{}", up.stderr);
    // The cut request is recorded once the server has read what the kernel still held.
    let cut = |seen: &[Seen]| {
        seen.iter()
            .find(|r| r.method == "PUT" && r.digest.is_none())
            .map(|r| r.received)
    };
    for _ in 0..200 {
        if cut(&seen.lock().unwrap()).is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let seen = seen.lock().unwrap().clone();
    assert!(cut(&seen).is_some_and(|n| n < BIG), "{seen:?}");
    let link = seen.iter().find(|r| r.method == "PUT" && r.link);
    assert_eq!(
        link.and_then(|r| r.digest.as_deref()),
        Some(digest.as_str()),
        "{seen:?}"
    );
}
