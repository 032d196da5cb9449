//! Hostile and broken requests over a real socket; the router tier (tests/router/bad_input.rs)
//! checks every other case of hostile input in process.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;

#[test]
fn traversal_and_bad_names_are_refused() {
    let s = TestServer::start();
    s.upload_format("/branches/b/t/j/f/", &[("a", b"a")]);
    let before = snapshot(s.root.path());
    for path in [
        "/branches/../t/j/f/x",
        "/branches/%2e%2e/t/j/f/x",
        "/branches/b/%2E%2E/j/f/x",
        "/branches/.blobs/t/j/f/x",
        "/branches/b/.t/j/f/x",
        "/branches/b/t/j/.f/x",
        "/branches/b%2Fc/t/j/f/x",
        "/~../branches/b/t/j/f/x",
        "/%7E../branches/b/t/j/f/x",
        "/~.x/branches/b/t/j/f/x",
    ] {
        let r = s.put_file(path, b"evil");
        assert_eq!(
            (r.status, r.text().as_str()),
            (404, "404: Not Found"),
            "{path}"
        );
    }
    for (path, rel) in [
        ("/branches/b/t/j/f/%2e%2e/%2e%2e/x", "../../x"),
        ("/branches/b/t/j/f/d/%2E%2E/x", "d/../x"),
        ("/branches/b/t/j/f/%2Fetc%2Fpasswd", "/etc/passwd"),
        ("/branches/b/t/j/f/.digests", ".digests"),
        ("/branches/b/t/j/f/.dirty", ".dirty"),
        ("/branches/b/t/j/f/a//b", "a//b"),
        ("/branches/b/t/j/f/x/", "x/"),
        ("/branches/b/t/j/f/./x", "./x"),
    ] {
        let r = s.put_file(path, b"evil");
        assert_eq!((r.status, r.text()), (400, format!("400: {rel}")), "{path}");
    }
    assert_eq!(before, snapshot(s.root.path()));
    assert!(uploads_left(s.root.path()).is_empty());
    // Dot-files below the format root are ordinary artifacts.
    assert_eq!(
        s.put_file("/branches/b/t/j/f/sub/.digests", b"ok").status,
        201
    );
    assert_eq!(s.put_file("/branches/b/t/j/f/.hidden", b"ok").status, 201);
}

#[test]
fn a_digest_mismatch_names_itself_in_the_status_line() {
    // The router tier checks every digest error (tests/router/bad_input.rs); this is the
    // status line hyper really sends.
    let s = TestServer::start();
    let wrong = digest_of(b"something else");
    let line = s.raw_status_line(&format!(
        "PUT /branches/b/t/j/f/x HTTP/1.1\r\nHost: x\r\nDigest: {wrong}\r\nContent-Length: 7\r\nConnection: close\r\n\r\npayload"
    ));
    assert_eq!(
        line,
        format!("HTTP/1.1 422 Received data does not match digest: {wrong}")
    );
    assert!(uploads_left(s.root.path()).is_empty());
    assert!(!s.path("branches/b").exists());
}

#[test]
fn bad_configuration_stops_startup_naming_the_setting() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("serve")
        .env("DLREPO_LISTEN_PORT", "not-a-port")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DLREPO_LISTEN_PORT"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("arbor.toml");
    std::fs::write(&cfg, "root_dir = \"/tmp/x\"\nlisten_prot = 3\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["--config", cfg.to_str().unwrap(), "serve"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("listen_prot"));
}
