//! A format of `.deb` files is a flat APT repository (issue 15, unsigned part): packages
//! built with the real `dpkg-deb`, uploaded, then fetched by stock `apt-get update` and
//! `apt-get download` with an isolated configuration and `[trusted=yes]`.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::shared::debs::build_deb;
use common::*;
use std::path::Path;
use std::process::Command;

/// `apt-get` with everything it reads or writes under `dir` and only `sources` as source.
fn apt_get(dir: &Path, sources: &str, args: &[&str]) -> std::process::Output {
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
    let mut cmd = Command::new("apt-get");
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
    cmd.args(args);
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
