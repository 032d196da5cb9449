//! A format of `.deb` files is a flat APT repository (issue 15): packages built with the real
//! `dpkg-deb`, uploaded, then fetched by stock `apt-get update` and `apt-get download` with
//! an isolated configuration, `[trusted=yes]` without a key and `[signed-by=...]` with one.
//! A product branch is one archive of all its versions: apt installs an older version from it,
//! then upgrades (into a throw-away root).
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::shared::debs::build_deb;
use common::*;
use std::path::Path;
use std::process::Command;

/// `apt-get` with everything it reads or writes under `dir` and only `sources` as source.
pub(crate) fn apt_get(dir: &Path, sources: &str, args: &[&str]) -> std::process::Output {
    apt("apt-get", dir, sources, args)
}

/// `program` (`apt-get`, `apt-cache`) in the isolated configuration of [`apt_get`].
fn apt(program: &str, dir: &Path, sources: &str, args: &[&str]) -> std::process::Output {
    apt_with(program, dir, sources, &[], args)
}

/// `apt-get` that installs into the throw-away root `dir/root` (`dpkg --root`), with the
/// system's dpkg hooks cleared: never into the system's own.
fn apt_get_root(dir: &Path, sources: &str, args: &[&str]) -> std::process::Output {
    let root = dir.join("root");
    let admin = root.join("var/lib/dpkg");
    for sub in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(sub)).unwrap();
    }
    for file in ["status", "available"] {
        if !admin.join(file).exists() {
            std::fs::write(admin.join(file), "").unwrap();
        }
    }
    let clear = dir.join("clear.conf");
    let hooks = [
        "DPkg::Pre-Invoke",
        "DPkg::Post-Invoke",
        "DPkg::Pre-Install-Pkgs",
    ];
    let text: String = hooks.iter().map(|h| format!("#clear {h};\n")).collect();
    std::fs::write(&clear, text).unwrap();
    let mut extra = vec!["-c".to_owned(), clear.display().to_string()];
    for opt in [
        format!("Dir::State::status={}", admin.join("status").display()),
        format!("DPkg::Options::=--root={}", root.display()),
        "DPkg::Options::=--force-not-root".into(),
        format!("DPkg::Options::=--log={}", dir.join("dpkg.log").display()),
        "Dpkg::Use-Pty=0".into(),
    ] {
        extra.extend(["-o".to_owned(), opt]);
    }
    apt_with("apt-get", dir, sources, &extra, args)
}

fn apt_with(
    program: &str,
    dir: &Path,
    sources: &str,
    extra: &[String],
    args: &[&str],
) -> std::process::Output {
    for sub in [
        "state/lists/partial",
        "cache/archives/partial",
        "etc",
        "out",
    ] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("etc/sources.list"), sources).unwrap();
    std::fs::write(dir.join("state/status"), "").unwrap();
    let d = |p: &str| dir.join(p).display().to_string();
    let mut cmd = Command::new(program);
    cmd.current_dir(dir.join("out"));
    for opt in [
        format!("Dir::Etc::SourceList={}", d("etc/sources.list")),
        "Dir::Etc::SourceParts=/dev/null".into(),
        format!("Dir::State={}", d("state")),
        format!("Dir::State::status={}", d("state/status")),
        format!("Dir::Cache={}", d("cache")),
        "Debug::NoLocking=1".into(),
        "APT::Sandbox::User=root".into(),
        "Acquire::Languages=none".into(),
    ] {
        cmd.arg("-o").arg(opt);
    }
    cmd.args(extra).args(args);
    cmd.output().expect("apt-get runs")
}

#[test]
fn stock_apt_updates_and_downloads_from_a_format() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let hello = build_deb(work.path(), "arbor-hello", "1.0");
    let other = build_deb(work.path(), "arbor-other", "2.1");
    s.upload_format(
        "/branches/b/t/j/deb/",
        &[
            ("arbor-hello_1.0_all.deb", &hello),
            ("sub/arbor-other_2.1_all.deb", &other),
            ("broken.deb", b"not a package"),
        ],
    );
    let packages = s.get("/branches/b/t/j/deb/./Packages");
    assert_eq!(packages.status, 200);
    let text = packages.text();
    assert!(text.contains("Package: arbor-hello\n"), "{text}");
    assert!(
        text.contains("Filename: ./sub/arbor-other_2.1_all.deb\n"),
        "{text}"
    );
    assert!(!text.contains("broken"), "{text}");
    assert_eq!(s.get("/branches/b/t/j/deb/InRelease").status, 404);
    assert_eq!(
        s.get("/branches/b/t/j/deb/Release").body,
        s.get("/branches/b/t/j/deb/Release").body
    );

    let apt = work.path().join("apt");
    let sources = format!("deb [trusted=yes] {} ./\n", s.url("/branches/b/t/j/deb/"));
    let out = apt_get(&apt, &sources, &["update"]);
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !log.contains("W:") && !log.contains("E:"),
        "{log}"
    );
    for (name, file, data) in [
        ("arbor-hello", "arbor-hello_1.0_all.deb", &hello),
        ("arbor-other", "arbor-other_2.1_all.deb", &other),
    ] {
        let out = apt_get(&apt, &sources, &["download", name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&std::fs::read(apt.join("out").join(file)).unwrap(), data);
    }
}

