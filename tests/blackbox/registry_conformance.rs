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
use crate::shared::oci_workflows::{LAYER, config, image_manifest, push_blob, put_manifest, tags};
use common::{Client as _, TestServer, digest_of};

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
