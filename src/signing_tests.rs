//! Keys made by the real gpg; signatures checked by the real gpgv and gpg, as apt and dnf
//! check them.
#![allow(clippy::disallowed_methods)] // the test lays out files for gpgv

use super::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// A throw-away GNUPGHOME with one ed25519 key, without a passphrase unless `passphrase`.
fn gpg_home(passphrase: &str) -> tempfile::TempDir {
    let home = tempfile::tempdir().expect("tempdir");
    let status = gpg(home.path())
        .args(["--passphrase", passphrase, "--quick-gen-key"])
        .args([
            "arbor test <arbor@example.invalid>",
            "ed25519",
            "sign",
            "never",
        ])
        .status()
        .expect("gpg runs");
    assert!(status.success(), "gpg --quick-gen-key failed");
    home
}

fn gpg(home: &Path) -> Command {
    let mut cmd = Command::new("gpg");
    cmd.env("GNUPGHOME", home)
        .args(["--batch", "--pinentry-mode", "loopback"])
        .stderr(Stdio::null());
    cmd
}

fn export(home: &Path, what: &str, passphrase: &str) -> String {
    let out = gpg(home)
        .args(["--passphrase", passphrase, "--armor", what])
        .output()
        .expect("gpg runs");
    assert!(out.status.success(), "gpg {what} failed");
    String::from_utf8(out.stdout).expect("armor is ASCII")
}

fn gpg_fingerprint(home: &Path) -> String {
    let out = gpg(home)
        .args(["--with-colons", "--list-keys"])
        .output()
        .expect("gpg runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("fpr:"))
        .expect("fpr line");
    line.split(':')
        .nth(9)
        .expect("fingerprint field")
        .to_owned()
}

fn gpgv(dir: &Path, args: &[&str]) -> bool {
    Command::new("gpgv")
        .current_dir(dir)
        .args(["--keyring", "./pubkey.gpg"])
        .args(args)
        .stderr(Stdio::null())
        .status()
        .expect("gpgv runs")
        .success()
}

#[test]
fn signatures_verify_with_gpgv_and_tampering_is_refused() {
    let home = gpg_home("");
    let signer = Signer::from_armored(&export(home.path(), "--export-secret-keys", ""), "k")
        .expect("a gpg key without passphrase loads");
    assert_eq!(signer.fingerprint(), gpg_fingerprint(home.path()));
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name);
    std::fs::write(at("pubkey.gpg"), signer.public_binary()).expect("write");
    let release = b"Origin: arbor\nDate: Thu, 01 Jan 2026 00:00:00 UTC\n- dash line\n";
    std::fs::write(at("InRelease"), signer.clearsign(release)).expect("write");
    std::fs::write(at("Release"), release).expect("write");
    std::fs::write(at("Release.gpg"), signer.detached(release)).expect("write");
    assert!(gpgv(dir.path(), &["InRelease"]));
    assert!(gpgv(dir.path(), &["Release.gpg", "Release"]));

    std::fs::write(at("Release"), b"Origin: evil\n").expect("write");
    assert!(!gpgv(dir.path(), &["Release.gpg", "Release"]));
    let tampered = String::from_utf8(signer.clearsign(release))
        .expect("ascii")
        .replace("Origin: arbor", "Origin: evil");
    std::fs::write(at("InRelease"), tampered).expect("write");
    assert!(!gpgv(dir.path(), &["InRelease"]));
}

