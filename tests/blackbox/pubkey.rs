//! `DLREPO_SIGNING_KEY` end to end: a key made by the real gpg, exported armored, loaded by
//! the real server; `/pubkey` and `/pubkey.gpg` import into gpg with the key's fingerprint.
//! That the signatures verify with gpgv is tested in process (src/signing_tests.rs).

use crate::common;
use crate::shared::html_pages;

use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn gpg(home: &Path) -> Command {
    let mut cmd = Command::new("gpg");
    cmd.env("GNUPGHOME", home)
        .args(["--batch", "--quiet", "--pinentry-mode", "loopback"]);
    cmd
}

/// The fingerprint of the one key in `home`.
fn fingerprint(home: &Path) -> String {
    let out = run_ok(
        gpg(home).args(["--with-colons", "--list-keys"]),
        "gpg --list-keys",
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text.lines().find(|l| l.starts_with("fpr:")).expect("fpr");
    line.split(':')
        .nth(9)
        .expect("fingerprint field")
        .to_owned()
}

/// A new signing key made by the real gpg in `home`, exported armored to a file.
pub(crate) fn secret_key_file(home: &Path) -> std::path::PathBuf {
    run_ok(
        gpg(home)
            .args(["--passphrase", "", "--quick-gen-key"])
            .args([
                "arbor test <signer@example.com>",
                "ed25519",
                "sign",
                "never",
            ]),
        "gpg --quick-gen-key (tests/deps/install installs gpg)",
    );
    let secret = run_ok(
        gpg(home).args(["--armor", "--export-secret-keys"]),
        "gpg --export-secret-keys",
    );
    let key = home.join("secret.asc");
    std::fs::write(&key, &secret.stdout).expect("key file");
    key
}

/// A signing key (gpg home `work/{name}`), and a server signing with it.
pub(crate) fn signed_server(work: &Path, name: &str) -> (TestServer, std::path::PathBuf) {
    let home = work.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let key = secret_key_file(&home);
    let s = TestServer::start_with(&[("DLREPO_SIGNING_KEY", key.to_str().unwrap())]);
    (s, home)
}

#[test]
fn the_configured_key_is_served_armored_and_binary() {
    let home = tempfile::tempdir().expect("temp dir");
    let key = secret_key_file(home.path());
    let s = TestServer::start_with(&[("DLREPO_SIGNING_KEY", key.to_str().expect("utf-8"))]);

    let armored = s.get("/pubkey");
    assert_eq!(armored.status, 200);
    assert_eq!(armored.headers["content-type"], "application/pgp-keys");
    assert!(
        armored
            .text()
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    );
    let binary = s.get("/pubkey.gpg");
    assert_eq!(binary.status, 200);
    assert!(s.get("/").text().contains(r#"<a href="/pubkey.gpg">"#));
    // A format of packages shows the lines that use the key.
    s.upload_format("/branches/b/t/j/deb/", &[("a.deb", b"x")]);
    let page = html_pages::page(&s, "/branches/b/t/j/deb/");
    let base = s.url("");
    for line in [
        format!("sudo curl -fsSL -o /etc/apt/keyrings/arbor.gpg {base}/pubkey.gpg"),
        format!("deb [signed-by=/etc/apt/keyrings/arbor.gpg] {base}/branches/b/t/j/deb/ ./"),
    ] {
        assert!(page.contains(&line), "{line} in {page}");
    }
    // A Host that is no host name never reaches the lines a reader pastes into a shell.
    let evil = Command::new("curl")
        .args(["-fsS", "-H", "Host: h;id;#", "-H", "Accept: text/html"])
        .arg(s.url("/branches/b/t/j/deb/"))
        .output()
        .expect("curl");
    let evil = String::from_utf8_lossy(&evil.stdout);
    assert!(evil.contains("http://HOST:PORT/pubkey.gpg"), "{evil}");
    assert!(!evil.contains("h;id"), "{evil}");
    for served in [armored.body, binary.body] {
        let other = tempfile::tempdir().expect("temp dir");
        let mut child = gpg(other.path())
            .arg("--import")
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("gpg runs");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&served)
            .expect("pipe");
        assert!(child.wait().expect("gpg ends").success());
        assert_eq!(fingerprint(other.path()), fingerprint(home.path()));
        // No secret half leaks.
        let secrets = run_ok(
            gpg(other.path()).args(["--with-colons", "--list-secret-keys"]),
            "gpg --list-secret-keys",
        );
        assert!(secrets.stdout.is_empty());
    }
}

#[test]
fn without_a_key_pubkey_is_404() {
    let s = TestServer::start();
    assert_eq!(s.get("/pubkey").status, 404);
    assert_eq!(s.get("/pubkey.gpg").status, 404);
    assert!(!s.get("/").text().contains("/pubkey"));
}
