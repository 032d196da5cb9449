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

const QUOTA: u64 = 4096;

fn server() -> TestServer {
    TestServer::start_with(&[("DLREPO_USER_QUOTA", "4096")])
}

fn refusal(r: &Res) -> String {
    assert_eq!(r.status, 400, "{}", r.text());
    let text = r.text();
    assert!(
        text.starts_with("400: User bob quota exceeded (")
            && text.ends_with("Please make some ménage."),
        "{text}"
    );
    text
}

/// `.digests` grows by this much for a new `name` (`, "name": "sha256:{64 hex}"`).
fn entry_len(name: &str) -> u64 {
    (2 + name.len() + 2 + 2 + 2 + "sha256:".len() + 64) as u64
}

#[test]
fn every_tree_write_is_counted_and_refused_past_the_quota() {
    let s = server();
    let root = s.root.path();
    let used = || disk_usage(root, "bob");

    // An upload, and the same content linked elsewhere: each link counts in full.
    let kib = vec![1u8; 1000];
    assert_eq!(s.put_file("/~bob/branches/b/t/j/f/a", &kib).status, 201);
    let after_upload = assert_counted(&s, "bob");
    let d = digest_of(&kib);
    let r = s.request(
        "PUT",
        "/~bob/branches/b/t/j/g/a",
        &[("Digest", &d), ("X-Dlrepo-Link", &d)],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert!(assert_counted(&s, "bob") > after_upload + 1000);
    // Metadata, and the product links it makes (symlinks count nothing).
    let meta = serde_json::json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "b", "version": "1", "build": "42"}});
    assert_eq!(
        s.send_json("PATCH", "/~bob/branches/b/t/j/", &meta).status,
        200
    );
    assert!(s.path("users/bob/products/p/v/b/1/f").is_symlink());
    assert_counted(&s, "bob");
    // Tag description, cleanup policy, finalising formats and locking the job (`.digest`).
    let desc = serde_json::json!({"tag": {"description": "first build", "stable": true}});
    assert_eq!(
        s.send_json("POST", "/~bob/branches/b/t/", &desc).status,
        200
    );
    assert_counted(&s, "bob");
    let policy = serde_json::json!({"branch": {"max_daily_tags": 3}});
    assert_eq!(
        s.send_json("POST", "/~bob/branches/b/", &policy).status,
        200
    );
    assert_counted(&s, "bob");
    for f in ["f", "g"] {
        let r = s.request(
            "PATCH",
            &format!("/~bob/branches/b/t/j/{f}/"),
            &[],
            Some(b""),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let lock = serde_json::json!({"job": {"locked": true}});
    assert_eq!(
        s.send_json("PUT", "/~bob/branches/b/t/j/", &lock).status,
        200
    );
    assert!(s.path("users/bob/branches/b/t/j/.digest").is_file());
    assert_counted(&s, "bob");
    // A second branch with a job to write to later, then fill up to a few bytes short.
    s.upload_format("/~bob/branches/b2/t/k/f/", &[("x", b"x")]);
    let filler = QUOTA - used() - entry_len("filler") - 200;
    let r = s.put_file(
        "/~bob/branches/b/t/j2/f/filler",
        &vec![2u8; filler as usize],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let left = QUOTA - assert_counted(&s, "bob");
    assert!((150..=250).contains(&left), "{left}");

    // One byte too many is refused, and nothing changes; exactly the rest fits.
    let edge = left - entry_len("edge");
    let before = snapshot(root);
    let r = s.put_file(
        "/~bob/branches/b/t/j2/f/edge",
        &vec![3u8; edge as usize + 1],
    );
    assert!(refusal(&r).contains("/4.1K)"), "{}", r.text());
    assert_eq!(snapshot(root), before);
    assert_eq!(uploads_left(root), Vec::<String>::new());
    let r = s.put_file("/~bob/branches/b/t/j2/f/edge", &vec![3u8; edge as usize]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(assert_counted(&s, "bob"), QUOTA);

    // At the quota, every write that would grow the count is refused and changes nothing.
    let before = snapshot(root);
    refusal(&s.put_file("/~bob/branches/b2/t/k/f/y", b"y"));
    refusal(&s.request(
        "PUT",
        "/~bob/branches/b2/t/k/f/linked",
        &[("Digest", &d), ("X-Dlrepo-Link", &d)],
        Some(b""),
    ));
    refusal(&s.send_json("PATCH", "/~bob/branches/b2/t/k/", &meta));
    refusal(&s.send_json("POST", "/~bob/branches/b2/t/", &desc));
    refusal(&s.send_json("POST", "/~bob/branches/b2/", &policy));
    refusal(&s.send_json("PUT", "/~bob/branches/b2/t/k/", &lock));
    assert_eq!(snapshot(root), before);
    assert!(!s.path("users/bob/products/p/v/b/1/k").exists());
    // ... but what does not grow it passes: a file replaced by one of the same size, and
    // removing a description.
    let r = s.put_file("/~bob/branches/b/t/j2/f/edge", &vec![4u8; edge as usize]);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(assert_counted(&s, "bob"), QUOTA);
    let clear = serde_json::json!({"tag": {"description": ""}});
    assert_eq!(
        s.send_json("POST", "/~bob/branches/b/t/", &clear).status,
        200
    );
    assert!(assert_counted(&s, "bob") < QUOTA);

    // Deletes give everything back, dot-files included (a locked job goes with its tag).
    assert_eq!(s.delete("/~bob/branches/b/t/j2/").status, 200);
    assert_counted(&s, "bob");
    assert_eq!(s.delete("/~bob/branches/b/t/j/").status, 200);
    assert!(assert_counted(&s, "bob") < 200);
    // What was refused now fits.
    assert_eq!(
        s.send_json("PATCH", "/~bob/branches/b2/t/k/", &meta).status,
        200
    );
    assert_counted(&s, "bob");
    for b in ["b", "b2"] {
        assert_eq!(s.delete(&format!("/~bob/branches/{b}/")).status, 200);
    }
    // Only `.disk_usage` is left, holding its own length.
    assert_eq!(assert_counted(&s, "bob"), 1);
}

/// A post-process command may grow or shrink a format: its user is charged the difference
/// (never refused: the command is the operator's), so the count still equals a recount.
#[test]
fn post_process_output_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pp.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nset -e\nsha256sum * > SUMS\nhead -c 300 /dev/zero >> a.bin\n: > b.bin\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = TestServer::start_with(&[
        ("DLREPO_USER_QUOTA", "4096"),
        ("DLREPO_POST_PROCESS_CMD", script.to_str().unwrap()),
    ]);
    s.upload_format(
        "/~bob/branches/b/t/j/f/",
        &[("a.bin", b"a"), ("b.bin", &[7; 500])],
    );
    assert_eq!(
        std::fs::metadata(s.path("users/bob/branches/b/t/j/f/a.bin"))
            .unwrap()
            .len(),
        301
    );
    assert!(s.path("users/bob/branches/b/t/j/f/SUMS").is_file());
    assert_counted(&s, "bob");
}
