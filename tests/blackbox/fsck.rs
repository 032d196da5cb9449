//! `arbor fsck` on a healthy tree and on a deliberately damaged one.

// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use serde_json::json;
use std::time::{Duration, SystemTime};

fn blob(s: &TestServer, data: &[u8]) -> std::path::PathBuf {
    let h = sha256_hex(data);
    s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))
}

#[test]
fn fsck_finds_and_repairs_a_damaged_tree() {
    let s = TestServer::start();
    s.upload_format(
        "/branches/b/t/j/f/",
        &[
            ("copied", b"copied"),
            ("gone", b"gone"),
            ("bad", b"bad blob"),
        ],
    );
    s.upload_format("/branches/b/t/k/f/", &[("other", b"other")]);
    s.send_json("PATCH", "/branches/b/t/k/", &json!({"job": {"product": "p", "product_variant": "v", "product_branch": "b", "version": "1"}}));
    s.upload_format("/branches/b/t/l/f/", &[("frozen", b"frozen")]);
    let r = s.send_json("PUT", "/branches/b/t/l/", &json!({"job": {"locked": true}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let (ok, out) = fsck(s.root.path(), false);
    assert!(ok, "{out}");
    assert!(out.contains("0 problems"), "{out}");

    // 1. A file replaced by a copy: right content, but no longer a link of its blob.
    let copied = s.path("branches/b/t/j/f/copied");
    std::fs::remove_file(&copied).unwrap();
    std::fs::write(&copied, b"copied").unwrap();
    // 2. A listed file deleted behind the server's back.
    std::fs::remove_file(s.path("branches/b/t/j/f/gone")).unwrap();
    // 3. A blob corrupted in place (so its linked artifact is bad too).
    std::fs::write(blob(&s, b"bad blob"), b"BAD BLOB").unwrap();
    // 4. A product link whose format vanished.
    std::fs::remove_dir_all(s.path("branches/b/t/k/f")).unwrap();
    // 5. A stale temp file.
    let stray = s.path(".uploads/0123456789abcdef0123456789abcdef");
    std::fs::write(&stray, b"half an upload").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    // 6. A file put in a format by hand, which .digests does not list ...
    std::fs::create_dir_all(s.path("branches/b/t/j/f/sub")).unwrap();
    std::fs::write(s.path("branches/b/t/j/f/sub/extra"), b"other").unwrap();
    // 7. ... and one in a locked job, which repair must not add behind the job's digest.
    let frozen_extra = s.path("branches/b/t/l/f/extra");
    std::fs::write(&frozen_extra, b"sneaked in").unwrap();

    let before = snapshot(s.root.path());
    let (ok, out) = fsck(s.root.path(), false);
    assert!(!ok, "{out}");
    for expected in [
        "not a hard link of its blob",
        "listed in .digests but missing",
        "content does not match its name",
        "product link to a missing format",
        "stray temporary file",
        "sub/extra: not listed in .digests",
        "l/f/extra: not listed in .digests (job locked",
    ] {
        assert!(out.contains(expected), "{expected}: {out}");
    }
    assert_eq!(
        before,
        snapshot(s.root.path()),
        "a check without --repair changed the tree"
    );

    let (ok, out) = fsck(s.root.path(), true);
    // The corrupt content cannot be repaired: the exit status still says so.
    assert!(!ok, "{out}");
    assert!(out.contains("PROBLEM"), "{out}");
    assert_eq!(nlink(&copied), 2);
    let files = s.get("/branches/b/t/j/f/").json()["artifact_format"]["files"].clone();
    assert_eq!(files, json!(["bad", "copied", "sub/extra"]));
    // The added file now links the blob of the same content (left over from k/f).
    assert_eq!(nlink(&blob(&s, b"other")), 2);
    assert!(
        out.contains("PROBLEM: ") && out.contains("l/f/extra"),
        "{out}"
    );
    assert!(frozen_extra.exists());
    let frozen = s.get("/branches/b/t/l/f/").json()["artifact_format"]["files"].clone();
    assert_eq!(frozen, json!(["frozen"]));
    std::fs::remove_file(&frozen_extra).unwrap();
    assert!(!blob(&s, b"bad blob").exists());
    assert!(std::fs::symlink_metadata(s.path("products/p/v/b/1/f")).is_err());
    assert!(!stray.exists());
    // A new upload of the good content is not deduplicated onto the corrupt blob.
    assert_eq!(s.put_file("/branches/b/t/j/f/bad", b"bad blob").status, 201);
    let (ok, out) = fsck(s.root.path(), false);
    assert!(ok, "{out}");
}

#[test]
fn offline_commands_refuse_a_missing_data_root() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("typo");
    for args in [&["fsck"][..], &["gc", "--dry-run"], &["token", "list"]] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args(args)
            .env("DLREPO_ROOT_DIR", &missing)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains(&format!("data root {} does not exist", missing.display())),
            "{args:?}: {stderr}"
        );
        assert!(!missing.exists(), "{args:?} created the root");
    }
}
