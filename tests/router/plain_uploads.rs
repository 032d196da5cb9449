//! `PUT` without a `Digest` (spec/API.md Q21, issue 16 item 4): what `curl -T file URL`
//! sends. The server names the content by the sha256 it computes while receiving and says
//! so in the 201; a `Digest`, when given, is still checked, and link mode still needs one.

use crate::common;
use common::*;

const URL: &str = "/branches/b/t/j/f/dir/plain.bin";

/// The upload with no header at all, as `curl -T` sends it.
fn put_plain(s: &App, url: &str, data: &[u8]) -> Res {
    s.request("PUT", url, &[], Some(data))
}

fn assert_stored(s: &App, data: &[u8]) {
    let d = digest_of(data);
    let file = s.path("branches/b/t/j/f/dir/plain.bin");
    assert_eq!(std::fs::read(&file).unwrap(), data);
    let h = sha256_hex(data);
    assert_eq!(nlink(&s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))), 2);
    let digests: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("branches/b/t/j/f/.digests")).unwrap())
            .unwrap();
    assert_eq!(digests["dir/plain.bin"], d);
    assert_eq!(s.head(URL).header("digest"), Some(d.as_str()));
    assert!(uploads_left(s.root.path()).is_empty());
}

#[test]
fn small_body_without_digest_is_stored_under_its_sha256() {
    let s = App::start();
    let data = b"no digest sent\n";
    let r = put_plain(&s, URL, data);
    assert_eq!((r.status, r.text().as_str()), (201, "201: Created"));
    assert_eq!(r.header("digest"), Some(digest_of(data).as_str()));
    assert_stored(&s, data);
}

#[test]
fn streamed_body_without_digest_is_stored_under_its_sha256() {
    let s = App::start();
    // Past the in-memory limit (256 KiB), so the body streams to .uploads/.
    let data: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    let r = put_plain(&s, URL, &data);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("digest"), Some(digest_of(&data).as_str()));
    assert_stored(&s, &data);
    // The same content sent again is deduplicated onto the same blob.
    let r = put_plain(&s, "/branches/b/t/j/f/again.bin", &data);
    assert_eq!(r.status, 201);
    let h = sha256_hex(&data);
    assert_eq!(nlink(&s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))), 3);
}

#[test]
fn a_given_digest_is_still_checked_and_answered() {
    let s = App::start();
    let big: Vec<u8> = vec![7; 300_000];
    for (url, data) in [
        ("/branches/b/t/j/f/small", &b"checked"[..]),
        ("/branches/b/t/j/f/big", &big),
    ] {
        let wrong = digest_of(b"something else");
        let r = s.request("PUT", url, &[("Digest", &wrong)], Some(data));
        assert_eq!(
            (r.status, r.text()),
            (
                422,
                format!("422: Received data does not match digest: {wrong}")
            )
        );
        assert!(!s.path(&url[1..]).exists());
        assert!(uploads_left(s.root.path()).is_empty());
        let r = s.put_file(url, data);
        assert_eq!(r.status, 201);
        assert_eq!(r.header("digest"), Some(digest_of(data).as_str()));
    }
    // Another algorithm, when named, is the one checked and answered.
    let md5 = "md5:900150983cd24fb0d6963f7d28e17f72";
    let r = s.request("PUT", URL, &[("Digest", md5)], Some(b"abc"));
    assert_eq!((r.status, r.header("digest")), (201, Some(md5)));
}

#[test]
fn link_mode_still_needs_a_digest() {
    let s = App::start();
    let data = b"linked";
    s.put_file("/branches/b/t/j/f/orig", data);
    let before = snapshot(s.root.path());
    // X-Dlrepo-Link alone asks for a link to nothing: refused before any body is read.
    let d = digest_of(data);
    let r = s.request("PUT", URL, &[("X-Dlrepo-Link", &d)], Some(b""));
    assert_eq!(
        (r.status, r.text().as_str()),
        (422, "422: invalid digest: None")
    );
    assert_eq!(before, snapshot(s.root.path()));
    // With both, it links and answers the digest like an upload.
    let r = s.request(
        "PUT",
        URL,
        &[("Digest", &d), ("X-Dlrepo-Link", &d)],
        Some(b""),
    );
    assert_eq!((r.status, r.header("digest")), (201, Some(d.as_str())));
}

#[test]
fn refusals_are_the_same_without_a_digest() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/f/", &[("a", b"a")]);
    s.send_json(
        "PUT",
        "/branches/b/t/j/",
        &serde_json::json!({"job": {"locked": true}}),
    );
    let before = snapshot(s.root.path());
    let r = put_plain(&s, "/branches/b/t/j/f/b", b"b");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Cannot upload files in locked jobs")
    );
    let r = put_plain(&s, "/products/p/v/b/1.0/f/x", b"x");
    assert_eq!(r.status, 400);
    let r = put_plain(&s, "/branches/b/t/k/f/bad//name", b"x");
    assert_eq!(r.status, 400);
    assert_eq!(before, snapshot(s.root.path()));
    assert!(uploads_left(s.root.path()).is_empty());
}
