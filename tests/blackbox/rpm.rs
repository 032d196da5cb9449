//! A format of `.rpm` files is a dnf repository (issue 15): packages built with the real
//! `rpmbuild` and signed with `rpmsign`, uploaded (with `dlrepo-cli`), then installed by
//! stock `dnf` into a throw-away root with `gpgcheck=1` and `repo_gpgcheck=1` against the
//! server's `/pubkey`; a repomd.xml the key did not sign, or another key, makes dnf refuse.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::shared::rpms::{build_rpm, sign_rpms};
use common::*;
use std::path::Path;
use std::process::Command;

/// `dnf` with everything it reads or writes under `dir` and only `baseurl` as repository,
/// checked with the key at `gpgkey` (`None`: no checks). Returns success and the output.
fn dnf(dir: &Path, baseurl: &str, gpgkey: Option<&str>, args: &[&str]) -> (bool, String) {
    for sub in ["root", "cache", "out"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let mut cmd = Command::new("dnf");
    cmd.arg("-y")
        .arg(format!("--installroot={}", dir.join("root").display()))
        .arg(format!("--setopt=cachedir={}", dir.join("cache").display()))
        .args(["--setopt=reposdir=/dev/null", "--releasever=1"])
        .arg(format!("--repofrompath=arbor,{baseurl}"))
        .arg("--repo=arbor");
    match gpgkey {
        Some(key) => cmd.args([
            "--setopt=arbor.gpgcheck=1",
            "--setopt=arbor.repo_gpgcheck=1",
            &format!("--setopt=arbor.gpgkey={key}"),
        ]),
        None => cmd.args([
            "--setopt=arbor.gpgcheck=0",
            "--setopt=arbor.repo_gpgcheck=0",
        ]),
    };
    let out = cmd
        .args(args)
        .output()
        .expect("dnf runs (tests/deps/install installs dnf)");
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), log)
}

