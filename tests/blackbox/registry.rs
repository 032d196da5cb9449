//! The container registry under `/v2/` (spec/CONTAINER.md) driven by a real client,
//! `skopeo` (Debian package; install it with `tests/deps/skopeo`), plus raw HTTP for the
//! protocol details and refusals. Test images are OCI layouts these tests write themselves.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::shared::oci_requests::{code, manifest_for, upload};

use common::{Client as _, TestServer, digest_of, nlink, sha256_hex};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

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

/// An OCI layout under construction: blobs written by digest.
struct Layout {
    dir: PathBuf,
}

impl Layout {
    fn new(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_owned(),
        }
    }

    fn blob(&self, data: &[u8]) -> Value {
        std::fs::write(self.dir.join("blobs/sha256").join(sha256_hex(data)), data).unwrap();
        json!({"digest": digest_of(data), "size": data.len()})
    }

    fn desc(&self, media_type: &str, data: &[u8]) -> Value {
        let mut d = self.blob(data);
        d["mediaType"] = media_type.into();
        d
    }

    /// A one-layer image manifest; returns its bytes (as written by this "client").
    fn image(&self, seed: &str, arch: &str) -> Vec<u8> {
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}, "config": {"Labels": {"seed": seed}}
        }))
        .unwrap();
        let layer = layer_tar_gz("hello.txt", format!("hello {seed} {arch}\n").as_bytes());
        // Pretty-printed on purpose: a server that re-serialises would change the digest.
        serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": self.desc("application/vnd.oci.image.config.v1+json", &config),
            "layers": [self.desc("application/vnd.oci.image.layer.v1.tar+gzip", &layer)],
        }))
        .unwrap()
    }

    fn index(&self, entries: &[(&str, Value)]) {
        let manifests: Vec<Value> = entries
            .iter()
            .map(|(tag, d)| {
                let mut d = d.clone();
                d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
                d
            })
            .collect();
        let index = json!({"schemaVersion": 2, "manifests": manifests});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }
}

/// One single-arch image tagged `v1` in a fresh layout; returns the manifest bytes.
fn simple_image(dir: &Path, seed: &str) -> Vec<u8> {
    let l = Layout::new(dir);
    let m = l.image(seed, "amd64");
    let d = l.desc(OCI_MANIFEST, &m);
    l.index(&[("v1", d)]);
    m
}

// ---- skopeo ------------------------------------------------------------------------------

fn skopeo(args: &[&str]) -> std::process::Output {
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("skopeo is missing ({e}): run tests/deps/skopeo to install it"))
}

fn skopeo_ok(args: &[&str]) -> String {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn push(s: &TestServer, src: &str, dest: &str) {
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        src,
        &format!("docker://{}/{dest}", s.addr),
    ]);
}

/// `skopeo` arguments pushing `image` to the registry URL `dest` with `creds` (`user:pass`).
fn push_as<'a>(creds: &'a str, image: &'a str, dest: &'a str) -> [&'a str; 6] {
    [
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        creds,
        image,
        dest,
    ]
}

fn pull(s: &TestServer, src: &str, dest: &str) {
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{}/{src}", s.addr),
        dest,
    ]);
}

