//! Process behaviour: the start-up banner, graceful stop on SIGTERM and SIGINT.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;
use common::*;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

fn stop_with(signal: Signal) {
    let mut s = TestServer::start();
    assert_eq!(s.get("/branches/").status, 200);
    let pid = Pid::from_raw(i32::try_from(s.child.id()).unwrap());
    kill(pid, signal).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop on {signal}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{signal}: {status}");
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
