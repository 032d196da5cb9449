//! The attacker's setting of the security tests (tests/router/security.rs and
//! tests/blackbox/security.rs): a vault only `admin` may read, on either tier's server.

use super::auth::Secured;
use super::{Client, digest_of};
use serde_json::json;

pub const SECRET: &[u8] = b"the vault's own bytes";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// `mal` may write and read every branch but the `vault*` branches, `dev`'s hidden file,
/// and the `vault*` registry repositories; `admin` may do anything; `rel` writes `dev` and
/// may publish the `fw` product.
pub fn start<S: Client>() -> Secured<S> {
    let s = Secured::<S>::start(
        &[
            ("admin", "a", "admins"),
            ("mal", "m", "devs"),
            ("rel", "r", "devs releasers"),
        ],
        &[
            ("admins", "rw /**\n"),
            (
                "devs",
                "r /\n\
                 r /branches/\n\
                 r /branches/** !/branches/vault*/** !/branches/dev/t/j/f/hidden.txt !/branches/dev/t/sealed/**\n\
                 rw /branches/** !/branches/vault*/** !/branches/dev/t/j/f/hidden.txt !/branches/dev/t/sealed/**\n\
                 r /products/** !/products/vaultp*/**\n\
                 r /v2/\n\
                 r /v2/** !/v2/vault*/**\n\
                 rw /v2/dev/**\n",
            ),
            ("releasers", "rw /products/fw/**\n"),
        ],
    );
    let admin = |m: &str, p: &str, b: Option<&[u8]>| s.send("admin", m, p, &[], b);
    assert_eq!(
        s.put("admin", "/branches/vault/t/j/f/secret.txt", SECRET)
            .status,
        201
    );
    assert_eq!(
        admin("PATCH", "/branches/vault/t/j/f/", Some(b"")).status,
        200
    );
    let meta = json!({"job": {"product": "vaultp", "product_variant": "x",
                              "product_branch": "main", "version": "1.0"}});
    assert_eq!(
        s.json("admin", "PATCH", "/branches/vault/t/j/", &meta)
            .status,
        200
    );
    push_image(&s, "admin", "vault/img", "v1");
    s
}

/// A one-layer image pushed over plain HTTP; returns the layer's digest.
pub fn push_image<S: Client>(s: &Secured<S>, who: &str, repo: &str, tag: &str) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","repo":"{repo}"}}"#);
    let layer = format!("layer of {repo}").into_bytes();
    for blob in [config.as_bytes(), &layer] {
        let url = format!("/v2/{repo}/blobs/uploads/?digest={}", digest_of(blob));
        let r = s.send(who, "POST", &url, &[], Some(blob));
        assert_eq!(r.status, 201, "{url}: {}", r.text());
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config.as_bytes()), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest_of(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let url = format!("/v2/{repo}/manifests/{tag}");
    let r = s.send(
        who,
        "PUT",
        &url,
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{url}: {}", r.text());
    digest_of(&layer)
}
