//! The users and ACLs of the access tests (tests/router/access.rs and tests/blackbox/access.rs),
//! on either tier's server.

use super::auth::basic;
use super::{Client, Res, digest_of};
use std::path::Path;

pub const AUTH: &str = "\
# comments and blank lines are fine (dlrepo 0.44 broke the next login here)

alice:secret:devs readers
carol:c:ol:on:devs
ursula:pw:updaters
";

/// The ACL files of the access tests, in `dir`.
pub fn write_acls(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("readers"),
        "r /\nr /branches/\nr /branches/** !/branches/secret/**\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("devs"),
        "rw /branches/dev/** # writes under dev only\nra /~$user/**\nr /branches/** !/branches/secret/**\nrw /branches/** !/branches/secret/**\n",
    )
    .unwrap();
    std::fs::write(dir.join("updaters"), "ru /branches/**\n").unwrap();
    std::fs::write(
        dir.join("ANONYMOUS"),
        "r /branches/\nr /branches/pub/**\nrw /branches/anon/**\n",
    )
    .unwrap();
}

/// A server with [`AUTH`]'s users and [`write_acls`]'s rules.
pub struct Setup<S> {
    pub server: S,
    _etc: tempfile::TempDir,
    pub acls: std::path::PathBuf,
}

/// A server with access control on, and `extra` settings.
pub fn start<S: Client>(extra: &[(&str, &str)]) -> Setup<S> {
    let etc = tempfile::tempdir().unwrap();
    let acls = etc.path().join("acls");
    write_acls(&acls);
    let auth = etc.path().join("auth");
    std::fs::write(&auth, AUTH).unwrap();
    let mut env = vec![
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", auth.to_str().unwrap()),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
    ];
    env.extend_from_slice(extra);
    let server = S::start_with(&env);
    Setup {
        server,
        _etc: etc,
        acls,
    }
}

/// A request as `user` (with the Digest an upload needs).
pub fn as_user(s: &impl Client, user: &str, method: &str, path: &str, body: Option<&[u8]>) -> Res {
    let password = match user {
        "alice" => "secret",
        "carol" => "c:ol:on",
        "ursula" => "pw",
        other => other,
    };
    let auth = basic(user, password);
    let mut headers = vec![("Authorization", auth.as_str())];
    let digest;
    if method == "PUT" && body.is_some() && !path.ends_with('/') {
        digest = digest_of(body.unwrap_or_default());
        headers.push(("Digest", &digest));
    }
    s.request(method, path, &headers, body)
}

/// The 401 of a refused request, with its challenge.
pub fn assert_denied(r: &Res) {
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Basic realm="dlrepo", charset="utf-8""#)
    );
    assert_eq!(r.text(), "401: Unauthorized");
}
