//! Downloads a mirror can cache and resume (issue 14): tars whose bytes depend only on what
//! they hold, their ETag, length, 304 and ranges, `Cache-Control`, and `?details`.

use crate::common::*;
use crate::shared::auth::Secured;
use crate::shared::oci_workflows::{LAYER, config, image_manifest, push_blob, put_manifest};
use serde_json::json;
use std::time::{Duration, SystemTime};

const JOB: &str = "/branches/b/t/j/";
const BUNDLES: [&str; 4] = [
    "/branches/b/t/j.tar",
    "/branches/b/t/j/fmt.tar",
    "/products/foo/x86/1.0/1.0.1.tar",
    "/products/foo/x86/1.0/1.0.1/fmt.tar",
];

/// A locked job in a product version, two formats, one file shared with nothing yet.
fn released(s: &App) {
    s.upload_format(
        &format!("{JOB}fmt/"),
        &[("dir/a.txt", b"alpha"), ("b.bin", &[7u8; 3000])],
    );
    s.upload_format(&format!("{JOB}doc/"), &[("index.html", b"<p>doc")]);
    let meta = json!({"job": {"product": "foo", "product_variant": "x86",
                              "product_branch": "1.0", "version": "1.0.1"}});
    assert_eq!(s.send_json("PATCH", JOB, &meta).status, 200);
    assert_eq!(
        s.send_json("PUT", JOB, &json!({"job": {"locked": true}}))
            .status,
        200
    );
}

fn set_mtime(path: &std::path::Path, t: SystemTime) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

#[test]
fn bundles_keep_their_bytes_when_their_blobs_are_touched() {
    let s = App::start();
    released(&s);
    // Blobs from long ago, so that a touch now is a different second.
    let blob = s.path("branches/b/t/j/fmt/dir/a.txt");
    set_mtime(
        &blob,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
    );
    let before: Vec<_> = BUNDLES.iter().map(|u| s.get(u)).collect();
    for r in &before {
        assert_eq!(r.status, 200);
        assert!(r.header("etag").is_some_and(|t| t.starts_with('"')));
    }
    let modified = s.get(&format!("{JOB}fmt/dir/a.txt"));
    // A dedup upload of the same content elsewhere, and a digest HEAD: both touch the blob.
    let d = digest_of(b"alpha");
    let r = s.request(
        "HEAD",
        "/branches/other/t/j/f/x",
        &[("Digest", d.as_str())],
        None,
    );
    assert_eq!(r.status, 200);
    let link = [("Digest", d.as_str()), ("X-Dlrepo-Link", d.as_str())];
    let r = s.request("PUT", "/branches/other/t/j/f/x", &link, Some(b""));
    assert_eq!(r.status, 201);
    assert_ne!(
        std::fs::metadata(&blob).unwrap().modified().unwrap(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        "the blob was not touched: this test proves nothing"
    );
    for (url, old) in BUNDLES.iter().zip(&before) {
        let r = s.get(url);
        assert_eq!(r.body, old.body, "{url}");
        assert_eq!(r.header("etag"), old.header("etag"), "{url}");
    }
    let again = s.get(&format!("{JOB}fmt/dir/a.txt"));
    assert_eq!(
        again.header("last-modified"),
        modified.header("last-modified")
    );
    // Every member carries the entity's time, whatever its file's.
    let mut ar = tar::Archive::new(&before[1].body[..]);
    let times: Vec<u64> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().header().mtime().unwrap())
        .collect();
    assert_eq!(times.len(), 3);
    assert!(times.iter().all(|t| *t == times[0] && *t > 1_000_000));
}

