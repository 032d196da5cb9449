//! Branches, tags and jobs through the JSON API, checked on the response and on disk.

use crate::common;
use common::*;
use serde_json::json;

fn seed(s: &App) {
    s.upload_format("/branches/main/t1/job1/fmt/", &[("f1.txt", b"one")]);
    s.upload_format("/branches/main/t2/job1/fmt/", &[("f1.txt", b"two")]);
}

#[test]
fn branches_listing_counts_tags_and_policy() {
    let s = App::start();
    assert_eq!(s.get("/branches/").json(), json!({"branches": []}));
    seed(&s);
    assert_eq!(
        s.send_json(
            "POST",
            "/branches/main/t1/",
            &json!({"tag": {"locked": true, "stable": true}})
        )
        .status,
        200
    );
    let r = s.get("/branches/");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        r.text(),
        r#"{"branches": [{"name": "main", "daily_tags": 2, "released_tags": 0, "locked_tags": 1, "stable_tags": 1, "max_daily_tags": 0, "max_released_tags": 0}]}"#
    );
    let r = s.get("/branches");
    assert_eq!((r.status, r.header("location")), (302, Some("/branches/")));
    assert_eq!(r.text(), "302: Found");
}

#[test]
fn branch_get_lists_tags_and_redirects() {
    let s = App::start();
    seed(&s);
    assert_eq!(s.get("/branches/nope/").status, 404);
    let r = s.get("/branches/MAIN");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/branches/main/"))
    );
    let b = s.get("/branches/MAIN/").json();
    // spec/API.md Q5: the name is the canonical one.
    assert_eq!(b["branch"]["name"], "main");
    assert_eq!(
        b["branch"]["cleanup_policy"],
        json!({"max_daily_tags": 0, "max_released_tags": 0})
    );
    let tags = b["branch"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[0]["name"], "t1");
    assert!(tags[0]["timestamp"].as_f64().unwrap() > 1e9);
    assert_eq!(tags[0]["description"], json!(null));
    // Only released tags with any `released` parameter.
    assert_eq!(
        s.get("/branches/main/?released=1").json()["branch"]["tags"],
        json!([])
    );
    assert_eq!(
        s.get("/branches/main/?").json()["branch"]["tags"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn cleanup_policy_both_forms_and_validation() {
    let s = App::start();
    seed(&s);
    let r = s.send_json(
        "POST",
        "/branches/main/",
        &json!({"branch": {"max_daily_tags": 5}}),
    );
    assert_eq!((r.status, r.body.len()), (200, 0));
    // The manuals' top-level form and the v0.30 PUT (spec/API.md §8, Q47).
    assert_eq!(
        s.send_json("PUT", "/branches/main/", &json!({"max_released_tags": 2}))
            .status,
        200
    );
    assert_eq!(
        std::fs::read_to_string(s.path("branches/main/.cleanup_policy")).unwrap(),
        r#"{"max_daily_tags": 5, "max_released_tags": 2}"#
    );
    for bad in [
        json!({"branch": {"max_daily_tags": -1}}),
        json!({"branch": {"max_daily_tags": true}}),
        json!({"branch": {"max_daily_tags": "3"}}),
        json!({"branch": 3}),
        json!([1]),
    ] {
        let r = s.send_json("POST", "/branches/main/", &bad);
        assert_eq!(
            (r.status, r.text().as_str()),
            (400, "400: invalid parameters"),
            "{bad}"
        );
    }
    let r = s.request("POST", "/branches/main/", &[], Some(b"{nope"));
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("400: invalid JSON data: "),
        "{}",
        r.text()
    );
    assert_eq!(
        s.send_json("POST", "/branches/nope/", &json!({"branch": {}}))
            .status,
        404
    );
    let b = s.get("/branches/").json();
    assert_eq!(b["branches"][0]["max_daily_tags"], 5);
    assert_eq!(b["branches"][0]["max_released_tags"], 2);
}

#[test]
fn tag_state_description_and_job_filter() {
    let s = App::start();
    seed(&s);
    s.send_json(
        "PATCH",
        "/branches/main/t1/job2/",
        &json!({"job": {"product": "Prd", "build": 7}}),
    );
    // Written in mixed case and without the slash: acts on the canonical tag (spec/API.md Q6).
    let r = s.send_json(
        "POST",
        "/branches/main/T1",
        &json!({"tag": {"description": "  hello world \n", "stable": true}}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        std::fs::read_to_string(s.path("branches/main/t1/.description")).unwrap(),
        "hello world\n"
    );
    assert!(s.path("branches/main/t1/.stable").exists());
    let r = s.get("/branches/main/T1/");
    assert_eq!(
        (r.status, r.header("location")),
        (302, Some("/branches/main/t1/"))
    );
    let t = s.get("/branches/main/t1/").json();
    assert_eq!(
        serde_json::to_string(&t).unwrap(),
        serde_json::to_string(&json!({"tag": {"name": "t1", "released": false, "locked": false, "stable": true,
            "publish_status": null, "description": "hello world",
            "jobs": [{"locked": false, "name": "job1", "released": false},
                     {"build": "7", "product": "prd", "locked": false, "name": "job2", "released": false}]}})).unwrap()
    );
    let names = |q: &str| -> Vec<String> {
        s.get(&format!("/branches/main/t1/?{q}")).json()["tag"]["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names("product=prd"), ["job2"]);
    assert_eq!(names("locked=False"), ["job1", "job2"]);
    assert_eq!(names("locked=false"), Vec::<String>::new());
    // Empty description removes the file; wrong types are refused.
    assert_eq!(
        s.send_json(
            "POST",
            "/branches/main/t1/",
            &json!({"tag": {"description": ""}})
        )
        .status,
        200
    );
    assert!(!s.path("branches/main/t1/.description").exists());
    let r = s.send_json(
        "POST",
        "/branches/main/t1/",
        &json!({"tag": {"locked": "yes"}}),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: invalid parameters")
    );
    let r = s.send_json(
        "POST",
        "/branches/main/t1/",
        &json!({"tag": {"released": true}}),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (421, "421: DLREPO_PUBLISH_URL is undefined")
    );
    assert_eq!(
        s.send_json("POST", "/branches/main/nope/", &json!({"tag": {}}))
            .status,
        404
    );
}

#[test]
fn aliases_pick_by_stamp_age() {
    let s = App::start();
    for t in ["a", "b", "c"] {
        s.upload_format(&format!("/branches/br/{t}/j/f/"), &[("x", t.as_bytes())]);
    }
    // Make ages explicit: c oldest, a newest.
    for (t, age) in [("a", 10), ("b", 20), ("c", 30)] {
        let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
        std::fs::File::options()
            .write(true)
            .open(s.path(&format!("branches/br/{t}/.stamp")))
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let loc = |p: &str| s.get(p).header("location").map(str::to_owned);
    assert_eq!(
        loc("/branches/br/latest/").as_deref(),
        Some("/branches/br/a/")
    );
    assert_eq!(s.get("/branches/br/stable/").status, 404);
    for t in ["b", "c"] {
        s.send_json(
            "POST",
            &format!("/branches/br/{t}/"),
            &json!({"tag": {"stable": true}}),
        );
    }
    assert_eq!(
        loc("/branches/br/stable/").as_deref(),
        Some("/branches/br/b/")
    );
    assert_eq!(
        loc("/branches/br/oldstable/").as_deref(),
        Some("/branches/br/c/")
    );
    assert_eq!(
        loc("/branches/br/stable/j/f/x").as_deref(),
        Some("/branches/br/b/j/f/x")
    );
    assert_eq!(
        loc("/branches/br/latest/j.tar").as_deref(),
        Some("/branches/br/a/j.tar")
    );
    // Writes through an alias are refused with the documented Allow lists.
    let r = s.send_json("POST", "/branches/br/latest/", &json!({"tag": {}}));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET,HEAD")));
    let r = s.send_json("PATCH", "/branches/br/latest/j/", &json!({"job": {}}));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = s.put_file("/branches/br/stable/j/f/y", b"y");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    let r = s.delete("/branches/br/stable/j/f/");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
    assert!(s.path("branches/br/b/j/f/x").exists());
}

#[test]
fn job_metadata_lock_and_digest() {
    let s = App::start();
    // PATCH creates the branch, tag and job (spec/API.md Q15) with their stamps.
    let r = s.send_json("PATCH", "/branches/B/T/J/", &json!({"job": {"Build": 42, "f": 1.50, "l": [true, null], "z": "\u{e9}cole", "gone": false}}));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(s.path("branches/b/t/.stamp").exists() && s.path("branches/b/t/j/.stamp").exists());
    assert_eq!(
        std::fs::read_to_string(s.path("branches/b/t/j/.metadata")).unwrap(),
        r#"{"Build": "42", "f": "1.5", "l": "[true, none]", "z": "\u00e9cole"}"#
    );
    s.send_json(
        "PATCH",
        "/branches/b/t/j/",
        &json!({"f": 0, "job": {"f": 0}}),
    );
    s.upload_format("/branches/b/t/j/fmt/", &[("a.txt", b"a")]);
    let j = s.get("/branches/b/t/j/").json();
    assert_eq!(j["job"]["digest"], "");
    assert_eq!(j["job"]["artifact_formats"], json!(["fmt"]));
    assert_eq!(
        s.get("/branches/b/t/J").header("location"),
        Some("/branches/b/t/j/")
    );
    // Lock: computes .digest exactly as dlrepo (spec/LAYOUT.md §3.4).
    let r = s.send_json("PUT", "/branches/b/t/j/", &json!({"job": {"locked": true}}));
    assert_eq!(r.status, 200, "{}", r.text());
    let digests = std::fs::read(s.path("branches/b/t/j/fmt/.digests")).unwrap();
    let meta = std::fs::read(s.path("branches/b/t/j/.metadata")).unwrap();
    let input = format!(
        r#"{{".metadata": "sha256:{}", "fmt": "sha256:{}"}}"#,
        sha256_hex(&meta),
        sha256_hex(&digests)
    );
    let digest = std::fs::read_to_string(s.path("branches/b/t/j/.digest")).unwrap();
    assert_eq!(digest, sha256_hex(input.as_bytes()));
    assert_eq!(
        s.get("/branches/b/t/j/").json()["job"]["digest"],
        digest.as_str()
    );
    // Locked: no uploads, no metadata, no internal flag.
    let r = s.put_file("/branches/b/t/j/fmt/b.txt", b"b");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Cannot upload files in locked jobs")
    );
    let r = s.send_json("PATCH", "/branches/b/t/j/", &json!({"job": {"x": "1"}}));
    assert_eq!((r.status, r.text().as_str()), (400, "400: Job is locked"));
    let r = s.send_json(
        "PUT",
        "/branches/b/t/j/",
        &json!({"job": {"internal": true}}),
    );
    assert_eq!((r.status, r.text().as_str()), (400, "400: Job is locked"));
    let r = s.delete("/branches/b/t/j/fmt/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Cannot delete format: job is locked")
    );
    // Unlock by POST; POST with anything else is invalid.
    let r = s.send_json(
        "POST",
        "/branches/b/t/j/",
        &json!({"job": {"locked": true}}),
    );
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Invalid parameters")
    );
    assert_eq!(
        s.send_json(
            "POST",
            "/branches/b/t/j/",
            &json!({"job": {"locked": false}})
        )
        .status,
        200
    );
    assert!(!s.path("branches/b/t/j/.locked").exists());
    assert_eq!(
        s.send_json(
            "PUT",
            "/branches/b/t/j/",
            &json!({"job": {"internal": true}})
        )
        .status,
        200
    );
    assert!(s.path("branches/b/t/j/.internal").exists());
    assert_eq!(s.get("/branches/b/t/j/").json()["job"]["internal"], true);
    assert_eq!(
        s.send_json("PUT", "/branches/b/t/nope/", &json!({"job": {}}))
            .status,
        200
    );
    assert_eq!(
        s.send_json(
            "PUT",
            "/branches/b/t/nope/",
            &json!({"job": {"locked": true}})
        )
        .status,
        404
    );
    assert_eq!(
        s.send_json("PUT", "/branches/b/t/j/", &json!({"job": 3}))
            .status,
        400
    );
}

#[test]
fn dirty_formats_block_locking() {
    let s = App::start();
    assert_eq!(s.put_file("/branches/b/t/j/fmt/a", b"a").status, 201);
    assert!(s.path("branches/b/t/j/fmt/.dirty").exists());
    let r = s.send_json("PUT", "/branches/b/t/j/", &json!({"job": {"locked": true}}));
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Job has dirty formats")
    );
    assert_eq!(s.head("/branches/b/t/j/fmt/").status, 404);
    assert_eq!(s.head("/branches/b/t/j/fmt.tar").status, 404);
    assert_eq!(s.get("/branches/b/t/j/fmt").status, 404);
    assert_eq!(
        s.request("PATCH", "/branches/b/t/j/fmt/", &[], None).status,
        200
    );
    assert!(!s.path("branches/b/t/j/fmt/.dirty").exists());
    assert_eq!(s.head("/branches/b/t/j/fmt/").status, 200);
}

#[test]
fn deletes_respect_tag_locks_and_release() {
    let s = App::start();
    seed(&s);
    let before = snapshot(s.root.path());
    s.send_json(
        "POST",
        "/branches/main/t2/",
        &json!({"tag": {"locked": true}}),
    );
    let r = s.delete("/branches/main/t2/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Tag t2 is locked")
    );
    let r = s.delete("/branches/main/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Tag t2 is locked")
    );
    // ?force is accepted and ignored (spec/API.md §8).
    assert_eq!(s.delete("/branches/main/t2/?force").status, 400);
    std::fs::File::create(s.path("branches/main/t1/.released")).unwrap();
    let r = s.delete("/branches/main/t1/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (400, "400: Tag t1 is released, unrelease it first")
    );
    std::fs::remove_file(s.path("branches/main/t1/.released")).unwrap();
    s.send_json(
        "POST",
        "/branches/main/t2/",
        &json!({"tag": {"locked": false}}),
    );
    assert_eq!(before, snapshot(s.root.path()));
    // A job lock does not protect against a job, tag or branch delete (spec/API.md Q45).
    s.send_json(
        "PUT",
        "/branches/main/t1/job1/",
        &json!({"job": {"locked": true}}),
    );
    let blob = s.path(&format!(".blobs/sha256/{}", {
        let h = sha256_hex(b"one");
        format!("{}/{}", &h[..2], h)
    }));
    assert_eq!(nlink(&blob), 2);
    assert_eq!(s.delete("/branches/main/t1/job1/").status, 200);
    assert_eq!(nlink(&blob), 1);
    assert_eq!(s.delete("/branches/main/t1/job1/").status, 404);
    assert_eq!(s.delete("/branches/main/t1/").status, 200);
    assert_eq!(s.delete("/branches/main").status, 200);
    assert!(!s.path("branches/main").exists());
    assert_eq!(s.get("/branches/").json(), json!({"branches": []}));
}

#[test]
fn large_branch_listing_keeps_order_and_flags() {
    // Enough tags for the listing to be split across threads.
    let s = App::start();
    for i in 0..300 {
        s.send_json(
            "PATCH",
            &format!("/branches/big/t{i:03}/j/"),
            &json!({"job": {"k": "v"}}),
        );
    }
    s.send_json(
        "POST",
        "/branches/big/t150/",
        &json!({"tag": {"locked": true, "description": "mid"}}),
    );
    let tags = s.get("/branches/big/").json()["branch"]["tags"]
        .as_array()
        .unwrap()
        .clone();
    let names: Vec<String> = tags
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..300).map(|i| format!("t{i:03}")).collect();
    assert_eq!(names, expected);
    assert_eq!(
        (
            tags[150]["locked"].as_bool(),
            tags[150]["description"].as_str()
        ),
        (Some(true), Some("mid"))
    );
    assert_eq!(
        (
            tags[149]["locked"].as_bool(),
            tags[151]["description"].as_str()
        ),
        (Some(false), None)
    );
    assert!(
        tags.iter()
            .all(|t| t["timestamp"].as_f64().is_some_and(|f| f > 1e9))
    );
}
