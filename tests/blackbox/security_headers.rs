//! Serving uploads safely (spec/API.md Q51, Q52; docs/access.md "Serving artifacts safely"):
//! active artifacts are sandboxed downloads unless the operator opts a tree in, pages carry a
//! strict policy, `Content-Disposition` names are quoted and encoded, and secrets sent with a
//! request never reach the log. The other cases run in process, in
//! tests/router/security_headers.rs.

// Black-box tests read the server's log file directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::shared::safe_serving::{ACTIVE, assert_sandboxed_download, browser_get, disposition};
use base64::Engine as _;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Child;

/// Passive files: shown as they are, never forced to a download.
const PASSIVE: &[(&str, &[u8])] = &[
    ("notes.txt", b"<html>not sniffed</html>"),
    ("a.tar.gz", b"\x1f\x8b\x08\x00"),
    ("a.png", b"\x89PNG\r\n\x1a\n"),
];

#[test]
fn active_artifacts_are_sandboxed_downloads_everywhere() {
    let s = TestServer::start();
    let mut files: Vec<(&str, &[u8])> = ACTIVE.to_vec();
    files.extend_from_slice(PASSIVE);
    s.upload_format("/branches/b/t/j/f/", &files);
    s.upload_format("/~bob/branches/b/t/j/f/", &files);
    let meta = json!({"job": {"product": "foo", "product_variant": "x86",
        "product_branch": "1.0", "version": "1.0.1"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    for base in [
        "/branches/b/t/j/f/",
        "/~bob/branches/b/t/j/f/",
        "/products/foo/x86/1.0/1.0.1/f/",
    ] {
        for (name, data) in ACTIVE {
            let url = format!("{base}{name}");
            let r = s.get(&url);
            assert_sandboxed_download(&r, name, &url);
            assert_eq!(r.body, *data, "{url}");
            // A browser asking for a page gets the same file, the same way.
            assert_sandboxed_download(&browser_get(&s, &url), name, &url);
        }
        for (name, data) in PASSIVE {
            let url = format!("{base}{name}");
            let r = s.get(&url);
            assert_eq!(r.status, 200, "{url}");
            assert_eq!(r.body, *data, "{url}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{url}");
            assert_eq!(r.header("content-security-policy"), None, "{url}");
            assert_eq!(r.header("content-disposition"), None, "{url}");
        }
    }
    // Validators and ranges keep the headers: a cached copy must not lose them.
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/evil.html",
        &[("Range", "bytes=0-5")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("evil.html", "evil.html").as_str())
    );
}

/// The server of the log test, killed even when an assertion fails.
struct Logged(Child);

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn basic(login: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
}

#[test]
fn secrets_never_reach_the_log() {
    const SECRET: &str = "SECRETVALUE";
    let root = tempfile::tempdir().expect("root");
    let etc = tempfile::tempdir().expect("etc");
    let auth = etc.path().join("auth");
    std::fs::write(&auth, format!("alice:{SECRET}:readers\n")).expect("auth");
    let acls = etc.path().join("acls");
    std::fs::create_dir(&acls).expect("acls");
    std::fs::write(acls.join("readers"), "r /**\n").expect("acl");
    let token = arbor_token(root.path());
    let log = etc.path().join("log");
    let (child, addr) = spawn_logged(
        root.path(),
        &[
            ("DLREPO_AUTH_DISABLED", "0"),
            ("DLREPO_AUTH_FILE", path_str(&auth)),
            ("DLREPO_ACLS_DIR", path_str(&acls)),
        ],
        &log,
    );
    let _server = Logged(child);
    let agent = new_agent();
    let base = format!("http://{addr}");
    let get = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        send(&agent, &base, "GET", path, &headers, None).status
    };
    assert_eq!(get(&format!("/branches/?token={token}"), None), 200);
    assert_eq!(
        get(&format!("/branches/?x=1&token={SECRET}&y=2"), None),
        401
    );
    // Not the guard's spelling, so no token: still kept out of the log.
    assert_eq!(get("/branches/?TOKEN=SECRETVALUE", None), 401);
    assert_eq!(get("/branches/", Some(&format!("Bearer {SECRET}"))), 401);
    assert_eq!(get("/branches/", Some(&format!("Bearer {token}"))), 200);
    let right = basic("alice", SECRET);
    let wrong = basic("alice", &format!("{SECRET}x"));
    assert_eq!(get("/branches/", Some(&format!("Basic {right}"))), 200);
    assert_eq!(get("/branches/", Some(&format!("Basic {wrong}"))), 401);
    let text = std::fs::read_to_string(&log).expect("log");
    // Every request is in the access log, its token replaced by the marker.
    assert!(text.contains("/branches/?token=REDACTED"), "{text}");
    assert!(text.contains("/branches/?x=1&token=REDACTED&y=2"), "{text}");
    assert!(text.contains("/branches/?TOKEN=REDACTED"), "{text}");
    assert!(text.matches("uri=/branches/ ").count() >= 4, "{text}");
    let secret_part = token.rsplit('_').next().unwrap_or(&token);
    for leak in [SECRET, &token, secret_part, &right, &wrong] {
        assert!(!text.contains(leak), "{leak:?} is in the log:\n{text}");
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A read token for alice, made as an operator does.
fn arbor_token(root: &Path) -> String {
    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args(["token", "create", "--user", "alice", "--scope", "read"])
            .env("DLREPO_ROOT_DIR", root),
        "arbor token create",
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("arbor_"), "{token}");
    token
}
