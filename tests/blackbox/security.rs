//! Access control tried as an attacker would (issue 11, spec/API.md Q2, Q48-Q50), on a real
//! server: a slashless write acts only after the check of its entity. Every other spelling,
//! method and entity is tried in process by tests/router/security.rs.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use crate::shared::security;
use common::Client as _;
use common::auth::Secured;
use serde_json::json;

fn start() -> Secured {
    security::start()
}

#[test]
fn slashless_writes_act_only_after_the_check_of_their_entity() {
    let s = start();
    // The attacker's own branch still works in both slash forms.
    assert_eq!(s.put("mal", "/branches/dev/t/j/f/a.txt", b"a").status, 201);
    let r = s.json(
        "mal",
        "POST",
        "/branches/dev/t",
        &json!({"tag": {"locked": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.server.path("branches/dev/t/.locked").exists());
    let r = s.json(
        "mal",
        "POST",
        "/branches/dev/t",
        &json!({"tag": {"locked": false}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.send("mal", "DELETE", "/branches/dev/t/j", &[], None)
            .status,
        200
    );
    assert!(!s.server.path("branches/dev/t/j").exists());
    // A slashless GET of a readable branch still redirects.
    let r = s.get("mal", "/branches/dev");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/branches/dev/"))
    );
    // And the vault survives every slashless spelling.
    for url in [
        "/branches/vault",
        "/branches/VAULT",
        "/branches/vault/t",
        "/branches/vault/t/j",
    ] {
        assert_eq!(s.send("mal", "DELETE", url, &[], None).status, 401, "{url}");
    }
    assert!(s.server.path("branches/vault/t/j/f/secret.txt").exists());
}
