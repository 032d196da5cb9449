//! Registry requests sent by hand (tests/router/registry.rs and tests/blackbox/registry.rs),
//! on either tier's server.

use super::oci_workflows::OCI_MANIFEST;
use super::{Client, Res, digest_of};
use serde_json::json;

pub fn code(r: &Res) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// POST + PATCH chunks + PUT; returns the final response.
pub fn upload(s: &impl Client, name: &str, chunks: &[&[u8]], digest: &str) -> Res {
    let r = s.request(
        "POST",
        &format!("/v2/{name}/blobs/uploads/"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let mut loc = r.header("location").unwrap().to_owned();
    let mut at = 0;
    for c in chunks {
        let range = format!("{}-{}", at, at + c.len() - 1);
        let r = s.request(
            "PATCH",
            &loc,
            &[
                ("Content-Range", &range),
                ("Content-Type", "application/octet-stream"),
            ],
            Some(c),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        at += c.len();
        assert_eq!(r.header("range"), Some(format!("0-{}", at - 1).as_str()));
        loc = r.header("location").unwrap().to_owned();
    }
    s.request("PUT", &format!("{loc}?digest={digest}"), &[], Some(b""))
}

pub fn manifest_for(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer), "size": layer.len()}],
    }))
    .unwrap()
}