fn blob_bytes(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

fn index_digest(layout: &Path) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

fn in_container(s: &TestServer, job: &str, kind: &str, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    s.path(&format!(
        "{job}/container/{kind}/sha256/{}/{hex}",
        &hex[..2]
    ))
}

#[test]
fn skopeo_is_installed() {
    let out = skopeo(&["--version"]);
    assert!(out.status.success(), "run tests/deps/skopeo");
}

#[test]
fn push_pull_inspect_and_the_tree_views() {
    let s = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let manifest = simple_image(&src, "one");
    let mdigest = digest_of(&manifest);
    let doc: Value = serde_json::from_slice(&manifest).unwrap();
    let (config, layer) = (
        doc["config"]["digest"].as_str().unwrap().to_owned(),
        doc["layers"][0]["digest"].as_str().unwrap().to_owned(),
    );

    push(&s, &format!("oci:{}:v1", src.display()), "main/myjob:V1");

    // Byte for byte on disk, hard-linked from `.blobs`, under the lower-cased tag.
    let job = "branches/main/v1/myjob";
    let stored = in_container(&s, job, "manifests", &mdigest);
    assert_eq!(std::fs::read(&stored).unwrap(), manifest);
    for d in [&config, &layer] {
        let p = in_container(&s, job, "blobs", d);
        assert_eq!(nlink(&p), 2, "{d}");
    }

    // The job page's copy-paste line pulls the image as it says.
    let html = crate::shared::html_pages::page(&s, "/branches/main/v1/myjob/");
    assert!(
        html.contains(&format!("docker pull {}/main/myjob:v1", s.addr)),
        "{html}"
    );
    let line = html
        .lines()
        .find_map(|l| l.strip_prefix("skopeo copy "))
        .and_then(|l| l.strip_suffix("</code></pre>"))
        .expect("a skopeo line on the job page");
    let args: Vec<&str> = line.split(' ').collect();
    let out = Command::new("skopeo")
        .arg("copy")
        .args(&args)
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy {line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(index_digest(&tmp.path().join("myjob")), mdigest);

    // Pull back: every byte the same, the manifest digest the client computed.
    let out = tmp.path().join("out");
    pull(&s, "main/myjob:v1", &format!("oci:{}:v1", out.display()));
    assert_eq!(index_digest(&out), mdigest);
    for d in [&mdigest, &config, &layer] {
        assert_eq!(blob_bytes(&out, d), blob_bytes(&src, d), "{d}");
    }
    // By digest too, and mixed-case tags are the same tag.
    let by_digest = tmp.path().join("bydigest");
    pull(
        &s,
        &format!("main/myjob@{mdigest}"),
        &format!("oci:{}:x", by_digest.display()),
    );
    assert_eq!(index_digest(&by_digest), mdigest);

    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{}/main/myjob:V1", s.addr),
    ]);
    assert_eq!(raw.as_bytes(), manifest.as_slice());
    let info: Value = serde_json::from_str(&skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{}/main/myjob:v1", s.addr),
    ]))
    .unwrap();
    assert_eq!(info["Digest"], mdigest.as_str());
    assert_eq!(info["Architecture"], "amd64");
    let tags: Value = serde_json::from_str(&skopeo_ok(&[
        "list-tags",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{}/main/myjob", s.addr),
    ]))
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v1"]));

    // The tree shows the image as the job's `container` format, and bundles it.
    let jobinfo = s.get("/branches/main/v1/myjob/").json();
    assert_eq!(jobinfo["job"]["artifact_formats"], json!(["container"]));
    let files = s.get("/branches/main/v1/myjob/container/").json();
    let listed = files.to_string();
    for d in [&mdigest, &config, &layer] {
        assert!(
            listed.contains(d.strip_prefix("sha256:").unwrap()),
            "{listed}"
        );
    }
    let tar = s.get("/branches/main/v1/myjob.tar");
    assert_eq!(tar.status, 200);
    let mut archive = tar::Archive::new(tar.body.as_slice());
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    let hex = mdigest.strip_prefix("sha256:").unwrap();
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(&format!("container/manifests/sha256/{}/{hex}", &hex[..2]))),
        "{names:?}"
    );

    // Pushing the same image again changes nothing and keeps one copy of each blob.
    push(&s, &format!("oci:{}:v1", src.display()), "main/myjob:v1");
    assert_eq!(nlink(&in_container(&s, job, "blobs", &layer)), 2);
}

