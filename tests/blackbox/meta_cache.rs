//! The metadata caches (docs/caches.md): a tag, job or branch answer, or an alias, kept in
//! memory changes as soon as the tree does, whichever process wrote it. Each check first
//! lets the tree settle (answers read within 2 s of a change are not kept), reads twice
//! so the second answer comes from memory (the hit counter says so), then writes.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;

/// Longer than the window in which a fresh change keeps an answer from being kept.
const SETTLE: Duration = Duration::from_millis(2300);

fn hits(base: &str, cache: &str) -> f64 {
    hits_as(base, cache, &[])
}

/// [`hits`] with the request's headers (credentials).
fn hits_as(base: &str, cache: &str, headers: &[(&str, &str)]) -> f64 {
    let text = send(&new_agent(), base, "GET", "/metrics", headers, None).text();
    let series = format!("arbor_metadata_cache_lookups_total{{cache=\"{cache}\",lookup=\"hit\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.split(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn get_json(base: &str, path: &str) -> Value {
    let r = send(
        &new_agent(),
        base,
        "GET",
        path,
        &[("Accept", "application/json")],
        None,
    );
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

/// `path` as `base` answers it once the tree has settled, twice, the second from the
/// `cache` (the counter shows it), checked to be the same answer.
fn kept(base: &str, path: &str, cache: &str) -> Value {
    std::thread::sleep(SETTLE);
    let first = get_json(base, path);
    let before = hits(base, cache);
    let second = get_json(base, path);
    assert!(
        hits(base, cache) > before,
        "{path} not answered from the {cache} cache"
    );
    assert_eq!(first, second);
    second
}

fn job<'a>(tag: &'a Value, name: &str) -> Option<&'a Value> {
    tag["tag"]["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["name"] == name)
}

#[test]
fn kept_tag_and_job_answers_follow_uploads_locks_releases_and_deletes() {
    let s = TestServer::start();
    let b = &s.base;
    s.upload_format("/branches/b/t/j/f/", &[("a", b"a")]);
    let tag = kept(b, "/branches/b/t/", "tag");
    assert!(job(&tag, "j2").is_none());

    // An upload into a new job of the tag.
    assert_eq!(s.put_file("/branches/b/t/j2/f/a", b"a").status, 201);
    assert!(job(&get_json(b, "/branches/b/t/"), "j2").is_some());

    // A lock: the tag's listing and the job's own answer.
    let j = kept(b, "/branches/b/t/j/", "job");
    assert_eq!(j["job"]["locked"], false);
    kept(b, "/branches/b/t/", "tag");
    let r = s.send_json("PUT", "/branches/b/t/j/", &json!({"job": {"locked": true}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(get_json(b, "/branches/b/t/j/")["job"]["locked"], true);
    assert_eq!(
        job(&get_json(b, "/branches/b/t/"), "j").unwrap()["locked"],
        true
    );

    // A release, as the publisher leaves it (without DLREPO_PUBLISH_URL a release is
    // refused): the flags of the tag and its jobs, seen by the tag and branch answers.
    let branch = kept(b, "/branches/b/", "branch");
    assert_eq!(branch["branch"]["tags"][0]["released"], false);
    kept(b, "/branches/b/t/", "tag");
    for flag in ["branches/b/t/.released", "branches/b/t/j/.released"] {
        std::fs::write(s.path(flag), b"").expect("flag");
    }
    let tag = get_json(b, "/branches/b/t/");
    assert_eq!(tag["tag"]["released"], true);
    assert_eq!(job(&tag, "j").unwrap()["released"], true);
    assert_eq!(
        get_json(b, "/branches/b/")["branch"]["tags"][0]["released"],
        true
    );
    for flag in ["branches/b/t/.released", "branches/b/t/j/.released"] {
        std::fs::remove_file(s.path(flag)).expect("flag");
    }

    // A delete of a job, then of the tag.
    kept(b, "/branches/b/t/", "tag");
    assert_eq!(s.delete("/branches/b/t/j2/").status, 200);
    assert!(job(&get_json(b, "/branches/b/t/"), "j2").is_none());
    assert_eq!(s.get("/branches/b/t/j2/").status, 404);
    kept(b, "/branches/b/", "branch");
    let r = s.send_json("POST", "/branches/b/t/", &json!({"tag": {"locked": false}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.send_json(
        "PUT",
        "/branches/b/t/j/",
        &json!({"job": {"locked": false}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.delete("/branches/b/t/").status, 200, "tag delete");
    assert_eq!(s.get("/branches/b/t/").status, 404);
    assert_eq!(get_json(b, "/branches/b/")["branch"]["tags"], json!([]));
}

#[test]
fn a_second_process_on_the_root_sees_the_first_ones_writes() {
    let s = TestServer::start();
    let (mut other, addr) = s.second_process();
    let o = format!("http://{addr}");
    for t in ["t1", "t2"] {
        let r = s.send_json(
            "PATCH",
            &format!("/branches/b/{t}/j/"),
            &json!({"job": {"k": t}}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        // Tags are ordered by `.stamp` times: keep them apart.
        std::thread::sleep(Duration::from_millis(20));
    }
    let latest = |base: &str| {
        let r = send(&new_agent(), base, "GET", "/branches/b/latest/", &[], None);
        assert_eq!(r.status, 302, "{}", r.text());
        r.header("location").unwrap_or_default().to_owned()
    };
    let stable = |base: &str| {
        send(&new_agent(), base, "GET", "/branches/b/stable/", &[], None)
            .header("location")
            .map(str::to_owned)
    };

    // The other process keeps the tag, job, branch and alias answers.
    kept(&o, "/branches/b/t1/", "tag");
    kept(&o, "/branches/b/t1/j/", "job");
    kept(&o, "/branches/b/", "branch");
    assert!(latest(&o).ends_with("/branches/b/t2/"));
    let before = hits(&o, "alias");
    assert!(latest(&o).ends_with("/branches/b/t2/"));
    assert!(
        hits(&o, "alias") > before,
        "latest not answered from the alias cache"
    );
    assert_eq!(stable(&o), None);

    // This one writes: a description, a lock, a new tag, a stable flag.
    let r = s.send_json(
        "POST",
        "/branches/b/t1/",
        &json!({"tag": {"description": "new"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.send_json(
        "PUT",
        "/branches/b/t1/j/",
        &json!({"job": {"locked": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.send_json("PATCH", "/branches/b/t3/j/", &json!({"job": {"k": "t3"}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s.send_json("POST", "/branches/b/t1/", &json!({"tag": {"stable": true}}));
    assert_eq!(r.status, 200, "{}", r.text());

    assert_eq!(get_json(&o, "/branches/b/t1/")["tag"]["description"], "new");
    assert_eq!(get_json(&o, "/branches/b/t1/j/")["job"]["locked"], true);
    let tags = get_json(&o, "/branches/b/")["branch"]["tags"].clone();
    let names: Vec<&str> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["t1", "t2", "t3"]);
    assert_eq!(tags[0]["stable"], true);
    assert!(latest(&o).ends_with("/branches/b/t3/"));
    assert!(stable(&o).is_some_and(|l| l.ends_with("/branches/b/t1/")));
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn a_kept_answer_shows_each_caller_only_what_it_may_read() {
    let s = common::auth::Secured::start(
        &[("admin", "pw1", "admins"), ("guest", "pw2", "guests")],
        &[
            ("admins", "rw /**\n"),
            (
                "guests",
                "r /branches/**  !/branches/b/t/hidden/**  !/branches/b/new/**\n",
            ),
        ],
    );
    for job in ["open", "hidden"] {
        let r = s.json(
            "admin",
            "PATCH",
            &format!("/branches/b/t/{job}/"),
            &json!({"job": {}}),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    std::thread::sleep(Duration::from_millis(20));
    let r = s.json("admin", "PATCH", "/branches/b/new/j/", &json!({"job": {}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let read = |login: &str, path: &str| {
        let r = s.send(login, "GET", path, &[("Accept", "application/json")], None);
        (
            r.status,
            r.header("location").map(str::to_owned),
            r.body.clone(),
        )
    };
    let jobs = |body: &[u8]| -> Vec<String> {
        let v: Value = serde_json::from_slice(body).expect("json");
        v["tag"]["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_owned())
            .collect()
    };
    std::thread::sleep(SETTLE);
    // The admin's reads keep the answers (every job, every tag); the guest's come from them.
    for _ in 0..2 {
        assert_eq!(jobs(&read("admin", "/branches/b/t/").2), ["hidden", "open"]);
        assert!(
            read("admin", "/branches/b/latest/")
                .1
                .is_some_and(|l| l.ends_with("/b/new/"))
        );
    }
    let admin = s.basic("admin");
    let tag_hits = || hits_as(&s.server.base, "tag", &[("Authorization", admin.as_str())]);
    let before = tag_hits();
    assert_eq!(jobs(&read("guest", "/branches/b/t/").2), ["open"]);
    let after = tag_hits();
    assert!(
        after > before,
        "the guest's tag answer was not kept: {before} -> {after}"
    );
    assert_ne!(read("guest", "/branches/b/t/hidden/").0, 200);
    assert!(
        read("guest", "/branches/b/latest/")
            .1
            .is_some_and(|l| l.ends_with("/b/t/"))
    );
    let branch: Value = serde_json::from_slice(&read("guest", "/branches/b/").2).expect("json");
    assert_eq!(branch["branch"]["tags"].as_array().map(Vec::len), Some(1));
}

/// A download takes the file's digest (its `Digest` and `ETag`) from the format's kept
/// `.digests`: a file overwritten, here or nested, by another process on the same root, and
/// a format deleted, show at once.
#[test]
fn a_kept_format_listing_follows_overwrites_and_deletes_by_another_process() {
    let s = TestServer::start();
    let (mut other, addr) = s.second_process();
    let o = format!("http://{addr}");
    let get = |path: &str| send(&new_agent(), &o, "GET", path, &[], None);
    let files = ["/branches/b/t/j/f/a.txt", "/branches/b/t/j/f/sub/b.txt"];
    for f in files {
        assert_eq!(s.put_file(f, b"one").status, 201);
    }
    std::thread::sleep(SETTLE);
    for f in files {
        let first = get(f);
        let before = hits(&o, "digests");
        let second = get(f);
        assert!(hits(&o, "digests") > before, "{f}: .digests not kept");
        for r in [&first, &second] {
            assert_eq!((r.status, r.body.as_slice()), (200, &b"one"[..]), "{f}");
            assert_eq!(r.header("digest"), Some(digest_of(b"one").as_str()));
        }
    }
    for (f, data) in files.iter().zip([&b"two"[..], b"three"]) {
        assert_eq!(s.put_file(f, data).status, 201);
        let r = get(f);
        assert_eq!((r.status, r.body.as_slice()), (200, data), "{f}");
        assert_eq!(r.header("digest"), Some(digest_of(data).as_str()), "{f}");
        assert_eq!(
            r.header("etag"),
            Some(format!("\"{}\"", sha256_hex(data)).as_str())
        );
    }
    // The format's listing and sums come from the same kept `.digests`.
    std::thread::sleep(SETTLE);
    let sums = get("/branches/b/t/j/f.sha256").text();
    assert!(!sums.contains("c.txt"), "{sums}");
    assert_eq!(s.put_file("/branches/b/t/j/f/c.txt", b"four").status, 201);
    let listing = get_json(&o, "/branches/b/t/j/f/");
    assert_eq!(
        listing["artifact_format"]["files"],
        json!(["a.txt", "c.txt", "sub/b.txt"])
    );
    let sums = get("/branches/b/t/j/f.sha256").text();
    assert!(
        sums.contains(&format!("{}  c.txt\n", sha256_hex(b"four"))),
        "{sums}"
    );
    let r = send(
        &new_agent(),
        &s.base,
        "DELETE",
        "/branches/b/t/j/",
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for f in files {
        assert_eq!(get(f).status, 404, "{f}");
    }
    let _ = other.kill();
    let _ = other.wait();
}
