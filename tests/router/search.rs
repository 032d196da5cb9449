//! `GET /search` (issue 17, docs/search.md): every filter, the level results come at,
//! access control per result, pagination that new uploads do not disturb, and the page.

use crate::common::*;
use crate::shared::access::{self, as_user};
use crate::shared::auth::basic;
use crate::shared::search::{enc, search_as, url_list, urls};
use serde_json::json;

/// Two branches, three jobs: `main/t1/build` (deb, product foo 1.2, locked), `main/t2/build`
/// (deb and docs), `2.x/r1/img` (a tar, stable tag).
fn tree() -> App {
    let s = App::start();
    s.upload_format(
        "/branches/main/t1/build/deb/",
        &[("libfoo_1.2.deb", b"foo12"), ("bar_1.2.deb", b"bar")],
    );
    let meta = json!({"job": {"product": "Foo", "product_variant": "x", "product_branch": "1", "version": "1.2"}});
    assert_eq!(
        s.send_json("PATCH", "/branches/main/t1/build/", &meta)
            .status,
        200
    );
    let lock = json!({"job": {"locked": true}});
    assert_eq!(
        s.send_json("PUT", "/branches/main/t1/build/", &lock).status,
        200
    );
    s.upload_format(
        "/branches/main/t2/build/deb/",
        &[("libfoo_1.3.deb", b"foo13")],
    );
    s.upload_format(
        "/branches/main/t2/build/docs/",
        &[("pool/Guide.pdf", b"pdf")],
    );
    s.upload_format("/branches/2.x/r1/img/tar/", &[("image.tar", b"foo12")]);
    let stable = json!({"tag": {"stable": true}});
    assert_eq!(
        s.send_json("POST", "/branches/2.x/r1/", &stable).status,
        200
    );
    s
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn every_filter() {
    let s = tree();
    // The product version (its `.stamp` made by the PATCH, after the job's) and the job.
    let foo = ["/products/foo/x/1/1.2/", "/branches/main/t1/build/"];
    assert_eq!(urls(&s, "product=foo"), foo);
    assert_eq!(urls(&s, "product=foo version=1.*"), foo);
    assert!(urls(&s, "product=foo version=2.*").is_empty());
    assert_eq!(
        sorted(urls(&s, "libfoo")),
        [
            "/branches/main/t1/build/deb/libfoo_1.2.deb",
            "/branches/main/t2/build/deb/libfoo_1.3.deb"
        ]
    );
    assert_eq!(
        urls(&s, "name:pool/*.PDF"),
        ["/branches/main/t2/build/docs/pool/Guide.pdf"]
    );
    assert_eq!(
        urls(&s, "guide"),
        ["/branches/main/t2/build/docs/pool/Guide.pdf"]
    );
    let d = format!("digest:{}", digest_of(b"foo12"));
    assert_eq!(
        sorted(urls(&s, &d)),
        [
            "/branches/2.x/r1/img/tar/image.tar",
            "/branches/main/t1/build/deb/libfoo_1.2.deb"
        ]
    );
    assert_eq!(
        urls(&s, "branch:2.* name:*.tar"),
        ["/branches/2.x/r1/img/tar/image.tar"]
    );
    assert_eq!(
        urls(&s, "tag:t2 format:docs"),
        ["/branches/main/t2/build/docs/"]
    );
    assert_eq!(urls(&s, "t2 docs"), ["/branches/main/t2/build/docs/"]);
    assert_eq!(urls(&s, "locked:yes"), ["/branches/main/t1/build/"]);
    assert_eq!(urls(&s, "stable:true"), ["/branches/2.x/r1/img/"]);
    assert!(urls(&s, "released:yes").is_empty());
    assert_eq!(
        urls(&s, "locked:no stable:no kind:job"),
        ["/branches/main/t2/build/"]
    );
    assert_eq!(urls(&s, "after:2000-01-01 before:2000-01-02").len(), 0);
    assert_eq!(urls(&s, "after:2000-01-01T00:00:00Z kind:job").len(), 3);
    assert!(urls(&s, "before:2000-01-01").is_empty());
    // Newest first: t2 was made after t1.
    assert_eq!(
        urls(&s, "name:libfoo*"),
        [
            "/branches/main/t2/build/deb/libfoo_1.3.deb",
            "/branches/main/t1/build/deb/libfoo_1.2.deb"
        ]
    );
}

#[test]
fn results_say_what_they_are() {
    let s = tree();
    let r = search_as(&s, "libfoo_1.2", "", &[]);
    let hit = &r.json()["results"][0];
    assert_eq!(hit["kind"], "file");
    assert_eq!(hit["digest"], digest_of(b"foo12"));
    assert_eq!(hit["size"], 5);
    assert_eq!(hit["job"], "/branches/main/t1/build/");
    assert_eq!(hit["locked"], true);
    assert!(hit["timestamp"].as_f64().unwrap_or(0.0) > 1e9);
    let r = search_as(&s, "product=foo kind:job", "", &[]);
    let job = &r.json()["results"][0];
    assert_eq!(job["product_version"], "/products/foo/x/1/1.2/");
    assert_eq!(job["metadata"]["version"], "1.2");
    let r = search_as(&s, "foo 1.2 kind:product", "", &[]);
    let version = &r.json()["results"][0];
    assert_eq!(version["kind"], "product", "{}", r.text());
    assert_eq!(version["url"], "/products/foo/x/1/1.2/");
    assert_eq!(version["jobs"], json!(["/branches/main/t1/build/"]));
    assert_eq!(version["metadata"]["product_branch"], "1");
    assert_eq!(
        (&version["locked"], &version["stable"]),
        (&json!(false), &json!(false)),
        "the flags of its jobs' tags"
    );
    assert!(version.get("job").is_none());
    assert!(version["timestamp"].as_f64().unwrap_or(0.0) > 1e9);
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
}

#[test]
fn bad_queries_say_why() {
    let s = App::start();
    for (q, why) in [
        ("/search?q=locked:maybe", "locked: takes yes, no"),
        ("/search?q=after:soon", "bad date"),
        (
            "/search?q=kind:tag",
            "kind: takes job, format, file, image or product",
        ),
        ("/search?q=digest:sha256:xyz", "digest: takes algo:hex"),
        ("/search?limit=0", "limit: a number from 1 to 1000"),
        ("/search?limit=ten", "limit: a number"),
        ("/search?cursor=%21", "bad cursor"),
    ] {
        let r = s.get(q);
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().contains(why), "{q}: {}", r.text());
    }
    // More than the most is the most, not an error.
    assert_eq!(s.get("/search?q=x&limit=5000").status, 200);
    assert_eq!(s.get("/~alice/search").status, 404);
}

