//! Serving uploads safely (spec/API.md Q51, Q52; docs/access.md "Serving artifacts safely"):
//! active artifacts are sandboxed downloads unless the operator opts a tree in, pages carry a
//! strict policy, `Content-Disposition` names are quoted and encoded. That secrets never
//! reach the log is checked on a real server's log, in tests/blackbox/security_headers.rs.

use crate::common;
use crate::shared::safe_serving::{
    ACTIVE, HTML, assert_sandboxed_download, browser_get, disposition,
};
use common::*;
use serde_json::json;

/// An opted-in active artifact: inline, scripts in an opaque origin only.
fn assert_sandboxed_inline(r: &Res, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.starts_with("sandbox allow-scripts "), "{what}: {csp}");
    assert!(!csp.contains("allow-same-origin"), "{what}: {csp}");
    assert_eq!(r.header("content-disposition"), None, "{what}");
}

#[test]
fn a_format_index_page_is_an_artifact_too() {
    let s = App::start();
    s.upload_format(
        "/branches/b/t/j/html/",
        &[("index.html", HTML), ("sub/index.html", HTML)],
    );
    for url in ["/branches/b/t/j/html/", "/branches/b/t/j/html/sub/"] {
        let r = browser_get(&s, url);
        assert_sandboxed_download(&r, "index.html", url);
        assert_eq!(r.body, HTML, "{url}");
    }
}

#[test]
fn an_opted_in_tree_renders_inline_and_sandboxed() {
    let s = App::start_with(&[(
        "DLREPO_INLINE_ACTIVE_FILTER",
        "/branches/docs/|/products/docs/",
    )]);
    for branch in ["docs", "main"] {
        s.upload_format(
            &format!("/branches/{branch}/t/j/html/"),
            &[("index.html", HTML), ("evil.svg", ACTIVE[1].1)],
        );
    }
    let meta = json!({"job": {"product": "docs", "product_variant": "all",
        "product_branch": "1", "version": "1.0"}});
    assert_eq!(
        s.send_json("PATCH", "/branches/docs/t/j/", &meta).status,
        200
    );
    for (url, canonical) in [
        ("/branches/docs/t/j/html/index.html", true),
        ("/branches/docs/t/j/html/evil.svg", true),
        ("/products/docs/all/1/1.0/html/evil.svg", true),
        // Other spellings redirect; the canonical URL is what the filter sees.
        ("/branches/docs/latest/j/html/evil.svg", false),
        ("/branches/DOCS/t/j/html/evil.svg", false),
    ] {
        let mut r = s.get(url);
        if !canonical {
            assert_eq!(r.status, 302, "{url}");
            r = s.get(r.header("location").unwrap_or_default());
        }
        assert_sandboxed_inline(&r, url);
    }
    // The browser view of the format dir shows its index.html the same way.
    let r = browser_get(&s, "/branches/docs/t/j/html/");
    assert_sandboxed_inline(&r, "docs index");
    assert_eq!(r.body, HTML);
    // Elsewhere nothing changed.
    assert_sandboxed_download(
        &browser_get(&s, "/branches/main/t/j/html/"),
        "index.html",
        "main index",
    );
    assert_sandboxed_download(
        &s.get("/branches/main/t/j/html/evil.svg"),
        "evil.svg",
        "main svg",
    );
}

fn assert_page_policy(r: &Res, what: &str) {
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{what}"
    );
    let csp = r.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'self'",
        "script-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{what}: {part} missing from {csp:?}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
}

#[test]
fn pages_carry_a_strict_policy_and_refuse_frames() {
    let s = App::start();
    s.upload_format(
        "/branches/b/t/j/f/",
        &[("dir/a.txt", b"a"), ("b.txt", b"b")],
    );
    for url in [
        "/",
        "/branches/",
        "/branches/b/",
        "/branches/b/t/",
        "/branches/b/t/j/",
        "/branches/b/t/j/f/",
        "/branches/b/t/j/f/dir/",
        "/nope/",
    ] {
        let r = browser_get(&s, url);
        assert_page_policy(&r, url);
    }
    assert_eq!(browser_get(&s, "/nope/").status, 404);
    // The pages themselves load nothing the policy would block: no inline script or style.
    let body = browser_get(&s, "/branches/b/t/j/").text();
    assert!(
        !body.contains("<script") && !body.contains("style="),
        "{body}"
    );
    assert!(body.contains("href=\"/static/dlrepo.css\""), "{body}");
}

#[test]
fn content_disposition_names_are_quoted_and_encoded() {
    let s = App::start();
    // A single-file format: its bare URL redirects to the file and names it.
    s.upload_format(
        "/branches/b/t/j/one/",
        &[("a%3Bb%20%22c%22%5Cd%20%C3%A9.bin", b"x")],
    );
    let r = s.get("/branches/b/t/j/one");
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("a;b _c__d _.bin", "a%3Bb%20%22c%22%5Cd%20%C3%A9.bin").as_str())
    );
    // The plain case keeps its name, now quoted.
    s.upload_format("/branches/b/t/j/two/", &[("only%20file.bin", b"y")]);
    assert_eq!(
        s.get("/branches/b/t/j/two").header("content-disposition"),
        Some(disposition("only file.bin", "only%20file.bin").as_str())
    );

    // Tar bundles are named after the job and tag...
    let job = "/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9/";
    s.upload_format(&format!("{job}f/"), &[("a.txt", b"a")]);
    let r = s.get("/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9.tar");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("j _-t;x=_y__z.tar", "j%20%C3%A9-t%3Bx%3D%22y%22%5Cz.tar").as_str())
    );
    // ... or after the product metadata anyone who may write a job sets.
    let meta = json!({"job": {"product": "p\"q", "product_variant": "v;w",
        "product_branch": "1.0", "version": "1\\2"}});
    assert_eq!(s.send_json("PATCH", job, &meta).status, 200);
    let want = disposition("p_q-v;w-v1_2.tar", "p%22q-v%3Bw-v1%5C2.tar");
    let r = s.get("/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9.tar");
    assert_eq!(r.header("content-disposition"), Some(want.as_str()));
    let r = s.get("/products/p%22q/v%3Bw/1.0/1%5C2.tar");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-disposition"), Some(want.as_str()));
    let r = s.get("/branches/b/t%3Bx%3D%22y%22%5Cz/j%20%C3%A9/f.tar");
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("p_q-v;w-v1_2-f.tar", "p%22q-v%3Bw-v1%5C2-f.tar").as_str())
    );
}

#[test]
fn registry_blobs_are_not_sniffed() {
    let s = App::start();
    let r = s.request(
        "POST",
        &format!("/v2/main/img/blobs/uploads/?digest={}", digest_of(HTML)),
        &[("Content-Type", "application/octet-stream")],
        Some(HTML),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.get(&format!("/v2/main/img/blobs/{}", digest_of(HTML)));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, HTML);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("content-disposition"), None);
}
