//! The requests of the OCI conformance workflows (tests/router/registry_conformance.rs and
//! tests/blackbox/registry_conformance.rs), on either tier's server.

use super::{Client, Res, digest_of};
use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A blob pushed as the suite does: `POST` for a session, then `PUT ?digest=` with the body.
pub fn push_blob(s: &impl Client, name: &str, data: &[u8]) {
    let r = s.request(
        "POST",
        &format!("/v2/{name}/blobs/uploads/"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 202, "POST {name}: {}", r.text());
    let loc = r.header("location").expect("Location").to_owned();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = s.request(
        "PUT",
        &format!("{loc}{sep}digest={}", digest_of(data)),
        &[("Content-Type", "application/octet-stream")],
        Some(data),
    );
    assert_eq!(r.status, 201, "PUT blob {name}: {}", r.text());
}

pub fn put_manifest(s: &impl Client, name: &str, reference: &str, body: &[u8]) -> Res {
    let media_type = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| OCI_MANIFEST.to_owned());
    s.request(
        "PUT",
        &format!("/v2/{name}/manifests/{reference}"),
        &[("Content-Type", &media_type)],
        Some(body),
    )
}

/// The suite's config blob: unique per workflow through its `author`.
pub fn config(author: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "author": author, "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

pub const LAYER: &[u8] = b"not really a tarball, the registry does not look";

/// An image manifest over `config` and [`LAYER`], tab-indented as the suite writes them.
pub fn image_manifest(config: &[u8]) -> Vec<u8> {
    pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(LAYER), "size": LAYER.len()}],
    }))
}

/// JSON as Go's `json.MarshalIndent(v, "", "\t")` writes it: no server may re-serialise.
pub fn pretty(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    out
}

pub fn tags(s: &impl Client, name: &str, query: &str) -> Vec<String> {
    let r = s.get(&format!("/v2/{name}/tags/list{query}"));
    assert_eq!(r.status, 200, "tags of {name}: {}", r.text());
    serde_json::from_value(r.json()["tags"].clone()).expect("a list of tags")
}
