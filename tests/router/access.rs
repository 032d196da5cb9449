//! Access control with a real auth file and ACL directory (spec/AUTH.md): modes, letters,
//! patterns, listing filters, the two dlrepo holes (Q1, Q2). Reloads on a signal and API
//! tokens made by `arbor token` are in tests/blackbox/access.rs.

use crate::common;
use crate::shared::access::{self, Setup, as_user, assert_denied};
use crate::shared::auth::basic;
use common::*;

fn start(extra: &[(&str, &str)]) -> Setup<App> {
    access::start(extra)
}

#[test]
fn each_letter_allows_exactly_its_methods() {
    let st = start(&[]);
    let s = &st.server;
    assert_eq!(
        as_user(s, "alice", "PUT", "/branches/dev/t/j/f/a", Some(b"a")).status,
        201
    );
    // ursula has `ru`: update yes; add and delete no.
    let before = snapshot(s.root.path());
    assert_denied(&as_user(
        s,
        "ursula",
        "PUT",
        "/branches/dev/t/j/f/b",
        Some(b"b"),
    ));
    assert_denied(&as_user(
        s,
        "ursula",
        "PATCH",
        "/branches/dev/t/j/",
        Some(br#"{"job": {"k": "v"}}"#),
    ));
    assert_denied(&as_user(s, "ursula", "DELETE", "/branches/dev/t/j/", None));
    assert_eq!(before, snapshot(s.root.path()));
    assert_eq!(
        as_user(
            s,
            "ursula",
            "POST",
            "/branches/dev/t/",
            Some(br#"{"tag": {"locked": true}}"#)
        )
        .status,
        200
    );
    assert!(s.path("branches/dev/t/.locked").exists());
    // The v0.30 PUT spelling of a tag update needs `u` too.
    assert_eq!(
        as_user(
            s,
            "ursula",
            "PUT",
            "/branches/dev/t/",
            Some(br#"{"tag": {"locked": false}}"#)
        )
        .status,
        200
    );
    assert_eq!(
        as_user(s, "alice", "DELETE", "/branches/dev/t/j/", None).status,
        200
    );
    // Wrong password, unknown user: 401 at once.
    assert_denied(&s.request(
        "GET",
        "/branches/",
        &[("Authorization", &basic("alice", "nope"))],
        None,
    ));
    assert_denied(&s.request(
        "GET",
        "/branches/",
        &[("Authorization", &basic("mallory", "x"))],
        None,
    ));
    // A password holding colons (carol:c:ol:on:devs).
    assert_eq!(as_user(s, "carol", "GET", "/branches/", None).status, 200);
}

#[test]
fn exclusions_match_the_canonical_path() {
    // spec/API.md Q2: dlrepo matched the raw path, so upper case slipped past the exclusion.
    let st = start(&[]);
    let s = &st.server;
    std::fs::create_dir_all(s.path("branches/secret/t/j")).unwrap();
    for path in [
        "/branches/SECRET/t/j/",
        "/branches/Secret/T/J/",
        "/branches/%53ECRET/t/j/",
    ] {
        assert_denied(&as_user(s, "alice", "DELETE", path, None));
    }
    assert!(s.path("branches/secret/t/j").exists());
    assert_denied(&as_user(s, "alice", "GET", "/branches/SECRET/", None));
    // Listings hide what cannot be read.
    as_user(s, "alice", "PUT", "/branches/dev/t/j/f/a", Some(b"a"));
    let names: Vec<String> = as_user(s, "alice", "GET", "/branches/", None).json()["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["dev"]);
}

#[test]
fn user_repositories_follow_user_acls_and_stay_closed_to_others() {
    let st = start(&[]);
    let s = &st.server;
    assert_eq!(
        as_user(s, "carol", "PUT", "/~carol/branches/b/t/j/f/a", Some(b"a")).status,
        201
    );
    assert_eq!(
        as_user(s, "carol", "PUT", "/~Carol/branches/b/t/j/f/b", Some(b"b")).status,
        201
    );
    assert_eq!(
        as_user(s, "carol", "GET", "/~carol/branches/b/t/j/f/a", None).body,
        b"a"
    );
    // `ra`: no delete in her own repository; nothing at all in another one.
    assert_denied(&as_user(s, "carol", "DELETE", "/~carol/branches/b/", None));
    assert_denied(&as_user(
        s,
        "carol",
        "PUT",
        "/~alice/branches/b/t/j/f/a",
        Some(b"a"),
    ));
    assert_denied(&as_user(s, "carol", "GET", "/~alice/branches/", None));
    // spec/API.md Q1: no way to the root repository through the user prefix.
    for path in [
        "/~../branches/dev/t/j/f/x",
        "/%7E../branches/dev/t/j/f/x",
        "/~carol/../branches/dev/t/j/f/x",
    ] {
        let r = as_user(s, "carol", "PUT", path, Some(b"x"));
        assert!(r.status == 401 || r.status == 404, "{path}: {}", r.status);
    }
    assert!(!s.path("branches/dev/t/j/f/x").exists());
    // Doubled or encoded slashes do not escape a prefix either.
    for path in [
        "/~carol//branches/b/t/j/f/y",
        "/~carol/branches/b%2F..%2F..%2F..%2Fbranches/t/j/f/y",
    ] {
        let r = as_user(s, "carol", "PUT", path, Some(b"y"));
        assert!(r.status == 401 || r.status == 404, "{path}: {}", r.status);
    }
}

#[test]
fn trusted_proxy_headers_identify_the_caller() {
    let st = start(&[
        ("DLREPO_AUTH_HTTP_LOGIN_HEADER", "X-Remote-User"),
        ("DLREPO_AUTH_HTTP_GROUPS_HEADER", "X-Remote-Groups"),
    ]);
    let s = &st.server;
    let d = digest_of(b"a");
    // Group items are trimmed (spec/API.md Q34).
    let r = s.request(
        "PUT",
        "/branches/dev/t/j/f/a",
        &[
            ("X-Remote-User", "dave"),
            ("X-Remote-Groups", "readers, devs"),
            ("Digest", &d),
        ],
        Some(b"a"),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.request(
        "PUT",
        "/branches/dev/t/j/f/b",
        &[
            ("X-Remote-User", "dave"),
            ("X-Remote-Groups", "readers"),
            ("Digest", &d),
        ],
        Some(b"a"),
    );
    assert_denied(&r);
    // Basic credentials are ignored in header mode.
    assert_denied(&s.request(
        "PUT",
        "/branches/dev/t/j/f/c",
        &[("Authorization", &basic("alice", "secret")), ("Digest", &d)],
        Some(b"a"),
    ));
}

#[test]
fn aliases_and_products_only_consider_readable_entries() {
    let st = start(&[]);
    let s = &st.server;
    for (branch, tag) in [("dev", "old"), ("secret", "new")] {
        as_user(
            s,
            "alice",
            "PUT",
            &format!("/branches/{branch}/{tag}/j/f/a"),
            Some(b"a"),
        );
    }
    // Write the secret tag by hand: alice cannot write there.
    std::fs::create_dir_all(s.path("branches/dev/zzz-hidden")).unwrap();
    std::fs::write(s.path("branches/dev/zzz-hidden/.stamp"), b"").unwrap();
    std::fs::write(st.acls.join("readers"), "r /\nr /branches/\n").unwrap();
    std::fs::write(
        st.acls.join("devs"),
        "rw /branches/** !/branches/secret/** !/branches/dev/zzz-hidden/**\n",
    )
    .unwrap();
    s.reload_auth();
    // The newest tag of dev is hidden: `latest` must resolve to the readable one.
    let r = as_user(s, "alice", "GET", "/branches/dev/", None);
    assert_eq!(r.json()["branch"]["tags"].as_array().unwrap().len(), 1);
    let r = as_user(s, "alice", "GET", "/branches/dev/latest/", None);
    assert_eq!(r.header("location"), Some("/branches/dev/old/"));
}

/// An ACL that hides single files of a readable format (spec/AUTH.md globs on artifact
/// URLs) hides them everywhere the format's content shows: its listings and sums, its
/// bundles and those of its job and product version, its pages, and the `{format}`
/// redirect. The admin, who may read them, still gets them.
#[test]
fn files_hidden_one_by_one_stay_hidden_in_listings_sums_bundles_and_pages() {
    use crate::shared::auth::Secured;
    use serde_json::json;
    let s = Secured::<App>::start(
        &[
            ("admin", "pw", "admins"),
            ("dave", "pw", "fine"),
            ("erin", "pw", "products"),
        ],
        &[
            ("admins", "rw /**\n"),
            ("products", "r /products/**\n"),
            (
                "fine",
                "r /branches/** !/branches/pub/t1/j1/fmt/hidden.txt \
                 !/branches/pub/t1/j1/docs/index.html !/branches/pub/t1/j1/single/only.bin\n\
                 r /products/** !/products/pub/v/pb/1.0/fmt/hidden.txt\n",
            ),
        ],
    );
    let job = "/branches/pub/t1/j1";
    for (rel, data) in [
        ("fmt/pub.txt", &b"PUBLIC"[..]),
        ("fmt/hidden.txt", b"HIDDEN-IN-PUB"),
        ("docs/index.html", b"<p>HIDDEN-INDEX</p>"),
        ("docs/a.txt", b"a"),
        ("single/only.bin", b"HIDDEN-ONLY"),
    ] {
        let r = s.put("admin", &format!("{job}/{rel}"), data);
        assert_eq!(r.status, 201, "{rel}: {}", r.text());
    }
    for f in ["fmt", "docs", "single"] {
        let r = s.send("admin", "PATCH", &format!("{job}/{f}/"), &[], Some(b""));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let meta = json!({"job": {"product": "pub", "product_variant": "v",
                              "product_branch": "pb", "version": "1.0"}});
    let r = s.json("admin", "PATCH", &format!("{job}/"), &meta);
    assert_eq!(r.status, 200, "{}", r.text());

    let listing = s.get("dave", &format!("{job}/fmt/")).json();
    assert_eq!(listing["artifact_format"]["files"], json!(["pub.txt"]));
    for path in [
        format!("{job}/fmt/?details"),
        format!("{job}/fmt.sha256"),
        format!("{job}/fmt.tar"),
        format!("{job}.tar"),
        format!("{job}.zip"),
        "/products/pub/v/pb/1.0.tar".to_owned(),
        "/products/pub/v/pb/1.0/fmt/".to_owned(),
        "/products/pub/v/pb/1.0/fmt/?details".to_owned(),
        "/products/pub/v/pb/1.0/fmt.sha256".to_owned(),
    ] {
        let r = s.get("dave", &path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let body = String::from_utf8_lossy(&r.body);
        assert!(body.contains("pub.txt"), "{path}: {body}");
        assert!(!body.contains("hidden.txt"), "{path} shows a hidden file");
        assert!(
            !body.contains("HIDDEN-IN-PUB"),
            "{path} holds a hidden file"
        );
        // The control: someone who may read them gets them.
        let all = s.get("admin", &path);
        assert!(
            String::from_utf8_lossy(&all.body).contains("hidden.txt"),
            "{path}"
        );
    }
    assert_eq!(
        s.get("dave", &format!("{job}/fmt/hidden.txt.sha256"))
            .status,
        404
    );
    assert_eq!(
        s.get("dave", &format!("{job}/fmt/pub.txt.sha256")).status,
        200
    );
    assert_eq!(
        s.get("admin", &format!("{job}/fmt/hidden.txt.sha256"))
            .status,
        200
    );

    // Pages: the listing leaves the file out; a hidden index.html is not shown for its
    // directory, which lists what may be read instead.
    let page = |login: &str, path: &str| {
        let r = s.send(login, "GET", path, &[("Accept", "text/html")], None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        r.text()
    };
    assert!(!page("dave", &format!("{job}/fmt/")).contains("hidden.txt"));
    let docs = page("dave", &format!("{job}/docs/"));
    assert!(
        !docs.contains("HIDDEN-INDEX") && docs.contains("a.txt"),
        "{docs}"
    );
    assert!(page("admin", &format!("{job}/docs/")).contains("HIDDEN-INDEX"));

    // A product version's page links the job each format comes from only for those who
    // may read it.
    let version = "/products/pub/v/pb/1.0/";
    assert!(page("admin", version).contains(&format!("{job}/")));
    assert!(!page("erin", version).contains(&format!("{job}/")));

    // The redirect of a format of one file never names a file the caller may not read.
    let r = s.get("dave", &format!("{job}/single"));
    assert_eq!(r.status, 302);
    assert!(
        !r.header("location")
            .unwrap_or_default()
            .contains("only.bin")
    );
    let r = s.get("admin", &format!("{job}/single"));
    assert!(
        r.header("location")
            .unwrap_or_default()
            .ends_with("/single/only.bin")
    );
}