/// The packages installed in the root of `dir`, as `rpm -qa` names them.
fn installed(dir: &Path) -> String {
    let out = Command::new("rpm")
        .arg("--root")
        .arg(dir.join("root"))
        .args(["-qa", "--qf", "%{NAME}-%{VERSION}\n"])
        .output()
        .expect("rpm runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `dlrepo-cli upload BRANCH TAG JOB FORMAT tree` (dlrepo 0.44's own client, from
/// tests/deps/install), which uploads every file and finishes the format.
fn dlrepo_cli_upload(s: &TestServer, work: &Path, tree: &Path, names: [&str; 4]) {
    let script = test_dep(
        "ARBOR_TEST_DLREPO_CLI",
        "dlrepo-cli.path",
        "run tests/deps/install",
    );
    let home = work.join("cli-home");
    std::fs::create_dir_all(&home).unwrap();
    run_ok(
        Command::new("python3")
            .arg(script)
            .arg("upload")
            .args(names)
            .arg(tree)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("DLREPO_URL", &s.base)
            .env("DLREPO_PREFIX", "/")
            .env("DLREPO_USER", ""),
        "dlrepo-cli upload",
    );
}

/// Two signed packages, `arbor-hello` requiring `arbor-other` (in a sub-directory).
fn signed_packages(work: &Path, home: &Path) -> (Vec<u8>, Vec<u8>) {
    let hello = build_rpm(work, "arbor-hello", "1.0", Some("arbor-other >= 2.0"));
    let other = build_rpm(work, "arbor-other", "2.1", None);
    sign_rpms(home, &[&hello, &other]);
    (std::fs::read(hello).unwrap(), std::fs::read(other).unwrap())
}

#[test]
fn stock_dnf_installs_a_package_and_its_dependency_from_a_signed_format() {
    let work = tempfile::tempdir().unwrap();
    let (s, home) = crate::pubkey::signed_server(work.path(), "gnupg");
    let (hello, other) = signed_packages(work.path(), &home);
    let fmt = "/branches/b/t/j/rpm/";
    let tree = work.path().join("upload");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("arbor-hello-1.0-1.noarch.rpm"), &hello).unwrap();
    std::fs::write(tree.join("sub/arbor-other-2.1-1.noarch.rpm"), &other).unwrap();
    std::fs::write(tree.join("broken.rpm"), b"not a package").unwrap();
    dlrepo_cli_upload(&s, work.path(), &tree, ["b", "t", "j", "rpm"]);
    let asc = s.get(&format!("{fmt}repodata/repomd.xml.asc"));
    assert_eq!(asc.status, 200);
    assert_eq!(asc.headers["content-type"], "application/pgp-signature");
    // Signed at the format's time: the same content, the same bytes.
    assert_eq!(
        asc.body,
        s.get(&format!("{fmt}repodata/repomd.xml.asc")).body
    );

    let key = s.url("/pubkey");
    let dir = work.path().join("dnf");
    let (ok, log) = dnf(&dir, &s.url(fmt), Some(&key), &["install", "arbor-hello"]);
    assert!(ok, "{log}");
    let got = installed(&dir);
    assert!(
        got.contains("arbor-hello-1.0\n") && got.contains("arbor-other-2.1\n"),
        "{got}\n{log}"
    );
    // Downloads are the uploaded bytes.
    let out = dir.join("out").display().to_string();
    let (ok, log) = dnf(
        &work.path().join("dnf-dl"),
        &s.url(fmt),
        Some(&key),
        &[
            "install",
            "--downloadonly",
            &format!("--destdir={out}"),
            "arbor-hello",
        ],
    );
    assert!(ok, "{log}");
    assert_eq!(
        std::fs::read(dir.join("out/arbor-hello-1.0-1.noarch.rpm")).unwrap(),
        hello
    );
    assert_eq!(
        std::fs::read(dir.join("out/arbor-other-2.1-1.noarch.rpm")).unwrap(),
        other
    );
}

#[test]
fn stock_dnf_refuses_tampered_metadata_and_another_key() {
    let work = tempfile::tempdir().unwrap();
    let (s, home) = crate::pubkey::signed_server(work.path(), "gnupg");
    let (hello, other) = signed_packages(work.path(), &home);
    let files: [(&str, &[u8]); 2] = [("hello.rpm", &hello), ("sub/other.rpm", &other)];
    s.upload_format("/branches/b/t/j/rpm/", &files);
    let key = s.url("/pubkey");
    // What a tampering mirror or proxy would hand out: arbor's answers, one file changed.
    let mirror = |name: &str, change: &dyn Fn(&Path)| {
        let dir = work.path().join(name).join("mirror");
        for rel in [
            "repodata/repomd.xml",
            "repodata/repomd.xml.asc",
            "repodata/primary.xml.gz",
            "repodata/filelists.xml.gz",
            "repodata/other.xml.gz",
            "hello.rpm",
            "sub/other.rpm",
        ] {
            let r = s.get(&format!("/branches/b/t/j/rpm/{rel}"));
            assert_eq!(r.status, 200, "{rel}");
            std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
            std::fs::write(dir.join(rel), r.body).unwrap();
        }
        change(&dir);
        let url = format!("file://{}/", dir.display());
        dnf(
            &work.path().join(name),
            &url,
            Some(&key),
            &["install", "arbor-hello"],
        )
    };
    // Untouched, the mirror verifies: the refusals below are the changes' doing.
    let (ok, log) = mirror("intact", &|_| {});
    assert!(ok, "{log}");

    // A repomd.xml that is not the one the server signed.
    let (ok, log) = mirror("tampered", &|d| {
        let genuine = std::fs::read_to_string(d.join("repodata/repomd.xml")).unwrap();
        let tampered = genuine.replace("<revision>", "<revision>1");
        assert_ne!(genuine, tampered);
        std::fs::write(d.join("repodata/repomd.xml"), tampered).unwrap();
    });
    assert!(!ok, "a repository whose repomd.xml does not verify: {log}");
    assert!(
        log.contains("repomd.xml GPG signature verification error"),
        "{log}"
    );
    assert!(!installed(&work.path().join("tampered")).contains("arbor-hello"));

    // A primary.xml.gz that is not the one the signed repomd.xml names.
    let (ok, log) = mirror("tampered-primary", &|d| {
        std::fs::write(
            d.join("repodata/primary.xml.gz"),
            b"\x1f\x8b not the primary",
        )
        .unwrap();
    });
    assert!(!ok, "a primary.xml.gz that repomd.xml does not name: {log}");
    assert!(log.contains("checksum doesn't match"), "{log}");
    assert!(!installed(&work.path().join("tampered-primary")).contains("arbor-hello"));

    // The genuine repository with another server's key: refused too.
    let (other_server, _) = crate::pubkey::signed_server(work.path(), "other-gnupg");
    let wrong = other_server.url("/pubkey");
    let (ok, log) = dnf(
        &work.path().join("wrong"),
        &s.url("/branches/b/t/j/rpm/"),
        Some(&wrong),
        &["install", "arbor-hello"],
    );
    assert!(!ok, "a repository signed by another key: {log}");
    assert!(
        log.contains("repomd.xml GPG signature verification error"),
        "{log}"
    );
    assert!(!installed(&work.path().join("wrong")).contains("arbor-hello"));
}

#[test]
fn stock_dnf_follows_a_product_versions_latest_alias() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let hello = std::fs::read(build_rpm(work.path(), "arbor-hello", "1.2", None)).unwrap();
    s.upload_format(
        "/branches/b/t/j/rpm/",
        &[("arbor-hello-1.2-1.noarch.rpm", &hello)],
    );
    let meta = serde_json::json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "pb", "version": "1.2"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    let dir = work.path().join("dnf");
    let (ok, log) = dnf(
        &dir,
        &s.url("/products/p/v/pb/latest/rpm/"),
        None,
        &["install", "arbor-hello-1.2"],
    );
    assert!(ok, "{log}");
    assert!(installed(&dir).contains("arbor-hello-1.2\n"), "{log}");
}