#[test]
fn stock_apt_follows_a_product_versions_latest_alias() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let hello = build_deb(work.path(), "arbor-hello", "1.2");
    s.upload_format(
        "/branches/b/t/j/deb/",
        &[("arbor-hello_1.2_all.deb", &hello)],
    );
    let meta = serde_json::json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "pb", "version": "1.2"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    let apt = work.path().join("apt");
    let sources = format!(
        "deb [trusted=yes] {} ./\n",
        s.url("/products/p/v/pb/latest/deb/")
    );
    let out = apt_get(&apt, &sources, &["update"]);
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !log.contains("E:"), "{log}");
    let out = apt_get(&apt, &sources, &["download", "arbor-hello=1.2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = std::fs::read(apt.join("out/arbor-hello_1.2_all.deb")).unwrap();
    assert_eq!(got, hello);
}

/// `apt-get update`'s exit status and everything it printed.
fn update(apt: &Path, sources: &str) -> (bool, String) {
    let out = apt_get(apt, sources, &["update"]);
    let log =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), log)
}

#[test]
fn stock_apt_verifies_a_signed_repository_and_refuses_another_key() {
    let work = tempfile::tempdir().unwrap();
    let (s, _) = crate::pubkey::signed_server(work.path(), "gnupg");
    let hello = build_deb(work.path(), "arbor-hello", "1.0");
    s.upload_format(
        "/branches/b/t/j/deb/",
        &[("arbor-hello_1.0_all.deb", &hello)],
    );
    let signature = s.get("/branches/b/t/j/deb/Release.gpg");
    assert_eq!(signature.status, 200);
    assert_eq!(
        signature.headers["content-type"],
        "application/pgp-signature"
    );
    let in_release = s.get("/branches/b/t/j/deb/InRelease");
    assert_eq!(in_release.status, 200);
    // Signed at the format's time: the same content, the same bytes.
    assert_eq!(in_release.body, s.get("/branches/b/t/j/deb/InRelease").body);

    let keyring = work.path().join("arbor.gpg");
    std::fs::write(&keyring, s.get("/pubkey.gpg").body).unwrap();
    let url = s.url("/branches/b/t/j/deb/");
    let sources = format!("deb [signed-by={}] {url} ./\n", keyring.display());
    let apt = work.path().join("apt");
    let (ok, log) = update(&apt, &sources);
    assert!(ok && !log.contains("W:") && !log.contains("E:"), "{log}");
    let out = apt_get(&apt, &sources, &["download", "arbor-hello"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(apt.join("out/arbor-hello_1.0_all.deb")).unwrap(),
        hello
    );

    // Another key's keyring: apt must refuse the repository and offer nothing from it.
    let (other, _) = crate::pubkey::signed_server(work.path(), "other-gnupg");
    let wrong = work.path().join("wrong.gpg");
    std::fs::write(&wrong, other.get("/pubkey.gpg").body).unwrap();
    let sources = format!("deb [signed-by={}] {url} ./\n", wrong.display());
    let apt = work.path().join("apt-wrong");
    let (ok, log) = update(&apt, &sources);
    assert!(!ok || log.contains("E:") || log.contains("W:"), "{log}");
    assert!(
        log.contains("NO_PUBKEY") || log.contains("not signed") || log.contains("signature"),
        "{log}"
    );
    let out = apt_get(&apt, &sources, &["download", "arbor-hello"]);
    assert!(
        !out.status.success(),
        "a package from an unverified repository"
    );
}

#[test]
fn stock_apt_sees_every_locked_version_of_a_product_branch() {
    let work = tempfile::tempdir().unwrap();
    let (s, _) = crate::pubkey::signed_server(work.path(), "gnupg");
    let mut debs = Vec::new();
    for (tag, version) in [("t1", "1.0"), ("t2", "1.1")] {
        let deb = build_deb(work.path(), "arbor-foo", version);
        let job = format!("/branches/b/{tag}/j/");
        let file = format!("arbor-foo_{version}_all.deb");
        s.upload_format(&format!("{job}deb/"), &[(&file, &deb)]);
        let meta = serde_json::json!({"job": {"product": "p", "product_variant": "v",
            "product_branch": "pb", "version": version}});
        assert_eq!(s.send_json("PATCH", &job, &meta).status, 200);
        let lock = serde_json::json!({"job": {"locked": true}});
        assert_eq!(s.send_json("PUT", &job, &lock).status, 200);
        debs.push((version, file, deb));
    }
    let keyring = work.path().join("arbor.gpg");
    std::fs::write(&keyring, s.get("/pubkey.gpg").body).unwrap();
    let url = s.url("/products/p/v/pb/");
    let sources = format!("deb [signed-by={}] {url} ./\n", keyring.display());
    let dir = work.path().join("apt");
    let (ok, log) = update(&dir, &sources);
    assert!(ok && !log.contains("W:") && !log.contains("E:"), "{log}");
    let policy = apt("apt-cache", &dir, &sources, &["policy", "arbor-foo"]);
    let policy = String::from_utf8_lossy(&policy.stdout).into_owned();
    assert!(policy.contains("Candidate: 1.1"), "{policy}");
    assert!(
        policy.contains(" 1.0 ") && policy.contains(" 1.1 "),
        "{policy}"
    );
    // Install the older version, then upgrade, in a throw-away root.
    let readme = dir.join("root/usr/share/doc/arbor-foo/README");
    for (args, version) in [
        (&["install", "-y", "arbor-foo=1.0"][..], "1.0"),
        (&["upgrade", "-y"][..], "1.1"),
    ] {
        let out = apt_get_root(&dir, &sources, args);
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {log}");
        assert_eq!(
            std::fs::read_to_string(&readme).unwrap(),
            format!("arbor-foo {version}\n"),
            "{log}"
        );
    }
    for (version, file, deb) in &debs {
        let out = apt_get(
            &dir,
            &sources,
            &["download", &format!("arbor-foo={version}")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(&std::fs::read(dir.join("out").join(file)).unwrap(), deb);
    }
}
