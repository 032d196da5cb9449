//! User quotas (spec/API.md Q40, spec/LAYOUT.md §6.4): every write a user repository makes
//! the server store is counted and refused past `DLREPO_USER_QUOTA`, and after each one
//! `users/{user}/.disk_usage` equals a recount of the files (checked here directly and by
//! `arbor fsck`).
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

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
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

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
    // (Another version: joining version 1 is refused sooner, its format f being taken.)
    let meta2 = serde_json::json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "b", "version": "2"}});
    refusal(&s.send_json("PATCH", "/~bob/branches/b2/t/k/", &meta2));
    refusal(&s.send_json("POST", "/~bob/branches/b2/t/", &desc));
    refusal(&s.send_json("POST", "/~bob/branches/b2/", &policy));
    refusal(&s.send_json("PUT", "/~bob/branches/b2/t/k/", &lock));
    assert_eq!(snapshot(root), before);
    assert!(!s.path("users/bob/products/p/v/b/2").exists());
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

fn code(r: &Res) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A blob pushed in one `POST ?digest=`.
fn push_blob(s: &TestServer, name: &str, data: &[u8]) -> Res {
    s.request(
        "POST",
        &format!("/v2/{name}/blobs/uploads/?digest={}", digest_of(data)),
        &[("Content-Type", "application/octet-stream")],
        Some(data),
    )
}

fn manifest_for(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer), "size": layer.len()}],
    }))
    .unwrap()
}

/// Files in `.uploads/`: sessions, their sidecars and pending links.
fn pending(s: &TestServer) -> Vec<String> {
    let mut v = uploads_left(s.root.path());
    v.sort();
    v
}

#[test]
fn registry_pushes_to_a_user_repository_are_held_to_the_quota() {
    let s = server();
    let root = s.root.path();
    let repo = "u/bob/main/img";
    let blob_url = |d: &str| format!("/v2/{repo}/blobs/{d}");
    let (config, a, b) = (b"{}".to_vec(), vec![b'a'; 1500], vec![b'b'; 2000]);

    // Monolithic: pending blobs live outside users/bob, so the count does not change ...
    assert_eq!(push_blob(&s, repo, &config).status, 201);
    assert_eq!(push_blob(&s, repo, &a).status, 201);
    assert_eq!(disk_usage(root, "bob"), 0);
    assert_eq!(recount(root, "bob"), 0);
    // ... but they are reserved against it: 1502 pending, and 3000 more would not fit.
    let before = (snapshot(root), pending(&s));
    let r = push_blob(&s, repo, &vec![b'c'; 3000]);
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()), "{}", r.text());
    assert!(
        r.text().contains("User bob quota exceeded (1.5K/4.1K)"),
        "{}",
        r.text()
    );
    assert_eq!(
        (snapshot(root), pending(&s)),
        before,
        "no session or blob left"
    );

    // Chunked: a PATCH past the room is refused and the session keeps what it had.
    let r = s.request(
        "POST",
        &format!("/v2/{repo}/blobs/uploads/"),
        &[],
        Some(b""),
    );
    let loc = r.header("location").unwrap().to_owned();
    let r = s.request(
        "PATCH",
        &loc,
        &[("Content-Range", "0-999")],
        Some(&b[..1000]),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = s.request(
        "PATCH",
        &loc,
        &[("Content-Range", "1000-3599")],
        Some(&[b'b'; 2600]),
    );
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()), "{}", r.text());
    assert_eq!(s.get(&loc).header("range"), Some("0-999"));
    let r = s.request(
        "PATCH",
        &loc,
        &[("Content-Range", "1000-1999")],
        Some(&b[1000..]),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = s.request(
        "PUT",
        &format!("{loc}?digest={}", digest_of(&b)),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.head(&blob_url(&digest_of(&b))).status, 200);
    assert_eq!(disk_usage(root, "bob"), 0);

    // A mount into the user repository is reserved too: refused when it does not fit ...
    let big = vec![b'm'; 700];
    let small = vec![b's'; 10];
    for blob in [&big, &small] {
        assert_eq!(push_blob(&s, "main/src", blob).status, 201);
    }
    let mount = |d: &str| {
        s.request(
            "POST",
            &format!("/v2/{repo}/blobs/uploads/?mount={d}&from=main/src"),
            &[],
            Some(b""),
        )
    };
    let before = (snapshot(root), pending(&s));
    let r = mount(&digest_of(&big));
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()), "{}", r.text());
    assert_eq!((snapshot(root), pending(&s)), before);
    assert_eq!(s.head(&blob_url(&digest_of(&big))).status, 404);
    // ... and made when it does.
    assert_eq!(mount(&digest_of(&small)).status, 201);
    assert_eq!(s.head(&blob_url(&digest_of(&small))).status, 200);

    // A manifest links its blobs into the user's tree: now they count, and are no longer
    // pending.
    let m1 = manifest_for(&config, &a);
    let r = s.request("PUT", &format!("/v2/{repo}/manifests/v1"), &[], Some(&m1));
    assert_eq!(r.status, 201, "{}", r.text());
    let used = assert_counted(&s, "bob");
    assert_eq!(used, (1500 + 2 + m1.len() + 4) as u64);
    // The second image does not fit next to the first: refused, and nothing changes.
    let m2 = manifest_for(&config, &b);
    let before = snapshot(root);
    let r = s.request("PUT", "/v2/u/bob/main/img/manifests/v2", &[], Some(&m2));
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()), "{}", r.text());
    assert_eq!(snapshot(root), before);
    assert_counted(&s, "bob");

    // So is a manifest pushed by digest, which waits as a pending blob: 2010 bytes pending
    // and 1.9K used leave no room for it.
    let by_digest = format!("/v2/{repo}/manifests/{}", digest_of(&m2));
    let r = s.request("PUT", &by_digest, &[], Some(&m2));
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()), "{}", r.text());
    assert_eq!(snapshot(root), before);

    // Deleting the image gives its bytes back; then the second one fits.
    let r = s.delete(&format!("/v2/{repo}/manifests/v1"));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(assert_counted(&s, "bob"), 1);
    assert_eq!(push_blob(&s, repo, &config).status, 201);
    let r = s.request("PUT", &by_digest, &[], Some(&m2));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(assert_counted(&s, "bob"), 1);
    let r = s.request("PUT", "/v2/u/bob/main/img/manifests/v2", &[], Some(&m2));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(assert_counted(&s, "bob"), (2000 + 2 + m2.len() + 4) as u64);
    // What the image used is no longer pending; the mounted blob, the manifest pushed by
    // digest and the layer the deleted image left behind (docs/registry.md, "Deleting")
    // still are (the collector drops them once stale).
    // (The other two pending links are main/src's.)
    let left = pending(&s);
    assert!(left.iter().all(|p| p.starts_with("reg-")), "{left:?}");
    assert_eq!(
        left.iter().filter(|p| p.ends_with(".bob")).count(),
        3,
        "{left:?}"
    );
    let a_hex = digest_of(&a).replace("sha256:", "sha256-");
    assert!(
        left.iter()
            .any(|p| p.contains(&a_hex) && p.ends_with(".bob")),
        "{left:?}"
    );
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
