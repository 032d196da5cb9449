//! examples/config/post-process-sign as the real `DLREPO_POST_PROCESS_CMD`: checksums for
//! every format, detached gpg signatures for `.deb`/`.rpm` files and the checksum list when a
//! key is configured, all of it re-hashed and deduplicated by arbor afterwards.

// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config/post-process-sign")
}

fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
    run_ok(
        Command::new("gpg")
            .env("GNUPGHOME", home)
            .args(["--batch", "--quiet"])
            .args(args),
        &format!("gpg {args:?} (tests/deps/install installs gpg)"),
    )
}

fn files(s: &TestServer, format: &str) -> serde_json::Value {
    s.get(format).json()["artifact_format"]["files"].clone()
}

fn fsck_is_clean(s: &TestServer) {
    let (healthy, report) = fsck(s.root.path(), false);
    assert!(healthy, "{report}");
}

#[test]
fn the_example_script_writes_checksums_and_signs_packages() {
    let home = tempfile::tempdir().expect("temp dir");
    gpg(
        home.path(),
        &[
            "--passphrase",
            "",
            "--quick-gen-key",
            "arbor test <signer@example.com>",
            "ed25519",
            "sign",
            "1d",
        ],
    );
    let script = script();
    let s = TestServer::start_with(&[
        (
            "DLREPO_POST_PROCESS_CMD",
            script.to_str().expect("utf-8 path"),
        ),
        ("ARBOR_SIGN_KEY", "signer@example.com"),
        ("GNUPGHOME", home.path().to_str().expect("utf-8 path")),
    ]);
    let deb: &[u8] = b"!<arch>\nnot really a package\n";
    s.upload_format(
        "/branches/b/t/j/pkgs/",
        &[("pool/foo_1.0_amd64.deb", deb), ("README", b"read me\n")],
    );
    assert_eq!(
        files(&s, "/branches/b/t/j/pkgs/"),
        json!([
            "README",
            "SHA256SUMS",
            "SHA256SUMS.asc",
            "pool/foo_1.0_amd64.deb",
            "pool/foo_1.0_amd64.deb.asc"
        ])
    );
    let sums = s.get("/branches/b/t/j/pkgs/SHA256SUMS").text();
    assert_eq!(
        sums,
        format!(
            "{}  README\n{}  pool/foo_1.0_amd64.deb\n",
            sha256_hex(b"read me\n"),
            sha256_hex(deb)
        )
    );
    // The signatures verify against what clients download.
    let dir = tempfile::tempdir().expect("temp dir");
    for (file, sig) in [
        ("pool/foo_1.0_amd64.deb", "pool/foo_1.0_amd64.deb.asc"),
        ("SHA256SUMS", "SHA256SUMS.asc"),
    ] {
        let (f, a) = (dir.path().join("file"), dir.path().join("file.asc"));
        let url = "/branches/b/t/j/pkgs/";
        std::fs::write(&f, s.get(&format!("{url}{file}")).body).expect("file");
        std::fs::write(&a, s.get(&format!("{url}{sig}")).body).expect("signature");
        let paths = [a.to_str().expect("utf-8"), f.to_str().expect("utf-8")];
        gpg(home.path(), &["--verify", paths[0], paths[1]]);
    }
    // The package itself is untouched and still shares its blob; the new files are blobs.
    assert_eq!(
        s.get("/branches/b/t/j/pkgs/pool/foo_1.0_amd64.deb").body,
        deb
    );
    fsck_is_clean(&s);
}

#[test]
fn without_a_key_the_example_script_only_writes_checksums() {
    let script = script();
    let s = TestServer::start_with(&[(
        "DLREPO_POST_PROCESS_CMD",
        script.to_str().expect("utf-8 path"),
    )]);
    s.upload_format("/branches/b/t/j/bin/", &[("tool.rpm", b"rpm bytes")]);
    assert_eq!(
        files(&s, "/branches/b/t/j/bin/"),
        json!(["SHA256SUMS", "tool.rpm"])
    );
    // A second finalisation does not list its own output.
    s.upload_format("/branches/b/t/j/bin/", &[("more.txt", b"more")]);
    assert_eq!(
        s.get("/branches/b/t/j/bin/SHA256SUMS").text(),
        format!(
            "{}  more.txt\n{}  tool.rpm\n",
            sha256_hex(b"more"),
            sha256_hex(b"rpm bytes")
        )
    );
    fsck_is_clean(&s);
}
