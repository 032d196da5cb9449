//! Serving uploads safely (spec/API.md Q51, Q52; docs/access.md "Serving artifacts safely"):
//! active artifacts are sandboxed downloads unless the operator opts a tree in, pages carry a
//! strict policy, `Content-Disposition` names are quoted and encoded, and secrets sent with a
//! request never reach the log.

// Black-box tests read the server's log file directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use base64::Engine as _;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::Child;

const HTML: &[u8] = b"<html><script>fetch('/branches/')</script></html>";

/// The active files of the tests, and what each is.
const ACTIVE: &[(&str, &[u8])] = &[
    ("evil.html", HTML),
    (
        "evil.svg",
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>",
    ),
    ("x.js", b"alert(1)"),
    ("x.xml", b"<x/>"),
];

/// Passive files: shown as they are, never forced to a download.
const PASSIVE: &[(&str, &[u8])] = &[
    ("notes.txt", b"<html>not sniffed</html>"),
    ("a.tar.gz", b"\x1f\x8b\x08\x00"),
    ("a.png", b"\x89PNG\r\n\x1a\n"),
];

fn disposition(name: &str, encoded: &str) -> String {
    format!("attachment; filename=\"{name}\"; filename*=UTF-8''{encoded}")
}

/// A sandboxed download: what every active artifact gets by default.
fn assert_sandboxed_download(r: &Res, name: &str, what: &str) {
    assert_eq!(r.status, 200, "{what}: {}", r.text());
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(
        r.header("content-security-policy"),
        Some("sandbox"),
        "{what}"
    );
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition(name, name).as_str()),
        "{what}"
    );
}

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

fn browser_get(s: &TestServer, path: &str) -> Res {
    s.request("GET", path, &[("Accept", "text/html,*/*;q=0.8")], None)
}

#[test]
fn active_artifacts_are_sandboxed_downloads_everywhere() {
    let s = TestServer::start();
    let mut files: Vec<(&str, &[u8])> = ACTIVE.to_vec();
    files.extend_from_slice(PASSIVE);
    s.upload_format("/branches/b/t/j/f/", &files);
    s.upload_format("/~bob/branches/b/t/j/f/", &files);
    let meta = json!({"job": {"product": "foo", "product_variant": "x86",
        "product_branch": "1.0", "version": "1.0.1"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    for base in [
        "/branches/b/t/j/f/",
        "/~bob/branches/b/t/j/f/",
        "/products/foo/x86/1.0/1.0.1/f/",
    ] {
        for (name, data) in ACTIVE {
            let url = format!("{base}{name}");
            let r = s.get(&url);
            assert_sandboxed_download(&r, name, &url);
            assert_eq!(r.body, *data, "{url}");
            // A browser asking for a page gets the same file, the same way.
            assert_sandboxed_download(&browser_get(&s, &url), name, &url);
        }
        for (name, data) in PASSIVE {
            let url = format!("{base}{name}");
            let r = s.get(&url);
            assert_eq!(r.status, 200, "{url}");
            assert_eq!(r.body, *data, "{url}");
            assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{url}");
            assert_eq!(r.header("content-security-policy"), None, "{url}");
            assert_eq!(r.header("content-disposition"), None, "{url}");
        }
    }
    // Validators and ranges keep the headers: a cached copy must not lose them.
    let r = s.request(
        "GET",
        "/branches/b/t/j/f/evil.html",
        &[("Range", "bytes=0-5")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-security-policy"), Some("sandbox"));
    assert_eq!(
        r.header("content-disposition"),
        Some(disposition("evil.html", "evil.html").as_str())
    );
}

#[test]
fn a_format_index_page_is_an_artifact_too() {
    let s = TestServer::start();
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
    let s = TestServer::start_with(&[(
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
    let s = TestServer::start();
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
    let s = TestServer::start();
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
    let s = TestServer::start();
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

/// The server of the log test, killed even when an assertion fails.
struct Logged(Child);

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn basic(login: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{login}:{password}"))
}

#[test]
fn secrets_never_reach_the_log() {
    const SECRET: &str = "SECRETVALUE";
    let root = tempfile::tempdir().expect("root");
    let etc = tempfile::tempdir().expect("etc");
    let auth = etc.path().join("auth");
    std::fs::write(&auth, format!("alice:{SECRET}:readers\n")).expect("auth");
    let acls = etc.path().join("acls");
    std::fs::create_dir(&acls).expect("acls");
    std::fs::write(acls.join("readers"), "r /**\n").expect("acl");
    let token = arbor_token(root.path());
    let log = etc.path().join("log");
    let (child, addr) = spawn_logged(
        root.path(),
        &[
            ("DLREPO_AUTH_DISABLED", "0"),
            ("DLREPO_AUTH_FILE", path_str(&auth)),
            ("DLREPO_ACLS_DIR", path_str(&acls)),
        ],
        &log,
    );
    let _server = Logged(child);
    let agent = new_agent();
    let base = format!("http://{addr}");
    let get = |path: &str, auth: Option<&str>| {
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", *a)).collect();
        send(&agent, &base, "GET", path, &headers, None).status
    };
    assert_eq!(get(&format!("/branches/?token={token}"), None), 200);
    assert_eq!(
        get(&format!("/branches/?x=1&token={SECRET}&y=2"), None),
        401
    );
    // Not the guard's spelling, so no token: still kept out of the log.
    assert_eq!(get("/branches/?TOKEN=SECRETVALUE", None), 401);
    assert_eq!(get("/branches/", Some(&format!("Bearer {SECRET}"))), 401);
    assert_eq!(get("/branches/", Some(&format!("Bearer {token}"))), 200);
    let right = basic("alice", SECRET);
    let wrong = basic("alice", &format!("{SECRET}x"));
    assert_eq!(get("/branches/", Some(&format!("Basic {right}"))), 200);
    assert_eq!(get("/branches/", Some(&format!("Basic {wrong}"))), 401);
    let text = std::fs::read_to_string(&log).expect("log");
    // Every request is in the access log, its token replaced by the marker.
    assert!(text.contains("/branches/?token=REDACTED"), "{text}");
    assert!(text.contains("/branches/?x=1&token=REDACTED&y=2"), "{text}");
    assert!(text.contains("/branches/?TOKEN=REDACTED"), "{text}");
    assert!(text.matches("uri=/branches/ ").count() >= 4, "{text}");
    let secret_part = token.rsplit('_').next().unwrap_or(&token);
    for leak in [SECRET, &token, secret_part, &right, &wrong] {
        assert!(!text.contains(leak), "{leak:?} is in the log:\n{text}");
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A read token for alice, made as an operator does.
fn arbor_token(root: &Path) -> String {
    let out = run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
            .args(["token", "create", "--user", "alice", "--scope", "read"])
            .env("DLREPO_ROOT_DIR", root),
        "arbor token create",
    );
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(token.starts_with("arbor_"), "{token}");
    token
}
