//! The container registry under `/v2/` (spec/CONTAINER.md) in process: the protocol
//! details and refusals, request by request. What a real client (`skopeo`) does is in
//! tests/blackbox/registry.rs.

use crate::common;
use crate::shared::oci_requests::{code, manifest_for, upload};

use common::{App, Client as _, digest_of, sha256_hex};
use serde_json::{Value, json};

// ---- raw HTTP ------------------------------------------------------------------------------

#[test]
fn refusals() {
    let s = App::start();
    let layer = b"layer-bytes".to_vec();
    let config = b"{}".to_vec();
    assert_eq!(
        upload(&s, "main/neg", &[&layer], &digest_of(&layer)).status,
        201
    );
    assert_eq!(
        upload(&s, "main/neg", &[&config], &digest_of(&config)).status,
        201
    );
    let good = manifest_for(&config, &layer);
    assert_eq!(
        s.request("PUT", "/v2/main/neg/manifests/v1", &[], Some(&good))
            .status,
        201
    );
    let before = common::snapshot(&s.path("branches"));

    // Wrong digest: the upload is refused and nothing is stored.
    let r = upload(&s, "main/neg", &[b"other"], &digest_of(b"not it"));
    assert_eq!((r.status, code(&r)), (400, "DIGEST_INVALID".into()));
    assert!(
        !s.path(&format!(".blobs/sha256/{}", &sha256_hex(b"other")[..2]))
            .exists()
    );
    let r = s.request(
        "PUT",
        &format!("/v2/main/neg/blobs/uploads/0123?digest={}", digest_of(b"x")),
        &[],
        Some(b""),
    );
    assert_eq!(code(&r), "BLOB_UPLOAD_UNKNOWN");

    // Unknown blob and manifest; malformed digest.
    let r = s.get(&format!("/v2/main/neg/blobs/{}", digest_of(b"nope")));
    assert_eq!((r.status, code(&r)), (404, "BLOB_UNKNOWN".into()));
    assert_eq!(
        code(&s.get("/v2/main/neg/blobs/sha256:xyz")),
        "BLOB_UNKNOWN"
    );
    let r = s.get("/v2/main/neg/manifests/v9");
    assert_eq!((r.status, code(&r)), (404, "MANIFEST_UNKNOWN".into()));
    let r = s.get(&format!("/v2/main/neg/manifests/{}", digest_of(b"nope")));
    assert_eq!((r.status, code(&r)), (404, "MANIFEST_UNKNOWN".into()));

    // Blobs are scoped: another repository cannot read them by digest.
    let r = s.head(&format!("/v2/main/elsewhere/blobs/{}", digest_of(&layer)));
    assert_eq!(r.status, 404);

    // Invalid manifests never remove the image that is there.
    let r = s.request("PUT", "/v2/main/neg/manifests/v1", &[], Some(b"not json"));
    assert_eq!((r.status, code(&r)), (400, "MANIFEST_INVALID".into()));
    let unknown_blob = manifest_for(&config, b"never uploaded");
    let r = s.request("PUT", "/v2/main/neg/manifests/v1", &[], Some(&unknown_blob));
    assert_eq!((r.status, code(&r)), (404, "BLOB_UNKNOWN".into()));
    let mut wrong_size: Value = serde_json::from_slice(&good).unwrap();
    wrong_size["layers"][0]["size"] = 1.into();
    let r = s.request(
        "PUT",
        "/v2/main/neg/manifests/v1",
        &[],
        Some(&serde_json::to_vec(&wrong_size).unwrap()),
    );
    assert_eq!(code(&r), "MANIFEST_INVALID");
    let r = s.request(
        "PUT",
        "/v2/main/neg/manifests/v1",
        &[],
        Some(br#"{"schemaVersion": 1, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}"#),
    );
    assert_eq!(code(&r), "UNSUPPORTED");
    let r = s.request("PUT", "/v2/main/neg/manifests/latest", &[], Some(&good));
    assert_eq!(code(&r), "UNSUPPORTED");
    let r = s.request(
        "PUT",
        &format!("/v2/main/neg/manifests/{}", digest_of(b"x")),
        &[],
        Some(&good),
    );
    assert_eq!(code(&r), "DIGEST_INVALID");
    // Another repository cannot reference blobs it does not hold.
    let r = s.request("PUT", "/v2/main/thief/manifests/v1", &[], Some(&good));
    assert_eq!((r.status, code(&r)), (404, "BLOB_UNKNOWN".into()));
    assert_eq!(common::snapshot(&s.path("branches")), before);
    assert_eq!(s.get("/v2/main/neg/manifests/v1").body, good);

    // Locked jobs refuse pushes.
    let r = s.send_json(
        "PUT",
        "/branches/main/v1/neg/",
        &json!({"job": {"locked": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.request("PUT", "/v2/main/neg/manifests/v1", &[], Some(&good));
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()));

    // Route misses and methods.
    assert_eq!(s.get("/v2/a/manifests/x").status, 404);
    let r = s.request("POST", "/v2/main/neg/manifests/v1", &[], Some(b""));
    assert_eq!(r.status, 405);
}

/// Two ways a user with only their own repositories reached other content through the
/// registry: a file put under their `container/` through the file API, named for the digest
/// of a layer they may not read, served that layer; and `/v2/u/{user}/...` with two
/// segments, a root branch `u`, passed the ACL rule written for the user's repositories.
#[test]
fn a_user_reaches_nothing_outside_their_repositories_through_the_registry() {
    use crate::shared::auth::Secured;
    let s = Secured::<App>::start(
        &[("admin", "pw", "admins"), ("carol", "pw", "users")],
        &[
            ("admins", "rw /**\n"),
            ("users", "rw /~$user/**\nr /v2/\nrw /v2/u/$user/**\n"),
        ],
    );
    let secret = b"TOPSECRET-CONTENT";
    let r = s.put("admin", "/branches/secret/t1/j1/fmt/secret.txt", secret);
    assert_eq!(r.status, 201, "{}", r.text());
    let hex = sha256_hex(secret);

    // The file API writes into `container/` for a publisher's User-Agent, which anyone can
    // send, but only files named for their own content (what a publisher sends).
    let put_as_publisher = |name_hex: &str, data: &[u8]| {
        let path = format!(
            "/~carol/branches/x/t/spy/container/blobs/sha256/{}/{name_hex}",
            &name_hex[..2]
        );
        let headers = [
            ("Digest", digest_of(data)),
            ("User-Agent", "dlrepo-server/0.44".to_owned()),
        ];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.send("carol", "PUT", &path, &headers, Some(data))
    };
    let dummy = b"dummy";
    let r = put_as_publisher(&hex, dummy);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("named for its content"), "{}", r.text());
    let r = put_as_publisher(&sha256_hex(dummy), dummy);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.get("carol", &format!("/v2/u/carol/x/spy/blobs/sha256:{hex}"));
    assert_eq!((r.status, code(&r)), (404, "BLOB_UNKNOWN".into()));
    assert!(!r.text().contains("TOPSECRET"));
    let r = s.send(
        "carol",
        "POST",
        &format!("/v2/u/carol/x/other/blobs/uploads/?mount=sha256:{hex}&from=u/carol/x/spy"),
        &[],
        Some(b""),
    );
    assert_eq!(
        r.status,
        202,
        "a refused mount starts an upload: {}",
        r.text()
    );

    // A root branch `u`: not the user's repository, and not reachable by its name.
    for (method, path) in [
        ("POST", "/v2/u/carol/blobs/uploads/"),
        ("PUT", "/v2/u/carol/manifests/evil"),
        ("GET", "/v2/U/carol/tags/list"),
        ("GET", "/v2/u/carol/x/manifests/1.0"),
    ] {
        let r = s.send("carol", method, path, &[], Some(b"{}"));
        // 401 where no rule matches the path as sent (`U`), as for any unknown path.
        assert!(
            matches!(r.status, 401 | 404),
            "{method} {path}: {}",
            r.text()
        );
    }
    assert!(!s.server.path("branches/u").exists());
}
