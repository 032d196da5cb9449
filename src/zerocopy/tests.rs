//! What zero-copy relies on in hyper, and proof that it answers exactly as plain streaming.
//!
//! `ZcStream` works only because hyper 1.x's HTTP/1 writer, given a transport whose
//! `is_write_vectored()` is true, *queues* each body `Bytes` as it is and passes it to
//! `poll_write_vectored` as its own `IoSlice`, without copying it into its write buffer
//! (hyper's `WriteStrategy::Queue`), and that a fixed-length body goes out unframed (no
//! chunk headers inside the placeholders). A copied placeholder would lose its address and
//! go out as zeros. Neither is a documented promise, so the hyper version is pinned here.

use crate::config::{Config, ZeroCopy};
use crate::state::AppState;
use crate::zerocopy::ZcListener;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The hyper release the assumptions above were last checked against (its
/// `src/proto/h1/io.rs`: `WriteBuf::buffer` and `Buffered::poll_flush`).
const CHECKED_HYPER: &str = "1.12.0";

#[test]
fn hyper_is_the_release_zero_copy_was_checked_against() {
    let lock = include_str!("../../Cargo.lock");
    let hyper = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"hyper\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"'));
    assert_eq!(
        hyper,
        Some(CHECKED_HYPER),
        "hyper changed in Cargo.lock: re-check what src/zerocopy/tests.rs says zero-copy relies \
         on in hyper's h1 writer, run zero_copy_answers_as_plain_streaming_does and bench/run's \
         download rows, then update CHECKED_HYPER (or run with DLREPO_ZERO_COPY=0)"
    );
}

/// Clients on this host get copies, others `sendfile(2)` (unless the setting says always or
/// never).
#[test]
fn sendfile_goes_to_other_hosts() {
    use super::sends_files_to;
    let at = |a: &str| Some(a.parse::<SocketAddr>().unwrap());
    let here = [
        None,
        at("127.0.0.1:4000"),
        at("127.3.2.1:4000"),
        at("[::1]:4000"),
        at("[::ffff:127.0.0.1]:4000"),
    ];
    let away = [
        at("192.0.2.7:4000"),
        at("[2001:db8::7]:4000"),
        at("[::ffff:192.0.2.7]:4000"),
    ];
    for peer in &here {
        assert!(!sends_files_to(ZeroCopy::Remote, *peer), "{peer:?}");
        assert!(sends_files_to(ZeroCopy::Always, *peer), "{peer:?}");
    }
    for peer in &away {
        assert!(sends_files_to(ZeroCopy::Remote, *peer), "{peer:?}");
        assert!(!sends_files_to(ZeroCopy::Off, *peer), "{peer:?}");
    }
}

/// A server on a loopback port over `root`, with zero-copy always or never.
async fn server(
    root: &std::path::Path,
    zero_copy: ZeroCopy,
    stop: &CancellationToken,
) -> SocketAddr {
    let config = Config {
        root_dir: root.to_owned(),
        auth_disabled: true,
        zero_copy,
        ..Config::default()
    };
    let state = AppState::new(config).expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(crate::serve(
        ZcListener::tcp(listener),
        state,
        stop.clone().cancelled_owned(),
    ));
    addr
}

/// One exchange on a keep-alive connection: the head without its `Date`, and the body.
async fn exchange(
    conn: &mut BufReader<TcpStream>,
    request: &str,
    body: &[u8],
) -> (String, Vec<u8>) {
    conn.get_mut()
        .write_all(request.as_bytes())
        .await
        .expect("send head");
    conn.get_mut().write_all(body).await.expect("send body");
    let (mut head, mut len) = (String::new(), 0usize);
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).await.expect("read head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().expect("a length");
        }
        if !lower.starts_with("date:") {
            head.push_str(&line);
        }
    }
    let bodyless = request.starts_with("HEAD ") || head.starts_with("HTTP/1.1 304");
    let mut got = vec![0; if bodyless { 0 } else { len }];
    conn.read_exact(&mut got).await.expect("read body");
    (head, got)
}

async fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(addr).await.expect("connect"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_copy_answers_as_plain_streaming_does() {
    let root = tempfile::tempdir().expect("temp dir");
    let stop = CancellationToken::new();
    let (on, off) = (
        server(root.path(), ZeroCopy::Always, &stop).await,
        server(root.path(), ZeroCopy::Off, &stop).await,
    );
    // Several socket buffers and several DLREPO_CHUNK_SIZE chunks; no byte is zero, so a
    // placeholder sent as it is shows.
    let data: Vec<u8> = (0..3_000_037u32).map(|i| (i % 251) as u8 + 1).collect();
    let file = "/branches/b/t/j/f/data.bin";
    let mut c = connect(on).await;
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
    let put = format!(
        "PUT {file} HTTP/1.1\r\nHost: x\r\nDigest: sha256:{digest}\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    let (head, _) = exchange(&mut c, &put, &data).await;
    assert!(head.starts_with("HTTP/1.1 201"), "{head}");
    let patch = "PATCH /branches/b/t/j/f/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    let (head, _) = exchange(&mut c, patch, b"").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let get = |extra: &str| format!("GET {file} HTTP/1.1\r\nHost: x\r\n{extra}\r\n");
    let etag = {
        let (head, _) = exchange(&mut c, &get(""), b"").await;
        let line = head
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("etag:"));
        line.and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    }
    .expect("an ETag");
    let requests = [
        get(""),
        get("Range: bytes=1000-99999\r\n"),
        get("Range: bytes=-10\r\n"),
        get("Range: bytes=2999990-\r\n"),
        format!("HEAD {file} HTTP/1.1\r\nHost: x\r\n\r\n"),
        get(&format!("If-None-Match: {etag}\r\n")),
        get("Range: bytes=5000000-\r\n"),
        // Once more in full: queued files must not leak from one response to the next.
        get(""),
    ];
    let (mut with, mut without) = (connect(on).await, connect(off).await);
    for request in &requests {
        let a = exchange(&mut with, request, b"").await;
        let b = exchange(&mut without, request, b"").await;
        assert_eq!(a.0, b.0, "heads differ for {request:?}");
        assert!(a.1 == b.1, "bodies differ for {request:?}");
    }
    let (head, body) = exchange(&mut with, &get("Range: bytes=1000-99999\r\n"), b"").await;
    assert!(head.starts_with("HTTP/1.1 206"), "{head}");
    assert!(body == data[1000..100_000], "wrong range bytes");
    let (head, body) = exchange(&mut with, &get(""), b"").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body == data, "wrong file bytes");
    stop.cancel();
}
