//! Process behaviour: the start-up banner, graceful stop on SIGTERM and SIGINT.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

fn signal(s: &TestServer, signal: Signal) {
    kill(Pid::from_raw(i32::try_from(s.child.id()).unwrap()), signal).unwrap();
}

/// Waits (10 s at most) for the server to exit and returns how it did.
fn exit_status(s: &mut TestServer, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop_with(sig: Signal) {
    let mut s = TestServer::start();
    assert_eq!(s.get("/branches/").status, 200);
    signal(&s, sig);
    let status = exit_status(&mut s, &format!("on {sig}"));
    assert!(status.success(), "{sig}: {status}");
}

/// Sends the head of a PUT of `data` and its first `sent` bytes, and returns once the server
/// is writing them to `.uploads/`.
fn begin_upload(s: &TestServer, data: &[u8], sent: usize) -> std::net::TcpStream {
    use std::io::Write;
    let digest = format!("sha256:{}", sha256_hex(data));
    let mut c = std::net::TcpStream::connect(&s.addr).unwrap();
    write!(c, "PUT /branches/b/t/j/f/big HTTP/1.1\r\nHost: x\r\nDigest: {digest}\r\nContent-Length: {}\r\n\r\n", data.len()).unwrap();
    c.write_all(&data[..sent]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while uploads_left(s.root.path()).is_empty() {
        assert!(Instant::now() < deadline, "upload never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    c
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    stop_with(Signal::SIGTERM);
}

#[test]
fn sigint_stops_the_server_cleanly() {
    stop_with(Signal::SIGINT);
}

#[test]
fn help_explains_the_commands() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains("serve") && text.contains("--config"),
        "{text}"
    );
}

/// Starts arbor the way systemd does: a listening socket on fd 3, `LISTEN_FDS=1` and
/// `LISTEN_PID` = the server's own pid (python sets them up, then execs arbor in place).
fn socket_activated(root: &std::path::Path, socket: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let setup = format!(
        r#"
import os, socket, sys
kind = {socket:?}
if kind.startswith("/"):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(kind)
else:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
s.listen(16)
os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
arbor = sys.argv[1]
os.execv(arbor, [arbor, "serve"])
"#
    );
    let mut child = std::process::Command::new("python3")
        .args(["-c", &setup, env!("CARGO_BIN_EXE_arbor")])
        .env("DLREPO_ROOT_DIR", root)
        .env("DLREPO_AUTH_DISABLED", "1")
        // Proves the passed socket is used: binding this port would fail.
        .env("DLREPO_LISTEN_ADDRESS", "192.0.2.1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

#[test]
fn socket_activation_on_a_tcp_socket() {
    let root = tempfile::tempdir().unwrap();
    let (mut child, banner) = socket_activated(root.path(), "tcp");
    let url = banner
        .strip_prefix("======== Running on ")
        .and_then(|s| s.strip_suffix(" ========"))
        .unwrap_or_else(|| panic!("{banner}"))
        .to_owned();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent.get(format!("{url}/branches/")).call().unwrap();
    assert_eq!(
        r.body_mut().read_to_string().unwrap(),
        r#"{"branches": []}"#
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn socket_activation_on_a_unix_socket() {
    use std::io::{Read, Write};
    let root = tempfile::tempdir().unwrap();
    let sock = root.path().join("arbor.sock");
    let (mut child, banner) = socket_activated(root.path(), sock.to_str().unwrap());
    assert_eq!(
        banner,
        format!(
            "======== Running on http://unix:{}: ========",
            sock.display()
        )
    );
    // A file download over the Unix socket goes through sendfile too.
    let data = b"over a unix socket";
    let digest = format!("sha256:{}", sha256_hex(data));
    let mut c = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    write!(c, "PUT /branches/b/t/j/f/x HTTP/1.1\r\nHost: x\r\nDigest: {digest}\r\nContent-Length: {}\r\n\r\n", data.len()).unwrap();
    c.write_all(data).unwrap();
    write!(
        c,
        "GET /branches/b/t/j/f/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    c.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    assert!(answer.ends_with("over a unix socket"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn sigterm_lets_an_upload_in_flight_finish() {
    use std::io::{BufRead, Write};
    let mut s = TestServer::start();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 253) as u8).collect();
    let mut c = begin_upload(&s, &data, 1_000_000);
    signal(&s, Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(200));
    // The stopping server still takes the rest of the body and answers.
    c.write_all(&data[1_000_000..]).unwrap();
    let mut status = String::new();
    std::io::BufReader::new(&c).read_line(&mut status).unwrap();
    assert_eq!(status.trim_end(), "HTTP/1.1 201 Created");
    let exit = exit_status(&mut s, "after the upload");
    assert!(exit.success(), "{exit}");
    assert_eq!(std::fs::read(s.path("branches/b/t/j/f/big")).unwrap(), data);
    assert!(uploads_left(s.root.path()).is_empty());
}

#[test]
fn sigterm_cleans_up_an_upload_that_stalls_past_the_drain() {
    let mut s = TestServer::start_with(&[("DLREPO_DRAIN_TIMEOUT", "1")]);
    let data = vec![7u8; 1_000_000];
    let c = begin_upload(&s, &data, 300_000);
    // The client never sends the rest: the stop must not wait for it beyond the drain.
    signal(&s, Signal::SIGTERM);
    let status = exit_status(&mut s, "a stalled upload held the stop");
    assert!(status.success(), "{status}");
    drop(c);
    // Nothing half-done is left: no artifact, no staged file, no blob.
    assert!(!s.path("branches/b/t/j/f/big").exists());
    assert!(!s.path("branches/b/t/j/f/.digests").exists());
    assert_eq!(uploads_left(s.root.path()), Vec::<String>::new());
    let blobs: Vec<_> = walkdir::WalkDir::new(s.path(".blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
}

#[test]
fn the_access_log_names_the_client_behind_a_proxy() {
    use std::io::{Read, Write};
    let root = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("arbor.log");
    let (mut child, addr) = spawn_logged(root.path(), &[], &log);
    let get = |extra: &str| {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "GET /branches/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
        )
        .unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    };
    // Two proxies: the one nearest to arbor appended last.
    get("X-Forwarded-For: 10.1.1.1\r\nX-Forwarded-For: 203.0.113.7\r\n");
    get("");
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("request")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("remote=203.0.113.7"), "{text}");
    assert!(lines[1].contains("remote=127.0.0.1"), "{text}");
}
