//! Taking over a dlrepo 0.44 data directory, and handing it back (docs/operator.md): the real
//! dlrepo writes a tree through its API, then arbor, started on the same root, finds it
//! healthy and serves every view of it byte for byte as dlrepo did. The other way round, what
//! arbor writes there is served identically by dlrepo afterwards.

// Black-box tests check what the servers left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::dlrepo::Dlrepo;
use common::*;
use serde_json::json;

const JSON: (&str, &str) = ("Accept", "application/json");

/// Everything a client can read of the tree `populate` writes, JSON, text or file.
const VIEWS: &[&str] = &[
    "/branches/",
    "/branches/main/",
    "/branches/main/v1/",
    "/branches/main/v1/build/",
    "/branches/main/v1/build/bin/",
    "/branches/main/v1/build/bin.sha256",
    "/branches/main/v1/build/bin/sub/b.bin",
    "/branches/main/v1/docs/",
    "/branches/main/v1/build/bin/a.txt",
    "/branches/main/stable/build/bin/a.txt",
    "/branches/main/latest/",
    "/products/",
    "/products/foo/",
    "/products/foo/x86/",
    "/products/foo/x86/1.x/",
    "/products/foo/x86/1.x/1.0/",
    "/products/foo/x86/1.x/1.0/bin/",
    "/~alice/branches/",
    "/~alice/branches/mine/t/j/f/",
];

fn ok(r: &Res, what: &str) {
    assert!(
        (200..300).contains(&r.status),
        "{what}: {} {}",
        r.status,
        r.text()
    );
}

/// Uploads and finalises a format through any server at `base`.
fn upload(agent: &ureq::Agent, base: &str, format_url: &str, files: &[(&str, &[u8])]) {
    for (rel, data) in files {
        let path = format!("{format_url}{rel}");
        let r = send(
            agent,
            base,
            "PUT",
            &path,
            &[("Digest", &digest_of(data)), JSON],
            Some(data),
        );
        ok(&r, &path);
    }
    ok(
        &send(agent, base, "PATCH", format_url, &[JSON], Some(b"")),
        format_url,
    );
}

fn post(agent: &ureq::Agent, base: &str, method: &str, path: &str, body: serde_json::Value) {
    let data = serde_json::to_vec(&body).expect("json");
    let r = send(
        agent,
        base,
        method,
        path,
        &[("Content-Type", "application/json"), JSON],
        Some(&data),
    );
    ok(&r, path);
}

/// What dlrepo users typically have: deduplicated uploads, product metadata (one value not
/// a string), a locked job, a cleanup policy, a locked stable tag with a non-ASCII
/// description, and a user repository.
fn populate(agent: &ureq::Agent, base: &str) {
    let a: &[u8] = b"same content in two jobs\n";
    upload(
        agent,
        base,
        "/branches/main/v1/build/bin/",
        &[("a.txt", a), ("sub/b.bin", &[0u8, 1, 2, 255])],
    );
    upload(
        agent,
        base,
        "/branches/main/v1/docs/html/",
        &[("index.txt", a)],
    );
    post(
        agent,
        base,
        "PATCH",
        "/branches/main/v1/build/",
        json!({"job": {"product": "Foo", "product_variant": "x86", "product_branch": "1.x", "version": "1.0", "build": 7}}),
    );
    post(
        agent,
        base,
        "PUT",
        "/branches/main/v1/build/",
        json!({"job": {"locked": true}}),
    );
    post(
        agent,
        base,
        "POST",
        "/branches/main/",
        json!({"branch": {"max_daily_tags": 3, "max_released_tags": 2}}),
    );
    post(
        agent,
        base,
        "POST",
        "/branches/main/v1/",
        json!({"tag": {"locked": true, "stable": true, "description": "école été"}}),
    );
    upload(
        agent,
        base,
        "/~alice/branches/mine/t/j/f/",
        &[("mine.txt", b"a user's file\n")],
    );
}

/// One view as a client sees it.
#[derive(Debug, PartialEq)]
struct View {
    path: &'static str,
    status: u16,
    location: Option<String>,
    digest: Option<String>,
    body: String,
}

fn read_views(agent: &ureq::Agent, base: &str) -> Vec<View> {
    VIEWS
        .iter()
        .map(|path| {
            let r = send(agent, base, "GET", path, &[JSON], None);
            let header = |name: &str| r.header(name).map(str::to_owned);
            View {
                path,
                status: r.status,
                location: header("location"),
                digest: header("digest"),
                body: r.text(),
            }
        })
        .collect()
}

#[test]
fn arbor_serves_a_dlrepo_tree_as_dlrepo_did_and_back() {
    let agent = new_agent();
    let root = tempfile::tempdir().expect("temp dir");
    let dlrepo = Dlrepo::start_on(root.path(), &[]);
    populate(&agent, &dlrepo.base);
    let by_dlrepo = read_views(&agent, &dlrepo.base);
    for v in &by_dlrepo {
        assert!(matches!(v.status, 200 | 302), "dlrepo: {v:?}");
    }
    drop(dlrepo);

    // The summary counts what dlrepo stored: 3 distinct contents in 4 files (a.txt and
    // index.txt share a blob). The one problem is alice's `.disk_usage`: dlrepo counted
    // her file only, arbor counts every file of the repository, `.digests` and the count
    // itself included (spec/API.md Q40); `--repair` recounts it, and nothing else.
    let (healthy, report) = fsck(root.path(), false);
    assert!(
        !healthy
            && report.contains("checked 3 blobs and 4 files: 1 problems, 0 repaired")
            && report.contains("users/alice/.disk_usage: says 14 bytes"),
        "{report}"
    );
    let before = snapshot(root.path());
    let (healthy, report) = fsck(root.path(), true);
    assert!(healthy, "{report}");
    let changed: Vec<_> = snapshot(root.path())
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(changed[0].0, "users/alice/.disk_usage");

    let arbor = TestServer::start_in(root, &[("DLREPO_AUTH_DISABLED", "1")]);
    let by_arbor = read_views(&agent, &arbor.base);
    for (d, a) in by_dlrepo.iter().zip(&by_arbor) {
        assert_eq!(d, a, "dlrepo and arbor differ on {}", d.path);
    }

    // Handing back: a job arbor writes and locks is the same job to dlrepo.
    upload(
        &agent,
        &arbor.base,
        "/branches/main/v2/build/bin/",
        &[("c.txt", b"written by arbor\n")],
    );
    post(
        &agent,
        &arbor.base,
        "PATCH",
        "/branches/main/v2/build/",
        json!({"job": {"product": "foo", "build": 8}}),
    );
    post(
        &agent,
        &arbor.base,
        "PUT",
        "/branches/main/v2/build/",
        json!({"job": {"locked": true}}),
    );
    let job = "/branches/main/v2/build/";
    let from_arbor = send(&agent, &arbor.base, "GET", job, &[JSON], None).text();
    let root = arbor.stop();
    let dlrepo = Dlrepo::start_on(root.path(), &[]);
    let from_dlrepo = send(&agent, &dlrepo.base, "GET", job, &[JSON], None);
    assert_eq!(from_dlrepo.status, 200, "{}", from_dlrepo.text());
    assert_eq!(from_dlrepo.text(), from_arbor);
    let digest = &from_dlrepo.json()["job"]["digest"];
    assert!(digest.as_str().is_some_and(|d| d.len() == 64), "{digest}");
    drop(dlrepo);
    let (healthy, report) = fsck(root.path(), false);
    assert!(healthy, "{report}");
}