#[test]
fn a_tar_has_a_length_a_validator_and_ranges() {
    let s = App::start();
    released(&s);
    for url in BUNDLES {
        let full = s.get(url);
        let len = full.body.len();
        assert_eq!(
            full.header("content-length"),
            Some(len.to_string().as_str())
        );
        assert_eq!(full.header("accept-ranges"), Some("bytes"));
        assert_eq!(full.header("cache-control"), Some("no-cache"));
        let tag = full.header("etag").unwrap().to_owned();

        let head = s.head(url);
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("content-length"), full.header("content-length"));
        assert_eq!(head.header("etag"), Some(tag.as_str()));
        assert_eq!(head.header("content-type"), Some("application/x-tar"));

        for method in ["GET", "HEAD"] {
            let r = s.request(method, url, &[("If-None-Match", &tag)], None);
            assert_eq!((r.status, r.body.len()), (304, 0), "{method} {url}");
            assert_eq!(r.header("etag"), Some(tag.as_str()));
        }
        let r = s.request("GET", url, &[("If-Match", "\"other\"")], None);
        assert_eq!(r.status, 412);

        // A download broken after `cut` bytes resumes where it stopped.
        let cut = len / 3 + 7;
        let range = format!("bytes={cut}-");
        let r = s.request("GET", url, &[("Range", &range), ("If-Range", &tag)], None);
        assert_eq!(r.status, 206, "{url}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {cut}-{}/{len}", len - 1).as_str())
        );
        assert_eq!(
            r.header("content-length"),
            Some((len - cut).to_string().as_str())
        );
        let mut resumed = full.body[..cut].to_vec();
        resumed.extend_from_slice(&r.body);
        assert_eq!(resumed, full.body, "{url}");
        let r = s.request("GET", url, &[("Range", "bytes=512-1023")], None);
        assert_eq!(r.body, &full.body[512..1024]);
        // Another version's range would splice two archives: the whole tar instead.
        let r = s.request(
            "GET",
            url,
            &[("Range", &range), ("If-Range", "\"old\"")],
            None,
        );
        assert_eq!((r.status, r.body.len()), (200, len));
        let past = format!("bytes={len}-");
        let r = s.request("GET", url, &[("Range", &past)], None);
        assert_eq!(r.status, 416);
    }
}

#[test]
fn a_tar_validator_follows_its_content() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/fmt/", &[("a", b"1")]);
    let one = s.get("/branches/b/t/j/fmt.tar");
    s.upload_format("/branches/b/t/j/fmt/", &[("a", b"2")]);
    let two = s.get("/branches/b/t/j/fmt.tar");
    assert_ne!(one.header("etag"), two.header("etag"));
    let r = s.request(
        "GET",
        "/branches/b/t/j/fmt.tar",
        &[("If-None-Match", one.header("etag").unwrap())],
        None,
    );
    assert_eq!(r.status, 200);
    // Bad input keeps its answers: a dirty format's HEAD, a missing job.
    s.request(
        "PUT",
        "/branches/b/t/j/fmt/c",
        &[("Digest", &digest_of(b"c"))],
        Some(b"c"),
    );
    assert_eq!(s.head("/branches/b/t/j/fmt.tar").status, 404);
    assert_eq!(s.get("/branches/b/t/nope.tar").status, 404);
    // A listed file gone from the disk: a 500 before any byte, not a tar cut short.
    s.request("PATCH", "/branches/b/t/j/fmt/", &[], None);
    std::fs::remove_file(s.path("branches/b/t/j/fmt/a")).unwrap();
    let r = s.get("/branches/b/t/j/fmt.tar");
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("fmt/a"), "{}", r.text());
}

#[test]
fn artifacts_revalidate_and_head_answers_as_get() {
    let s = App::start();
    released(&s);
    let url = format!("{JOB}fmt/b.bin");
    let get = s.get(&url);
    assert_eq!(get.header("cache-control"), Some("no-cache"));
    let head = s.head(&url);
    assert_eq!(head.headers, get.headers);
    let page = s.get(&format!("{JOB}doc/index.html"));
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let tag = get.header("etag").unwrap();
    let r = s.request("GET", &url, &[("If-None-Match", tag)], None);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    // Listings carry no validator, hence no caching advice.
    assert_eq!(s.get(JOB).header("cache-control"), None);
}