#[test]
fn pages_are_stable_when_things_arrive() {
    let s = App::start();
    for i in 0..5 {
        assert_eq!(
            s.put_file(&format!("/branches/b/t/j{i}/f/a.txt"), b"a")
                .status,
            201
        );
    }
    let first = search_as(&s, "a.txt", "&limit=2", &[]);
    let next = first.json()["next"].as_str().unwrap_or_default().to_owned();
    assert!(!next.is_empty());
    assert_eq!(s.put_file("/branches/b/t/new/f/a.txt", b"a").status, 201);
    let second = search_as(&s, "a.txt", &format!("&limit=2&cursor={}", enc(&next)), &[]);
    let next = second.json()["next"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let third = search_as(&s, "a.txt", &format!("&limit=2&cursor={}", enc(&next)), &[]);
    assert!(third.json()["next"].is_null());
    let all: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|r| url_list(r))
        .collect();
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(
        sorted(all.clone())
            .windows(2)
            .filter(|w| w[0] == w[1])
            .count(),
        0
    );
    assert!(
        !all.iter().any(|u| u.contains("/new/")),
        "the newer one sorts before page 1"
    );
    // The next search from the start has it, first; a delete takes it away at once.
    assert_eq!(urls(&s, "a.txt")[0], "/branches/b/t/new/f/a.txt");
    assert_eq!(s.delete("/branches/b/t/new/").status, 200);
    assert_eq!(urls(&s, "a.txt").len(), 5);
}

