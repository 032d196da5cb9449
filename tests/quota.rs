//! User quotas (spec/API.md Q40, spec/LAYOUT.md §6.4): every write a user repository makes
//! the server store is counted and refused past `DLREPO_USER_QUOTA`, and after each one
//! `users/{user}/.disk_usage` equals a recount of the files (checked here directly and by
//! `arbor fsck`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;

use common::*;

/// `.disk_usage` equals the recount, and `arbor fsck` agrees.
#[track_caller]
fn assert_counted(s: &TestServer, user: &str) -> u64 {
    let used = disk_usage(s.root.path(), user);
    assert_eq!(used, recount(s.root.path(), user), "{user}");
    let (ok, out) = fsck(s.root.path(), false);
    assert!(ok, "{out}");
    used
}

#[test]
fn fsck_reports_and_repairs_a_drifted_count() {
    let s = TestServer::start();
    s.upload_format("/~bob/branches/b/t/j/f/", &[("a", b"hello")]);
    let used = assert_counted(&s, "bob");
    // A count that drifted (a crash between a write and its count, or files changed by hand).
    std::fs::write(s.path("users/bob/.disk_usage"), b"999999").unwrap();
    let before = snapshot(s.root.path());
    let (ok, out) = fsck(s.root.path(), false);
    assert!(!ok, "{out}");
    let real = used - used.to_string().len() as u64 + 6;
    assert!(
        out.contains(&format!(
            "users/bob/.disk_usage: says 999999 bytes, the files hold {real}"
        )),
        "{out}"
    );
    assert_eq!(snapshot(s.root.path()), before, "a check changed the tree");
    let (ok, out) = fsck(s.root.path(), true);
    assert!(ok, "{out}");
    assert!(out.contains("repaired: "), "{out}");
    assert_eq!(assert_counted(&s, "bob"), used);
}
