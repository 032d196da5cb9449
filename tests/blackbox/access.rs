//! Access control with a real auth file and ACL directory (spec/AUTH.md), in a real server:
//! reloads on SIGHUP and on change, API tokens made by `arbor token`, and anonymous access.
//! The rules themselves (modes, letters, patterns, listing filters, the two dlrepo holes Q1
//! and Q2) are checked in process by tests/router/access.rs.

// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::shared::access::{self, Setup, as_user, assert_denied};
use crate::shared::auth::basic;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn start(extra: &[(&str, &str)]) -> Setup<TestServer> {
    access::start(extra)
}

#[test]
fn anonymous_reads_only_what_anonymous_acls_grant() {
    let st = start(&[]);
    let s = &st.server;
    as_user(s, "alice", "PUT", "/branches/dev/t/j/f/a", Some(b"a"));
    as_user(s, "alice", "PUT", "/branches/pub/t/j/f/a", Some(b"a"));
    assert_eq!(
        s.get("/branches/").json()["branches"],
        json!([{"name": "pub", "daily_tags": 1, "released_tags": 0, "locked_tags": 0, "stable_tags": 0, "max_daily_tags": 0, "max_released_tags": 0}])
    );
    assert_eq!(s.get("/branches/pub/t/j/f/a").body, b"a");
    assert_denied(&s.get("/branches/dev/"));
    assert_denied(&s.get("/branches/nope/"));
    // Writes always need a login, even where ANONYMOUS has `w`.
    let before = snapshot(s.root.path());
    assert_denied(&s.put_file("/branches/anon/t/j/f/a", b"a"));
    assert_eq!(before, snapshot(s.root.path()));
    // Public URLs need nothing, even wrong credentials.
    assert_eq!(
        s.request(
            "GET",
            "/static/dlrepo.css",
            &[("Authorization", "Basic !!!")],
            None
        )
        .status,
        200
    );
    assert_eq!(s.get("/healthz").status, 200);
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acls_reload_on_sighup_and_on_change_keeping_old_rules_on_error() {
    let st = start(&[]);
    let s = &st.server;
    assert_denied(&as_user(s, "ursula", "GET", "/products/", None));
    // A change in the directory is picked up by itself.
    std::fs::write(st.acls.join("updaters"), "ru /branches/**\nr /products/\n").unwrap();
    wait_until("the ACL change", || {
        as_user(s, "ursula", "GET", "/products/", None).status == 200
    });
    // A broken file is refused as a whole: the previous rules stay.
    std::fs::write(st.acls.join("updaters"), "r ~/products/(\n").unwrap();
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(as_user(s, "ursula", "GET", "/products/", None).status, 200);
    // SIGHUP reloads too (here: the fixed file).
    std::fs::write(st.acls.join("updaters"), "ru /branches/**\n").unwrap();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(s.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    wait_until("the SIGHUP reload", || {
        as_user(s, "ursula", "GET", "/products/", None).status == 401
    });
}

fn arbor_token(s: &TestServer, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("token")
        .args(args)
        .env("DLREPO_ROOT_DIR", s.root.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn tokens_narrow_the_user_and_can_expire_or_be_revoked() {
    let st = start(&[]);
    let s = &st.server;
    as_user(s, "alice", "PUT", "/branches/dev/t/j/f/a", Some(b"a"));
    let read = arbor_token(s, &["create", "--user", "alice", "--scope", "read"]);
    let dev = arbor_token(
        s,
        &["create", "--user", "alice", "--prefix", "/branches/dev/"],
    );
    assert!(read.starts_with("arbor_") && dev.starts_with("arbor_"));
    // Only a hash is stored.
    let stored = walkdir::WalkDir::new(s.path(".tokens"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect::<String>();
    assert!(!stored.contains(&read[read.len() - 20..]));
    let bearer = |t: &str| format!("Bearer {t}");
    let d = digest_of(b"b");
    assert_eq!(
        s.request(
            "GET",
            "/branches/dev/t/j/f/a",
            &[("Authorization", &bearer(&read))],
            None
        )
        .body,
        b"a"
    );
    assert_denied(&s.request(
        "PUT",
        "/branches/dev/t/j/f/b",
        &[("Authorization", &bearer(&read)), ("Digest", &d)],
        Some(b"b"),
    ));
    assert_eq!(
        s.request(
            "PUT",
            "/branches/dev/t/j/f/b",
            &[("Authorization", &bearer(&dev)), ("Digest", &d)],
            Some(b"b")
        )
        .status,
        201
    );
    assert_denied(&s.request(
        "PUT",
        "/branches/other/t/j/f/b",
        &[("Authorization", &bearer(&dev)), ("Digest", &d)],
        Some(b"b"),
    ));
    // As the Basic password, and as ?token= for clients that cannot set headers.
    assert_eq!(
        s.request(
            "GET",
            "/branches/dev/",
            &[("Authorization", &basic("alice", &read))],
            None
        )
        .status,
        200
    );
    assert_eq!(
        s.get(&format!("/branches/dev/t/?token={read}")).json()["tag"]["jobs"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Tokens never widen: a secret branch stays closed.
    assert_denied(&s.request(
        "GET",
        "/branches/secret/",
        &[("Authorization", &bearer(&read))],
        None,
    ));
    // Forged, revoked and expired tokens are refused.
    // One character changed (to another one: a token may end in `0` already).
    let last = if read.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &read[..read.len() - 1]);
    assert_denied(&s.request(
        "GET",
        "/branches/dev/",
        &[("Authorization", &bearer(&forged))],
        None,
    ));
    let id = read.split('_').nth(1).unwrap().to_owned();
    // A table: a header, then one row per token, its id first and its dates in UTC.
    let list = arbor_token(s, &["list"]);
    let mut lines = list.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "USER", "SCOPE", "PREFIX", "CREATED", "EXPIRES"],
        "{list}"
    );
    let row: Vec<&str> = lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|r| r[0] == id)
        .unwrap_or_else(|| panic!("{id} in {list}"));
    let (created, expires) = (row[4], row[5]);
    assert!(
        created.len() == 20 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{list}"
    );
    assert_eq!((row[2], expires), ("read", "never"), "{list}");
    arbor_token(s, &["revoke", &id]);
    assert_denied(&s.request(
        "GET",
        "/branches/dev/",
        &[("Authorization", &bearer(&read))],
        None,
    ));
    let short = arbor_token(s, &["create", "--user", "alice", "--expires", "3s"]);
    assert_eq!(
        s.request(
            "GET",
            "/branches/dev/",
            &[("Authorization", &bearer(&short))],
            None
        )
        .status,
        200
    );
    std::thread::sleep(Duration::from_millis(3100));
    assert_denied(&s.request(
        "GET",
        "/branches/dev/",
        &[("Authorization", &bearer(&short))],
        None,
    ));
}
