//! The workflows of the OCI distribution-spec conformance suite (opencontainers/
//! distribution-spec, `conformance/`: pull, push, content discovery, content management),
//! replayed with plain HTTP against the real binary. The suite itself is Go and needs
//! modules this machine cannot fetch; these tests send the requests it sends, in its order,
//! with its kind of content, and check what it checks, strictly where the suite tolerates
//! several answers (arbor's choices are in docs/registry.md). Only the first workflow (tags
//! after a push) is replayed here; tests/router/registry_conformance.rs replays the
//! others.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{Client as _, Res, TestServer, digest_of};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A blob pushed as the suite does: `POST` for a session, then `PUT ?digest=` with the body.
fn push_blob(s: &TestServer, name: &str, data: &[u8]) {
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

fn put_manifest(s: &TestServer, name: &str, reference: &str, body: &[u8]) -> Res {
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
fn config(author: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&json!({
        "author": author, "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .unwrap()
}

const LAYER: &[u8] = b"not really a tarball, the registry does not look";

/// An image manifest over `config` and [`LAYER`], tab-indented as the suite writes them.
fn image_manifest(config: &[u8]) -> Vec<u8> {
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
fn pretty(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    serde::Serialize::serialize(v, &mut ser).unwrap();
    out
}

fn tags(s: &TestServer, name: &str, query: &str) -> Vec<String> {
    let r = s.get(&format!("/v2/{name}/tags/list{query}"));
    assert_eq!(r.status, 200, "tags of {name}: {}", r.text());
    serde_json::from_value(r.json()["tags"].clone()).expect("a list of tags")
}

// ---- content discovery: tags ---------------------------------------------------------------

/// The list holds the tags pushed, nothing else: a synthetic `latest` would be a tag the
/// client never pushed and cannot delete (deleting the one real tag left it listed, or the
/// suite's "fewer tags after a delete" count off by one). The aliases still pull.
#[test]
fn tags_list_names_the_pushed_tags_only() {
    let s = TestServer::start();
    let name = "main/discovery";
    let cfg = config("discovery");
    push_blob(&s, name, &cfg);
    push_blob(&s, name, LAYER);
    let m = image_manifest(&cfg);
    for i in 0..4 {
        let r = put_manifest(&s, name, &format!("test{i}"), &m);
        assert_eq!(r.status, 201, "{}", r.text());
    }
    assert_eq!(tags(&s, name, ""), ["test0", "test1", "test2", "test3"]);
    // `n` and `last`, as the suite pages: half, then from the last one seen.
    let first = tags(&s, name, "?n=2");
    assert_eq!(first, ["test0", "test1"]);
    let rest = tags(&s, name, "?n=2&last=test1");
    assert_eq!(rest, ["test2", "test3"]);

    // Aliases are not listed, yet pull as before.
    for alias in ["latest", "LATEST"] {
        let r = s.get(&format!("/v2/{name}/manifests/{alias}"));
        assert_eq!(r.status, 200, "{alias}: {}", r.text());
        assert_eq!(r.body, m);
    }
    let r = s.head(&format!("/v2/{name}/manifests/latest"));
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest_of(&m).as_str())
    );
}

// ---- content discovery: referrers ----------------------------------------------------------

// ---- content management -------------------------------------------------------------------