#[test]
fn the_served_public_keys_import_with_the_same_fingerprint() {
    let home = gpg_home("");
    let signer =
        Signer::from_armored(&export(home.path(), "--export-secret-keys", ""), "k").expect("loads");
    for key in [signer.public_armored(), signer.public_binary()] {
        let other = tempfile::tempdir().expect("tempdir");
        let mut child = gpg(other.path())
            .arg("--import")
            .stdin(Stdio::piped())
            .spawn()
            .expect("gpg runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(key)
            .expect("pipe");
        assert!(child.wait().expect("gpg ends").success());
        assert_eq!(gpg_fingerprint(other.path()), signer.fingerprint());
    }
}

#[test]
fn protected_public_and_garbage_keys_are_refused() {
    let home = gpg_home("secret");
    let protected = export(home.path(), "--export-secret-keys", "secret");
    let err = Signer::from_armored(&protected, "k.asc").expect_err("protected");
    assert!(matches!(err, SigningError::Protected { .. }), "{err}");
    assert!(err.to_string().contains("passphrase"));

    let public = export(home.path(), "--export", "");
    let err = Signer::from_armored(&public, "k.asc").expect_err("public only");
    assert!(matches!(err, SigningError::NotSecretKey { .. }), "{err}");
    let err = Signer::from_armored("hello", "k.asc").expect_err("garbage");
    assert!(
        err.to_string()
            .starts_with("DLREPO_SIGNING_KEY k.asc: not an armored OpenPGP secret key")
    );
}

#[test]
fn no_setting_no_signer_and_a_missing_file_is_an_error() {
    let mut config = Config::default();
    assert!(Signer::from_config(&config).expect("unset").is_none());
    config.signing_key = Some("/nonexistent/key.asc".into());
    let err = Signer::from_config(&config).expect_err("missing file");
    assert!(matches!(err, SigningError::Read { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/key.asc"));
}

#[test]
fn a_fixed_time_gives_the_same_signatures_and_gpgv_accepts_them() {
    let home = gpg_home("");
    let signer =
        Signer::from_armored(&export(home.path(), "--export-secret-keys", ""), "k").expect("loads");
    let text = b"Date: Thu, 01 Jan 2026 00:00:00 UTC\n";
    // Before the key existed: moved to its creation, or gpgv would refuse it.
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    let clear = signer.clearsign_at(text, at);
    assert_eq!(clear, signer.clearsign_at(text, at));
    let detached = signer.detached_at(text, at);
    assert_eq!(detached, signer.detached_at(text, at));
    assert_ne!(detached, signer.detached_at(b"other", at));
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name);
    std::fs::write(at("pubkey.gpg"), signer.public_binary()).expect("write");
    std::fs::write(at("InRelease"), &clear).expect("write");
    std::fs::write(at("Release"), text).expect("write");
    std::fs::write(at("Release.gpg"), &detached).expect("write");
    assert!(gpgv(dir.path(), &["InRelease"]));
    assert!(gpgv(dir.path(), &["Release.gpg", "Release"]));
}

#[test]
fn a_certify_only_primary_signs_with_its_signing_subkey() {
    let home = tempfile::tempdir().expect("tempdir");
    let made = gpg(home.path())
        .args(["--passphrase", "", "--quick-gen-key"])
        .args([
            "arbor sub <sub@example.invalid>",
            "ed25519",
            "cert",
            "never",
        ])
        .status()
        .expect("gpg runs");
    assert!(made.success());
    let primary = gpg_fingerprint(home.path());
    let added = gpg(home.path())
        .args(["--passphrase", "", "--quick-add-key", &primary])
        .args(["ed25519", "sign", "never"])
        .status()
        .expect("gpg runs");
    assert!(added.success());
    let signer =
        Signer::from_armored(&export(home.path(), "--export-secret-keys", ""), "k").expect("loads");
    assert_eq!(signer.fingerprint(), primary);
    assert!(signer.subkey.is_some());
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |name: &str| dir.path().join(name);
    std::fs::write(at("pubkey.gpg"), signer.public_binary()).expect("write");
    std::fs::write(at("InRelease"), signer.clearsign(b"Origin: arbor\n")).expect("write");
    std::fs::write(at("Release"), b"Origin: arbor\n").expect("write");
    std::fs::write(at("Release.gpg"), signer.detached(b"Origin: arbor\n")).expect("write");
    assert!(gpgv(dir.path(), &["InRelease"]));
    assert!(gpgv(dir.path(), &["Release.gpg", "Release"]));
}