#[test]
fn callers_see_only_what_they_may_read() {
    let st: access::Setup<App> = access::start(&[]);
    let s = &st.server;
    for (who, url) in [
        ("alice", "/branches/dev/t/j/f/x.txt"),
        ("alice", "/~alice/branches/b/t/j/f/x.txt"),
        ("carol", "/~carol/branches/b/t/j/f/x.txt"),
    ] {
        assert_eq!(as_user(s, who, "PUT", url, Some(b"x")).status, 201, "{url}");
    }
    // Nobody here may write the secret branch: it comes from another writer.
    let job = s.path("branches/secret/t/j");
    std::fs::create_dir_all(job.join("f")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(job.join(".stamp"), b"").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(job.join("f/x.txt"), b"x").unwrap_or_else(|e| panic!("{e}"));
    let digests = format!("{{\"x.txt\": \"{}\"}}", digest_of(b"x"));
    std::fs::write(job.join("f/.digests"), digests).unwrap_or_else(|e| panic!("{e}"));
    let found = |user: &str, pw: &str| {
        let auth = basic(user, pw);
        let r = search_as(s, "x.txt", "", &[("Authorization", &auth)]);
        assert_eq!(r.status, 200, "{user}");
        sorted(url_list(&r))
    };
    assert_eq!(
        found("alice", "secret"),
        [
            "/branches/dev/t/j/f/x.txt",
            "/~alice/branches/b/t/j/f/x.txt"
        ]
    );
    assert_eq!(
        found("carol", "c:ol:on"),
        [
            "/branches/dev/t/j/f/x.txt",
            "/~carol/branches/b/t/j/f/x.txt"
        ]
    );
    // ursula (`ru /branches/**`) reads the secret branch, no user repository.
    assert_eq!(
        found("ursula", "pw"),
        ["/branches/dev/t/j/f/x.txt", "/branches/secret/t/j/f/x.txt"]
    );
    // A page of one for alice: the hidden results behind it make no next page.
    let auth = basic("alice", "secret");
    let r = search_as(s, "x.txt", "&limit=1", &[("Authorization", &auth)]);
    let next = r.json()["next"].as_str().unwrap_or_default().to_owned();
    let r = search_as(
        s,
        "x.txt",
        &format!("&limit=1&cursor={}", enc(&next)),
        &[("Authorization", &auth)],
    );
    assert_eq!(url_list(&r).len(), 1);
    assert!(r.json()["next"].is_null(), "{}", r.text());
    assert_eq!(r.header("cache-control"), Some("private, no-store"));
    // Anonymous callers may not read `/` here: no search.
    assert_eq!(s.get("/search?q=x").status, 401);
    assert_eq!(
        search_as(s, "x", "", &[("Authorization", &basic("alice", "wrong"))]).status,
        401
    );
}

#[test]
fn browsers_get_a_page_and_every_page_a_search_box() {
    let s = tree();
    let html = [("Accept", "text/html")];
    let r = s.request("GET", "/branches/", &html, None);
    assert!(
        r.text()
            .contains(r#"<form class="search" action="/search""#),
        "{}",
        r.text()
    );
    let r = s.request("GET", "/search", &html, None);
    assert_eq!(r.status, 200);
    assert!(r.text().contains("name:*.deb"));
    search_as(&s, "x", "", &[]);
    let r = s.request(
        "GET",
        &format!("/search?q={}&limit=1", enc("libfoo")),
        &html,
        None,
    );
    let page = r.text();
    assert!(
        page.contains(r#"href="/branches/main/t2/build/deb/libfoo_1.3.deb""#),
        "{page}"
    );
    assert!(page.contains(r#"rel="next""#), "{page}");
    assert!(!page.contains("still being built"));
    let r = s.request("GET", "/search?q=kind%3Aproduct", &html, None);
    let page = r.text();
    assert!(
        page.contains(r#"<td>product version</td><td><a href="/products/foo/x/1/1.2/">"#),
        "{page}"
    );
}

#[test]
fn registry_pushes_are_images_and_their_digests_files() {
    use crate::shared::oci_workflows::{LAYER, config, image_manifest, push_blob, put_manifest};
    let s = App::start();
    assert!(urls(&s, "kind:image").is_empty());
    let push = |author: &str| {
        let cfg = config(author);
        push_blob(&s, "main/app", &cfg);
        push_blob(&s, "main/app", LAYER);
        let m = image_manifest(&cfg);
        assert_eq!(put_manifest(&s, "main/app", "V1", &m).status, 201);
        digest_of(&m)
    };
    let first = push("one");
    assert_eq!(urls(&s, "kind:image"), ["/branches/main/v1/app/container/"]);
    let r = search_as(&s, "app kind:image", "", &[]);
    assert_eq!(r.json()["results"][0]["image"], "main/app:v1");
    let layer = urls(&s, &format!("digest:{}", digest_of(LAYER)));
    assert_eq!(layer.len(), 1);
    assert!(
        layer[0].starts_with("/branches/main/v1/app/container/blobs/sha256/"),
        "{layer:?}"
    );
    // A second push into the same job changes only directories below the format.
    let second = push("two");
    assert_ne!(first, second);
    let found = urls(&s, &format!("digest:{second}"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("/container/manifests/sha256/"));
}

#[test]
fn product_versions_show_only_to_who_may_read_them() {
    let st: access::Setup<App> = access::start(&[]);
    let s = &st.server;
    let job = "/~alice/branches/b/t/j/";
    let put = as_user(s, "alice", "PUT", &format!("{job}f/x.txt"), Some(b"x"));
    assert_eq!(put.status, 201);
    let meta = br#"{"job": {"product": "P", "product_variant": "v", "product_branch": "pb", "version": "1.0"}}"#;
    let r = as_user(s, "alice", "PATCH", job, Some(meta));
    assert_eq!(r.status, 200, "{}", r.text());
    let found = |user: &str, pw: &str, q: &str| {
        let r = search_as(s, q, "", &[("Authorization", &basic(user, pw))]);
        assert_eq!(r.status, 200, "{user}");
        url_list(&r)
    };
    let version = "/~alice/products/p/v/pb/1.0/";
    assert_eq!(found("alice", "secret", "kind:product"), [version]);
    assert_eq!(found("alice", "secret", "alice 1.0"), [version, job]);
    // Pages of one: the version, then its job, then nothing.
    let auth = basic("alice", "secret");
    let mut cursor = String::new();
    let mut pages = Vec::new();
    loop {
        let extra = format!("&limit=1&cursor={}", enc(&cursor));
        let r = search_as(s, "alice 1.0", &extra, &[("Authorization", &auth)]);
        pages.extend(url_list(&r));
        match r.json()["next"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, [version, job]);
    for (user, pw) in [("carol", "c:ol:on"), ("ursula", "pw")] {
        assert!(found(user, pw, "").is_empty(), "{user}");
        assert!(found(user, pw, "product=p").is_empty(), "{user}");
    }
}

#[test]
fn images_carry_their_manifest_digest() {
    use crate::shared::oci_workflows::{LAYER, config, image_manifest, push_blob, put_manifest};
    let s = App::start();
    let cfg = config("me");
    push_blob(&s, "main/app", &cfg);
    push_blob(&s, "main/app", LAYER);
    let m = image_manifest(&cfg);
    assert_eq!(put_manifest(&s, "main/app", "v1", &m).status, 201);
    let r = search_as(&s, "kind:image", "", &[]);
    let image = &r.json()["results"][0];
    assert_eq!(image["url"], "/branches/main/v1/app/container/");
    assert_eq!(image["digest"], digest_of(&m), "{}", r.text());
    assert_eq!(image["image"], "main/app:v1");
}