#[test]
fn pull_by_product_path_after_metadata() {
    let s = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let manifest = simple_image(&src, "prod");
    push(&s, &format!("oci:{}:v1", src.display()), "main/myjob:v1");
    let r = s.send_json(
        "PATCH",
        "/branches/main/v1/myjob/",
        &json!({"job": {"product": "prod", "product_variant": "var",
                        "product_branch": "pb", "version": "1.0"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let out = tmp.path().join("out");
    pull(&s, "prod/var/pb:1.0", &format!("oci:{}:p", out.display()));
    assert_eq!(index_digest(&out), digest_of(&manifest));
    // `latest` resolves among the versions; pushing to a product path is refused.
    let r = s.head("/v2/prod/var/pb/manifests/latest");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("docker-content-digest"),
        Some(digest_of(&manifest).as_str())
    );
    let r = s.request("PUT", "/v2/prod/var/pb/manifests/2.0", &[], Some(&manifest));
    assert_eq!(r.status, 405);
    let tags = s.get("/v2/prod/var/pb/tags/list").json();
    assert_eq!(tags["tags"], json!(["1.0"]));
    let catalog = s.get("/v2/_catalog").json();
    assert_eq!(
        catalog["repositories"],
        json!(["main/myjob", "prod/var/pb"])
    );
}

#[test]
fn copy_between_repositories_mounts_and_dedups() {
    let s = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let manifest = simple_image(&src, "copy");
    let doc: Value = serde_json::from_slice(&manifest).unwrap();
    let layer = doc["layers"][0]["digest"].as_str().unwrap().to_owned();
    push(&s, &format!("oci:{}:v1", src.display()), "main/a:v1");
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--src-no-creds",
        "--dest-no-creds",
        &format!("docker://{}/main/a:v1", s.addr),
        &format!("docker://{}/u/bob/other/b:v2", s.addr),
    ]);
    let copied = in_container(&s, "users/bob/branches/other/v2/b", "blobs", &layer);
    assert_eq!(nlink(&copied), 3, "one blob, two images");
    let r = s.head(&format!(
        "/v2/u/bob/other/b/manifests/{}",
        digest_of(&manifest)
    ));
    assert_eq!(r.status, 200);

    // An explicit mount, and one from a repository that lacks the blob (falls back).
    let r = s.request(
        "POST",
        &format!("/v2/main/c/blobs/uploads/?mount={layer}&from=main/a"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("docker-content-digest"), Some(layer.as_str()));
    assert_eq!(s.head(&format!("/v2/main/c/blobs/{layer}")).status, 200);
    let r = s.request(
        "POST",
        &format!("/v2/main/d/blobs/uploads/?mount={layer}&from=main/nothing"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 202);
}

#[test]
fn multi_arch_index_push_and_pull() {
    let s = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let l = Layout::new(&src);
    let amd = l.image("multi", "amd64");
    let arm = l.image("multi", "arm64");
    let mut da = l.desc(OCI_MANIFEST, &amd);
    da["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let mut db = l.desc(OCI_MANIFEST, &arm);
    db["platform"] = json!({"architecture": "arm64", "os": "linux"});
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [da, db]
    }))
    .unwrap();
    let di = l.desc(OCI_INDEX, &index);
    l.index(&[("v1", di)]);
    skopeo_ok(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/main/multi:v1", s.addr),
    ]);
    let r = s.get("/v2/main/multi/manifests/v1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(OCI_INDEX));
    assert_eq!(r.body, index);
    let out = tmp.path().join("out");
    skopeo_ok(&[
        "copy",
        "--all",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{}/main/multi:v1", s.addr),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(index_digest(&out), digest_of(&index));
    for m in [&amd, &arm] {
        assert_eq!(blob_bytes(&out, &digest_of(m)), *m);
    }
    // One platform picked by the client.
    let one = tmp.path().join("one");
    skopeo_ok(&[
        "copy",
        "--override-arch=arm64",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{}/main/multi:v1", s.addr),
        &format!("oci:{}:v1", one.display()),
    ]);
    assert_eq!(index_digest(&one), digest_of(&arm));
}

#[test]
fn delete_an_image() {
    let s = TestServer::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let manifest = simple_image(&src, "del");
    push(&s, &format!("oci:{}:v1", src.display()), "main/gone:v1");
    skopeo_ok(&[
        "delete",
        "--tls-verify=false",
        "--no-creds",
        &format!("docker://{}/main/gone:v1", s.addr),
    ]);
    assert!(!s.path("branches/main/v1/gone/container").exists());
    let r = s.get(&format!("/v2/main/gone/manifests/{}", digest_of(&manifest)));
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errors"][0]["code"], "MANIFEST_UNKNOWN");
}

// ---- raw HTTP ------------------------------------------------------------------------------

#[test]
fn chunked_upload_status_and_manifest_by_hand() {
    let s = TestServer::start();
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

/// A server with auth on: `pat:secret` may push anything, anonymous has `anonymous_acl`.
/// Keep the directory alive as long as the server.
fn server_with_pusher(anonymous_acl: &str) -> (tempfile::TempDir, TestServer) {
    let etc = tempfile::tempdir().unwrap();
    let acls = etc.path().join("acls");
    std::fs::create_dir_all(&acls).unwrap();
    std::fs::write(acls.join("pushers"), "ra /v2/**\n").unwrap();
    std::fs::write(acls.join("ANONYMOUS"), anonymous_acl).unwrap();
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "pat:secret:pushers\n").unwrap();
    let s = TestServer::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", auth.to_str().unwrap()),
        ("DLREPO_ACLS_DIR", acls.to_str().unwrap()),
    ]);
    (etc, s)
}

#[test]
fn unauthorised_push_is_refused() {
    let (_etc, s) = server_with_pusher("r /v2/**\n");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let manifest = simple_image(&src, "auth");
    let image = format!("oci:{}:v1", src.display());
    let dest = format!("docker://{}/main/secure:v1", s.addr);
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        &image,
        &dest,
    ]);
    assert!(!out.status.success(), "anonymous push must fail");
    let out = skopeo(&push_as("pat:wrong", &image, &dest));
    assert!(!out.status.success(), "a wrong password must fail");
    assert!(!s.path("branches/main/v1/secure").exists());
    skopeo_ok(&push_as("pat:secret", &image, &dest));
    // Anonymous pull, as the ACLs allow.
    let out_dir = tmp.path().join("out");
    pull(
        &s,
        "main/secure:v1",
        &format!("oci:{}:v1", out_dir.display()),
    );
    assert_eq!(index_digest(&out_dir), digest_of(&manifest));
}

