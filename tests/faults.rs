//! Faults at the wrong moment (issue 12): what the log says when a request fails.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::{digest_of, spawn_logged};

// ---- what a failure logs --------------------------------------------------------------

#[test]
fn a_500_logs_the_method_the_url_and_the_path_that_failed() {
    let root = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("arbor.log");
    // Where temp files go is not a directory: every upload fails on the server's side.
    std::fs::write(root.path().join(".uploads"), "in the way").unwrap();
    let env = [
        ("DLREPO_LOG_LEVEL", "WARNING"),
        ("DLREPO_LOG_OUTPUT", "console"),
    ];
    let (mut child, addr) = spawn_logged(root.path(), &env, &log);
    let agent = common::new_agent();
    let base = format!("http://{addr}");
    let r = common::send(
        &agent,
        &base,
        "PUT",
        "/branches/b/t/j/f/file.txt?x=1",
        &[("Digest", &digest_of(b"data"))],
        Some(b"data"),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ERROR: request failed"))
        .unwrap_or_else(|| panic!("no error logged: {text}"));
    for want in [
        "method=PUT",
        "/branches/b/t/j/f/file.txt?x=1",
        &format!(
            "{}/.uploads/",
            root.path().canonicalize().unwrap().display()
        ),
        "Not a directory",
    ] {
        assert!(line.contains(want), "{want:?} missing from {line}");
    }
}
