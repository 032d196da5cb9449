//! The HTML pages, black-box (spec/API.md §1.3, §3.1, §3.8–3.9, §9; issue 5): browsers get
//! pages with working relative links, API clients keep their JSON and plain-text errors.
//! The home page and its links are checked here; tests/router/pages.rs has the others.

use crate::common;
use crate::shared::html_pages;
use crate::shared::html_pages::{HTML, page};

use common::{Client as _, TestServer};

fn seeded() -> TestServer {
    html_pages::seeded()
}

#[test]
fn home_is_always_html() {
    let s = seeded();
    let home = s.get("/");
    assert_eq!(
        home.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let html = home.text();
    assert!(html.contains(r#"href="branches/""#) && html.contains(r#"href="products/""#));
    assert!(html.contains(r#"<a href="/products/foo/x86/1/1.0/">foo-x86-v1.0</a>"#));
    let hidden = TestServer::start_with(&[("DLREPO_LATEST_RELEASES", "0")]);
    assert!(!hidden.get("/").text().contains("Latest releases"));
}

#[test]
fn pages_link_down_to_files() {
    let s = seeded();
    let tag = page(&s, "/branches/main/t1/");
    assert!(tag.contains(r#"<a href="job1/">job1</a>"#));
    assert!(tag.contains(r#"<a href="%3Cscript%3E/">&#60;script&#62;</a>"#));
    let job = page(&s, "/branches/main/t1/job1/");
    for link in [
        r#"href="fmt/""#,
        r#"href="fmt.tar""#,
        r#"href="fmt.sha256""#,
        r#"href="../job1.tar""#,
    ] {
        assert!(job.contains(link), "{link}");
    }
    let fmt = page(&s, "/branches/main/t1/job1/fmt/");
    assert!(fmt.contains(r#"<a href="dir/">dir/</a>"#));
    // The name may break after its dot at phone width, never inside a word.
    assert!(fmt.contains(r#"href="f2.txt" download>f2.<wbr>txt</a>"#));
    assert!(fmt.contains(r#"href="f2.txt.sha256""#));
    // Each link resolves (relative to the page) to something the server answers.
    for url in [
        "/branches/main/t1/job1/fmt.tar",
        "/branches/main/t1/job1/fmt.sha256",
        "/branches/main/t1/job1.tar",
        "/branches/main/t1/job1/fmt/f2.txt",
        "/branches/main/t1/job1/fmt/f2.txt.sha256",
        "/branches/main/t1/job1/fmt/dir/a%20b.txt",
    ] {
        assert_eq!(s.request("GET", url, &[HTML], None).status, 200, "{url}");
    }
    // A directory URL without the slash sends the browser to the listing.
    let r = s.request("GET", "/branches/main/t1/job1/fmt/dir", &[HTML], None);
    assert_eq!(r.status, 302);
    assert_eq!(
        r.header("location"),
        Some("/branches/main/t1/job1/fmt/dir/")
    );
}