/// Listings show what the caller may read (spec/AUTH.md §6.4): the catalog by
/// `/v2/{name}/`, tags by `/v2/{name}/manifests/{tag}`.
#[test]
fn listings_hide_what_the_caller_cannot_read() {
    let (_etc, s) = server_with_pusher(
        "r /v2/_catalog\nr /v2/main/open/\nr /v2/main/open/tags/list\nr /v2/main/open/manifests/v1\n",
    );
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    simple_image(&src, "listings");
    let image = format!("oci:{}:v1", src.display());
    for dest in ["main/open:v1", "main/open:v2", "main/hidden:v1"] {
        let dest = format!("docker://{}/{dest}", s.addr);
        skopeo_ok(&push_as("pat:secret", &image, &dest));
    }
    let basic = [("Authorization", "Basic cGF0OnNlY3JldA==")]; // pat:secret
    let names = |r: common::Res, key: &str| {
        let mut v: Vec<String> = r.json()[key]
            .as_array()
            .unwrap_or_else(|| panic!("no {key}: {}", r.text()))
            .iter()
            .map(|x| x.as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(s.get("/v2/_catalog"), "repositories"), ["main/open"]);
    assert_eq!(
        names(
            s.request("GET", "/v2/_catalog", &basic, None),
            "repositories"
        ),
        ["main/hidden", "main/open"]
    );
    assert_eq!(names(s.get("/v2/main/open/tags/list"), "tags"), ["v1"]);
    assert_eq!(
        names(
            s.request("GET", "/v2/main/open/tags/list", &basic, None),
            "tags"
        ),
        ["v1", "v2"]
    );
}

#[test]
fn user_quota_applies_to_pushed_images() {
    let s = TestServer::start_with(&[("DLREPO_USER_QUOTA", "1500")]);
    let config = b"{}".to_vec();
    // The first refusal, or the manifest's answer.
    let push = |name: &str, layer: &[u8]| {
        for blob in [layer, &config[..]] {
            let r = s.request(
                "POST",
                &format!("/v2/{name}/blobs/uploads/?digest={}", digest_of(blob)),
                &[],
                Some(blob),
            );
            if r.status != 201 {
                return r;
            }
        }
        s.request(
            "PUT",
            &format!("/v2/{name}/manifests/v1"),
            &[],
            Some(&manifest_for(&config, layer)),
        )
    };
    let usage = || -> u64 {
        std::fs::read_to_string(s.path("users/bob/.disk_usage"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let (a, b) = (vec![b'a'; 600], vec![b'b'; 600]);
    assert_eq!(push("u/bob/main/one", &a).status, 201);
    // The layer, the config and the manifest: about 1000 bytes, so a second image is too
    // many.
    let used = usage();
    assert!((1000..1500).contains(&used), "{used}");

    // A second image would pass the quota: its layer is refused already, as blobs waiting
    // for their manifest are reserved against the quota, and nothing of it is linked.
    let r = push("u/bob/main/two", &b);
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()));
    assert!(!s.path("users/bob/branches/main/v1/two/container").exists());
    assert_eq!(usage(), used);
    // The first image is intact and still pulls.
    let r = s.get("/v2/u/bob/main/one/manifests/v1");
    assert_eq!(r.status, 200);

    // Replacing the image needs room for its new layer until the manifest lands; with the
    // old image deleted first, the same size fits.
    let r = push("u/bob/main/one", &b);
    assert_eq!((r.status, code(&r)), (403, "DENIED".into()));
    assert_eq!(s.delete("/v2/u/bob/main/one/manifests/v1").status, 202);
    assert_eq!(push("u/bob/main/one", &b).status, 201);
    assert_eq!(usage(), used);
    let layer = s.get(&format!("/v2/u/bob/main/one/blobs/{}", digest_of(&b)));
    assert_eq!(layer.body, b);
}

/// The server's peak resident memory, in KiB.
fn peak_rss_kib(s: &TestServer) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_large_layer_streams_through_in_constant_memory() {
    let s = TestServer::start();
    const SIZE: u64 = 512 << 20;
    let zeros = format!("head -c {SIZE} /dev/zero");
    let hash = std::process::Command::new("sh")
        .args(["-c", &format!("{zeros} | sha256sum")])
        .output()
        .unwrap();
    let digest = format!("sha256:{}", &String::from_utf8(hash.stdout).unwrap()[..64]);
    let before = peak_rss_kib(&s);

    // Pushed the way docker does: one chunked PATCH streaming the whole layer, then PUT.
    let r = s.request("POST", "/v2/main/big/blobs/uploads/", &[], Some(b""));
    assert_eq!(r.status, 202, "{}", r.text());
    let loc = r.header("location").unwrap().to_owned();
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "{zeros} | curl -sS -o /dev/null -w '%{{http_code}} %{{redirect_url}}' -X PATCH \
                 -H 'Content-Type: application/octet-stream' -T - '{}'",
                s.url(&loc)
            ),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("202"),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = s.request("PUT", &format!("{loc}?digest={digest}"), &[], Some(b""));
    assert_eq!(r.status, 201, "{}", r.text());

    // Pulled back with curl and hashed on the way, never stored by the test.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!(
                "curl -sS '{}' | sha256sum",
                s.url(&format!("/v2/main/big/blobs/{digest}"))
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        format!("sha256:{}", &String::from_utf8_lossy(&out.stdout)[..64]),
        digest
    );
    let after = peak_rss_kib(&s);
    assert!(
        after < before + 64 * 1024,
        "peak RSS grew from {before} KiB to {after} KiB over a {SIZE}-byte layer"
    );
}
