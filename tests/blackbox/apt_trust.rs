//! What stock apt trusts in a signed arbor repository (issue 15 item 6): packages uploaded
//! with the real `dlrepo-cli`, verified against `/pubkey.gpg`, and refused when anything in
//! the chain InRelease -> Packages -> .deb is changed on the way. The changed copies are
//! served to apt from a `file:` mirror of what arbor answered, which is what a tampering
//! proxy or mirror would hand out.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::apt::apt_get;
use crate::common;
use crate::shared::debs::build_deb;
use common::*;
use std::path::Path;
use std::process::Command;

const FMT: &str = "/branches/b/t/j/deb/";
const INDEXES: [&str; 6] = [
    "InRelease",
    "Release",
    "Release.gpg",
    "Packages",
    "Packages.gz",
    "Packages.xz",
];

/// A change made to a mirror before apt reads it.
type Change = Box<dyn FnOnce(&Path)>;

/// `dlrepo-cli upload b t j deb FILES...` with a throw-away HOME, as a CI job would run it.
fn dlrepo_cli_upload(s: &TestServer, files: &[&Path]) {
    let script = test_dep(
        "ARBOR_TEST_DLREPO_CLI",
        "dlrepo-cli.path",
        "run tests/deps/install, which writes target/test-deps/dlrepo-cli.path",
    );
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("python3")
        .arg(script)
        .args(["upload", "b", "t", "j", "deb"])
        .args(files)
        .env("HOME", home.path())
        .env("DLREPO_URL", &s.base)
        .env("DLREPO_PREFIX", "/")
        .env("DLREPO_USER", "")
        .output()
        .expect("python3 runs dlrepo-cli");
    assert!(
        out.status.success(),
        "dlrepo-cli upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `apt-get update` then `apt-get download arbor-hello` against `sources`: whether both
/// succeeded, and what apt said.
fn update_and_download(apt: &Path, sources: &str) -> (bool, String) {
    let mut log = String::new();
    for args in [&["update"][..], &["download", "arbor-hello"]] {
        let out = apt_get(apt, sources, args);
        log += &String::from_utf8_lossy(&out.stdout);
        log += &String::from_utf8_lossy(&out.stderr);
        if !out.status.success() || log.contains("E:") || log.contains("W:") {
            return (false, log);
        }
    }
    (true, log)
}

/// A `file:` copy of the format as arbor serves it, with `change` applied.
fn mirror(s: &TestServer, dir: &Path, change: impl FnOnce(&Path)) {
    std::fs::create_dir_all(dir).unwrap();
    for name in INDEXES.iter().chain(&["arbor-hello_1.0_all.deb"]) {
        let r = s.get(&format!("{FMT}{name}"));
        assert_eq!(r.status, 200, "{name}");
        std::fs::write(dir.join(name), r.body).unwrap();
    }
    change(dir);
}

/// Rewrites `Packages` and its compressed copies the same way, as a careful attacker would.
fn rewrite_packages(dir: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(dir.join("Packages")).unwrap();
    assert!(text.contains(from), "{from} in {text}");
    std::fs::write(dir.join("Packages"), text.replace(from, to)).unwrap();
    for (tool, ext) in [("gzip", "gz"), ("xz", "xz")] {
        let out = Command::new(tool)
            .args(["-c", "-k"])
            .arg(dir.join("Packages"))
            .output()
            .expect("gzip and xz are installed by tests/deps/install");
        std::fs::write(dir.join(format!("Packages.{ext}")), out.stdout).unwrap();
    }
}

#[test]
fn apt_accepts_what_arbor_signed_and_refuses_any_change() {
    let work = tempfile::tempdir().unwrap();
    let (s, _) = crate::pubkey::signed_server(work.path(), "gnupg");
    let hello = build_deb(work.path(), "arbor-hello", "1.0");
    let deb = work.path().join("arbor-hello_1.0_all.deb");
    std::fs::write(&deb, &hello).unwrap();
    dlrepo_cli_upload(&s, &[&deb]);

    let keyring = work.path().join("arbor.gpg");
    std::fs::write(&keyring, s.get("/pubkey.gpg").body).unwrap();
    let signed_by = |url: &str| format!("deb [signed-by={}] {url} ./\n", keyring.display());

    // Straight from arbor, and from an untouched mirror: verified and installed as is.
    let (ok, log) = update_and_download(&work.path().join("apt"), &signed_by(&s.url(FMT)));
    assert!(ok, "{log}");
    let got = std::fs::read(work.path().join("apt/out/arbor-hello_1.0_all.deb")).unwrap();
    assert_eq!(got, hello);
    let intact = work.path().join("intact");
    mirror(&s, &intact, |_| {});
    let (ok, log) = update_and_download(
        &work.path().join("apt-intact"),
        &signed_by(&format!("file:{}/", intact.display())),
    );
    assert!(ok, "the untouched mirror must verify: {log}");

    let hello_sha = crate::shared::sha256_hex(&hello);
    let cases: [(&str, &str, Change); 3] = [
        // The signed text changed: the signature no longer matches.
        (
            "InRelease",
            "BADSIG",
            Box::new(|d: &Path| {
                let text = std::fs::read_to_string(d.join("InRelease")).unwrap();
                let changed = text.replacen("Date: ", "Date:  ", 1);
                assert_ne!(changed, text);
                std::fs::write(d.join("InRelease"), changed).unwrap();
                std::fs::remove_file(d.join("Release.gpg")).unwrap();
            }),
        ),
        // An index that is not the one Release lists.
        (
            "Packages",
            "Hash Sum mismatch",
            Box::new(|d: &Path| rewrite_packages(d, "Version: 1.0", "Version: 1.1")),
        ),
        // Another package under the listed name.
        (
            "the package",
            "Hash Sum mismatch",
            Box::new(move |d: &Path| {
                let mut bytes = std::fs::read(d.join("arbor-hello_1.0_all.deb")).unwrap();
                assert_eq!(crate::shared::sha256_hex(&bytes), hello_sha);
                bytes.extend_from_slice(b"\0");
                std::fs::write(d.join("arbor-hello_1.0_all.deb"), bytes).unwrap();
            }),
        ),
    ];
    for (i, (what, why, change)) in cases.into_iter().enumerate() {
        let dir = work.path().join(format!("tampered-{i}"));
        mirror(&s, &dir, change);
        let apt = work.path().join(format!("apt-tampered-{i}"));
        let (ok, log) = update_and_download(&apt, &signed_by(&format!("file:{}/", dir.display())));
        assert!(!ok, "apt accepted a changed {what}: {log}");
        assert!(
            log.contains(why),
            "a changed {what} must fail with {why}: {log}"
        );
        assert!(
            !apt.join("out/arbor-hello_1.0_all.deb").exists(),
            "a changed {what} left a package behind"
        );
    }
}