#[test]
fn content_named_by_digest_is_immutable() {
    let s = App::start();
    let layer = LAYER.to_vec();
    let cfg = config("downloads");
    push_blob(&s, "main/img", &layer);
    push_blob(&s, "main/img", &cfg);
    let manifest = image_manifest(&cfg);
    assert_eq!(put_manifest(&s, "main/img", "v1", &manifest).status, 201);
    let immutable = Some("public, max-age=31536000, immutable");
    let r = s.get(&format!("/v2/main/img/blobs/{}", digest_of(&layer)));
    assert_eq!((r.status, r.header("cache-control")), (200, immutable));
    let r = s.get(&format!("/v2/main/img/manifests/{}", digest_of(&manifest)));
    assert_eq!((r.status, r.header("cache-control")), (200, immutable));
    let r = s.get("/v2/main/img/manifests/v1");
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("no-cache"))
    );
}

#[test]
fn what_an_acl_protects_is_private() {
    let s = Secured::<App>::start(
        &[("ann", "pw", "staff")],
        &[
            ("staff", "rw /branches/**\n"),
            ("ANONYMOUS", "r /branches/pub/**\n"),
        ],
    );
    for b in ["pub", "priv"] {
        let url = format!("/branches/{b}/t/j/f/a.txt");
        assert_eq!(s.put("ann", &url, b"a").status, 201);
        let r = s.get("ann", &url);
        assert_eq!(r.status, 200);
        let want = if b == "pub" {
            "no-cache"
        } else {
            "private, no-cache"
        };
        assert_eq!(r.header("cache-control"), Some(want), "{url}");
        let r = s.get("ann", &format!("/branches/{b}/t/j/f.tar"));
        assert_eq!(r.header("cache-control"), Some(want), "{b} tar");
    }
}

#[test]
fn details_list_what_each_file_is() {
    let s = App::start();
    released(&s);
    let plain = s.get(&format!("{JOB}fmt/"));
    assert_eq!(
        plain.text(),
        r#"{"artifact_format": {"name": "fmt", "internal": false, "dirty": false, "files": ["b.bin", "dir/a.txt"]}}"#
    );
    let lm = s.get(&format!("{JOB}fmt/dir/a.txt"));
    let lm = httpdate::parse_http_date(lm.header("last-modified").unwrap()).unwrap();
    let lm = lm.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    for url in [
        format!("{JOB}fmt/?details"),
        "/products/foo/x86/1.0/1.0.1/fmt/?details".to_owned(),
    ] {
        let r = s.get(&url);
        assert_eq!(r.status, 200, "{url}");
        let v = r.json();
        let f = &v["artifact_format"];
        assert_eq!(
            (f["name"].as_str(), f["dirty"].as_bool()),
            (Some("fmt"), Some(false))
        );
        let files = f["files"].as_array().unwrap();
        let got: Vec<_> = files
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_owned(),
                    e["size"].as_u64().unwrap(),
                    e["digest"].as_str().unwrap().to_owned(),
                    e["content_type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "b.bin".to_owned(),
                    3000,
                    digest_of(&[7u8; 3000]),
                    "application/octet-stream".to_owned()
                ),
                (
                    "dir/a.txt".to_owned(),
                    5,
                    digest_of(b"alpha"),
                    "text/plain".to_owned()
                ),
            ]
        );
        for e in files {
            assert_eq!(e["mtime"].as_f64().unwrap().floor() as u64, lm);
        }
    }
    let accept = [("Accept", "application/vnd.arbor.artifacts+json")];
    let r = s.request("GET", &format!("{JOB}fmt/"), &accept, None);
    assert!(r.json()["artifact_format"]["files"][0]["size"].is_u64());
    let r = s.get("/branches/b/latest/j/fmt/?details");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("/branches/b/t/j/fmt/?details"));
    assert_eq!(s.get("/branches/b/t/j/nope/?details").status, 404);
}
