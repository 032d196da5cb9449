//! Registry upload sessions answer only to the repository and the caller that started them
//! (issue 11): anyone else, or the same caller through another repository name, gets what an
//! unknown session gets (404 `BLOB_UPLOAD_UNKNOWN`), and the session is left as it was.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{Client as _, Res, TestServer, digest_of, fsck};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// alice and bob may both push anywhere under `/v2/`.
fn server() -> (tempfile::TempDir, TestServer) {
    let etc = tempfile::tempdir().unwrap();
    let acls = etc.path().join("acls");
    std::fs::create_dir_all(&acls).unwrap();
    std::fs::write(acls.join("pushers"), "rwad /v2/**\n").unwrap();
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "alice:a:pushers\nbob:b:pushers\n").unwrap();
    let s = TestServer::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", auth.to_str().unwrap()),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
    ]);
    (etc, s)
}

fn as_user(
    s: &TestServer,
    login: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Res {
    let basic = common::auth::basic(login, &login[..1]);
    let mut all = vec![("Authorization", basic.as_str())];
    all.extend_from_slice(headers);
    s.request(method, path, &all, body)
}

fn code(r: &Res) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Starts a session on `name` and returns its id.
fn start(s: &TestServer, login: Option<&str>, name: &str) -> String {
    let path = format!("/v2/{name}/blobs/uploads/");
    let r = match login {
        Some(l) => as_user(s, l, "POST", &path, &[], Some(b"")),
        None => s.request("POST", &path, &[], Some(b"")),
    };
    assert_eq!(r.status, 202, "{}", r.text());
    r.header("docker-upload-uuid").unwrap().to_owned()
}

fn session_file(s: &TestServer, id: &str) -> PathBuf {
    s.path(&format!(".uploads/{id}"))
}

/// Every operation on a session, each of which must be refused as for an unknown session.
fn attempts(digest: &str) -> Vec<(&'static str, String, Option<Vec<u8>>)> {
    vec![
        ("GET", String::new(), None),
        ("HEAD", String::new(), None),
        ("PATCH", String::new(), Some(b"intruder".to_vec())),
        ("PUT", format!("?digest={digest}"), Some(b"".to_vec())),
        (
            "PUT",
            format!("?digest={}", digest_of(b"hello intruder")),
            Some(b" intruder".to_vec()),
        ),
        ("DELETE", String::new(), None),
    ]
}

fn assert_unknown(r: &Res, what: &str) {
    assert_eq!(r.status, 404, "{what}: {}", r.text());
    if !what.starts_with("HEAD") {
        assert_eq!(code(r), "BLOB_UPLOAD_UNKNOWN", "{what}");
    }
}

#[test]
fn a_session_answers_only_to_its_repository_and_its_caller() {
    let (_etc, s) = server();
    let id = start(&s, Some("alice"), "main/x");
    let r = as_user(
        &s,
        "alice",
        "PATCH",
        &format!("/v2/main/x/blobs/uploads/{id}"),
        &[],
        Some(b"hello"),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let content = std::fs::read(session_file(&s, &id)).unwrap();
    assert_eq!(content, b"hello");
    let digest = digest_of(b"hello");

    // bob through the same name, alice and bob through other names (a user repository
    // included): all refused, exactly as an id nobody issued.
    let strangers = [
        ("bob", "main/x"),
        ("bob", "main/y"),
        ("alice", "main/y"),
        ("alice", "u/alice/main/x"),
    ];
    for (login, name) in strangers {
        for (method, query, body) in attempts(&digest) {
            let what = format!("{method}{query} by {login} on {name}");
            let path = format!("/v2/{name}/blobs/uploads/{id}{query}");
            let r = as_user(&s, login, method, &path, &[], body.as_deref());
            assert_unknown(&r, &what);
            // The same answer as for an id that was never handed out.
            let never = format!("/v2/{name}/blobs/uploads/{}{query}", "0".repeat(32));
            let n = as_user(&s, login, method, &never, &[], body.as_deref());
            assert_eq!(
                (n.status, n.body.clone()),
                (r.status, r.body.clone()),
                "{what}"
            );
            assert_eq!(
                std::fs::read(session_file(&s, &id)).unwrap(),
                content,
                "{what} changed the session"
            );
        }
        // Nothing became pending where the stranger pushed.
        let r = as_user(
            &s,
            login,
            "HEAD",
            &format!("/v2/{name}/blobs/{digest}"),
            &[],
            None,
        );
        assert_eq!(r.status, 404, "{login} on {name}");
    }
    assert!(!s.path(&format!(".blobs/sha256/{}", &digest[7..9])).exists());

    // The owner carries on.
    let loc = format!("/v2/main/x/blobs/uploads/{id}");
    let r = as_user(&s, "alice", "GET", &loc, &[], None);
    assert_eq!((r.status, r.header("range")), (204, Some("0-4")));
    let r = as_user(
        &s,
        "alice",
        "PUT",
        &format!("{loc}?digest={digest}"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = as_user(
        &s,
        "alice",
        "HEAD",
        &format!("/v2/main/x/blobs/{digest}"),
        &[],
        None,
    );
    assert_eq!(r.status, 200);
    // A finished session is gone, with its sidecars.
    let r = as_user(&s, "alice", "GET", &loc, &[], None);
    assert_unknown(&r, "GET after PUT");
    let left: Vec<String> = common::uploads_left(s.root.path())
        .into_iter()
        .filter(|n| n.starts_with(&id))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // A cancel by the owner works; by anyone else it did not (above).
    let id = start(&s, Some("bob"), "main/x");
    let loc = format!("/v2/main/x/blobs/uploads/{id}");
    assert_unknown(
        &as_user(&s, "alice", "DELETE", &loc, &[], None),
        "alice cancels bob's",
    );
    assert!(session_file(&s, &id).exists());
    assert_eq!(as_user(&s, "bob", "DELETE", &loc, &[], None).status, 204);
    assert!(!session_file(&s, &id).exists());
}

#[test]
fn without_auth_a_session_is_bound_to_its_repository() {
    let s = TestServer::start();
    let id = start(&s, None, "main/x");
    let digest = digest_of(b"");
    for name in ["main/y", "u/bob/main/x", "p/v/b"] {
        for (method, query, body) in attempts(&digest) {
            let what = format!("{method}{query} on {name}");
            let r = s.request(
                method,
                &format!("/v2/{name}/blobs/uploads/{id}{query}"),
                &[],
                body.as_deref(),
            );
            if name == "p/v/b" && r.status == 405 {
                continue; // product paths take no writes at all
            }
            assert_unknown(&r, &what);
            assert_eq!(std::fs::read(session_file(&s, &id)).unwrap(), b"", "{what}");
        }
    }
    let r = s.request(
        "PUT",
        &format!("/v2/main/x/blobs/uploads/{id}?digest={digest}"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

/// A monolithic `POST ?digest=` that is refused leaves no session behind.
#[test]
fn a_refused_monolithic_upload_leaves_no_session() {
    let s = TestServer::start();
    let r = s.request(
        "POST",
        &format!("/v2/main/x/blobs/uploads/?digest={}", digest_of(b"other")),
        &[],
        Some(b"data"),
    );
    assert_eq!((r.status, code(&r)), (400, "DIGEST_INVALID".into()));
    let r = s.request(
        "POST",
        "/v2/main/x/blobs/uploads/?digest=sha256:nothex",
        &[],
        Some(b"data"),
    );
    assert_eq!(r.status, 400);
    assert_eq!(common::uploads_left(s.root.path()), Vec::<String>::new());
}

fn age(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

/// The owner file is written once, but a chunked upload may last longer than the orphan
/// lifetime: the collector and fsck keep it as long as its session is in use.
#[test]
fn an_old_owner_file_of_a_live_session_is_kept() {
    let s = TestServer::start();
    let live = start(&s, None, "main/x");
    let dead = start(&s, None, "main/x");
    age(&s.path(&format!(".uploads/{live}.owner")), 3600);
    for f in [dead.clone(), format!("{dead}.owner")] {
        age(&s.path(&format!(".uploads/{f}")), 3600);
    }
    let (ok, out) = fsck(s.root.path(), false);
    assert!(!ok, "{out}");
    assert!(!out.contains(&live), "{out}");
    assert!(out.contains(&format!("{dead}.owner: stray")), "{out}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("gc")
        .env("DLREPO_ROOT_DIR", s.root.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(s.path(&format!(".uploads/{live}.owner")).exists());
    assert!(!s.path(&format!(".uploads/{dead}")).exists());
    assert!(!s.path(&format!(".uploads/{dead}.owner")).exists());
    let r = s.request(
        "PATCH",
        &format!("/v2/main/x/blobs/uploads/{live}"),
        &[],
        Some(b"more"),
    );
    assert_eq!(r.status, 202, "{}", r.text());
}
