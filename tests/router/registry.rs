//! The container registry under `/v2/` (spec/CONTAINER.md) in process: the protocol
//! details and refusals, request by request. What a real client (`skopeo`) does is in
//! tests/blackbox/registry.rs.

use crate::common;

use common::{App, Client as _, digest_of, sha256_hex};
use serde_json::{Value, json};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

// ---- test images -------------------------------------------------------------------------

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// gzip with stored (uncompressed) deflate blocks: a valid `.tar.gz` without a compressor.
fn gzip_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    let chunks: Vec<&[u8]> = if data.is_empty() {
        vec![&[]]
    } else {
        data.chunks(65535).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        out.push(u8::from(i + 1 == chunks.len()));
        let len = c.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

fn layer_tar_gz(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    gzip_stored(&b.into_inner().unwrap())
}

// ---- raw HTTP ------------------------------------------------------------------------------

fn code(r: &common::Res) -> String {
    r.json()["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// POST + PATCH chunks + PUT; returns the final response.
fn upload(s: &App, name: &str, chunks: &[&[u8]], digest: &str) -> common::Res {
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

fn manifest_for(config: &[u8], layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest_of(layer), "size": layer.len()}],
    }))
    .unwrap()
}

#[test]
fn chunked_upload_status_and_manifest_by_hand() {
    let s = App::start();
    let r = s.get("/v2/");
    assert_eq!((r.status, r.text().as_str()), (200, "{}"));
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );

    let layer = layer_tar_gz("f", &vec![7u8; 300_000]);
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let (a, b) = layer.split_at(100_000);
    let r = upload(&s, "main/hand", &[a, b], &digest_of(&layer));
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest_of(&layer).as_str())
    );
    // Monolithic POST with the digest.
    let r = s.request(
        "POST",
        &format!("/v2/main/hand/blobs/uploads/?digest={}", digest_of(config)),
        &[("Content-Type", "application/octet-stream")],
        Some(config),
    );
    assert_eq!(r.status, 201, "{}", r.text());

    // Status and cancel.
    let r = s.request("POST", "/v2/main/hand/blobs/uploads/", &[], Some(b""));
    let loc = r.header("location").unwrap().to_owned();
    assert!(r.header("oci-chunk-min-length").is_some());
    s.request("PATCH", &loc, &[], Some(b"abc"));
    let r = s.get(&loc);
    assert_eq!((r.status, r.header("range")), (204, Some("0-2")));
    let r = s.request("PATCH", &loc, &[("Content-Range", "0-2")], Some(b"xyz"));
    assert_eq!(r.status, 416, "a chunk must start where the upload is");
    assert_eq!(s.delete(&loc).status, 204);
    assert_eq!(code(&s.get(&loc)), "BLOB_UPLOAD_UNKNOWN");

    let manifest = manifest_for(config, &layer);
    let r = s.request(
        "PUT",
        "/v2/main/hand/manifests/t1",
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest_of(&manifest).as_str())
    );

    let r = s.get("/v2/main/hand/manifests/t1");
    assert_eq!(r.body, manifest);
    assert_eq!(r.header("content-type"), Some(OCI_MANIFEST));
    let r = s.request(
        "GET",
        &format!("/v2/main/hand/blobs/{}", digest_of(&layer)),
        &[("Range", "bytes=10-19")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, layer[10..20]);
    // The digest names the blob and validates it.
    let blob_url = format!("/v2/main/hand/blobs/{}", digest_of(&layer));
    let r = s.get(&blob_url);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest_of(&layer).as_str())
    );
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", sha256_hex(&layer)).as_str())
    );
    let etag = r.header("etag").unwrap_or_default().to_owned();
    let r = s.request("GET", &blob_url, &[("If-None-Match", &etag)], None);
    assert_eq!((r.status, r.body.len()), (304, 0));
    // HEAD answers with the digest as the URL spells it (spec/CONTAINER.md §3.7).
    let shouted = digest_of(&layer).to_uppercase();
    let r = s.head(&format!("/v2/main/hand/blobs/{shouted}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.header("docker-content-digest"), Some(shouted.as_str()));

    // Pagination.
    for t in ["t2", "t3"] {
        let r = s.request(
            "PUT",
            &format!("/v2/main/hand/manifests/{t}"),
            &[],
            Some(&manifest),
        );
        assert_eq!(r.status, 201);
    }
    let r = s.get("/v2/main/hand/tags/list?n=2");
    assert_eq!(r.json()["tags"], json!(["t1", "t2"]));
    assert!(r.header("link").unwrap().contains("last=t2"));
    let r = s.get("/v2/main/hand/tags/list?n=2&last=t1");
    assert_eq!(r.json()["tags"], json!(["t2", "t3"]));

    // A manifest with a size left out is completed and re-serialised, as dlrepo does.
    let mut doc: Value = serde_json::from_slice(&manifest).unwrap();
    doc["layers"][0].as_object_mut().unwrap().remove("size");
    let r = s.request(
        "PUT",
        "/v2/main/hand/manifests/t4",
        &[],
        Some(&serde_json::to_vec(&doc).unwrap()),
    );
    assert_eq!(r.status, 201);
    let stored = s.get("/v2/main/hand/manifests/t4").body;
    let back: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(back["layers"][0]["size"], layer.len());
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest_of(&stored).as_str())
    );
}

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
