//! The HTML pages, in process (spec/API.md §1.3, §3.1, §3.8–3.9, §9; issue 5): browsers get
//! pages with working relative links, API clients keep their JSON and plain-text errors.

use crate::common;
use crate::shared::html_pages;
use crate::shared::html_pages::{HTML, page};

use common::{App, Client as _};

fn seeded() -> App {
    html_pages::seeded()
}

#[test]
fn negotiation_keeps_json_for_api_clients() {
    let s = seeded();
    for path in [
        "/branches/",
        "/branches/main/",
        "/branches/main/t1/",
        "/branches/main/t1/job1/",
        "/branches/main/t1/job1/fmt/",
        "/products/",
        "/products/foo/x86/1/",
        "/products/foo/x86/1/1.0/",
    ] {
        for accept in [
            None,
            Some("*/*"),
            Some("application/json,application/octet-stream"),
        ] {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
            let r = s.request("GET", path, &headers, None);
            assert_eq!(r.status, 200, "{path}");
            r.json();
        }
        // The test is case-sensitive (spec/API.md §1.3).
        s.request("GET", path, &[("Accept", "text/HTML")], None)
            .json();
        page(&s, path);
    }
    // Directories below a format: HTML only, JSON stays 404.
    assert_eq!(s.get("/branches/main/t1/job1/fmt/dir/").status, 404);
    assert!(page(&s, "/branches/main/t1/job1/fmt/dir/").contains(r#"href="a%20b.txt""#));
}

#[test]
fn user_home_shows_quota() {
    let s = App::start_with(&[("DLREPO_USER_QUOTA", "1000000")]);
    s.upload_format("/~bob/branches/b/t/j/f/", &[("a", &[7u8; 2000])]);
    let html = page(&s, "/~bob/");
    // The file, its `.digests` and `.disk_usage` (spec/API.md Q40).
    assert!(html.contains("2.1 kB used of 1.0 MB"), "{html}");
    assert!(page(&s, "/").contains(r#"<a href="/~bob/">~bob</a>"#));
    assert_eq!(s.request("GET", "/~nobody/", &[HTML], None).status, 404);
}

#[test]
fn hostile_names_are_text() {
    let s = seeded();
    let job = page(&s, "/branches/main/t1/%3Cscript%3E/");
    assert!(!job.contains("<script"), "{job}");
    assert!(job.contains("Job &#60;script&#62;"));
}

#[test]
fn index_html_is_served_instead_of_the_listing() {
    let s = App::start();
    s.upload_format(
        "/branches/b/t/j/doc/",
        &[
            ("index.html", b"<p>docs</p>"),
            ("sub/index.html", b"<p>sub</p>"),
        ],
    );
    assert_eq!(
        s.request("GET", "/branches/b/t/j/doc/", &[HTML], None).body,
        b"<p>docs</p>"
    );
    assert_eq!(
        s.request("GET", "/branches/b/t/j/doc/sub/", &[HTML], None)
            .body,
        b"<p>sub</p>"
    );
    // The JSON answer is unchanged.
    assert_eq!(
        s.get("/branches/b/t/j/doc/").json()["artifact_format"]["name"],
        "doc"
    );
}

#[test]
fn errors_are_pages_for_browsers_only() {
    let s = seeded();
    for path in [
        "/nope",
        "/branches/missing/",
        "/branches/main/t1/job1/fmt/nothing",
    ] {
        let r = s.request("GET", path, &[HTML], None);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert!(r.text().contains("<h1>404 Not Found</h1>"));
        let r = s.get(path);
        assert_eq!((r.status, r.text().as_str()), (404, "404: Not Found"));
    }
    let r = s.request("DELETE", "/branches/", &[HTML], None);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET")));
}

#[test]
fn unauthorized_page_keeps_the_challenge() {
    let s = App::start_with(&[("DLREPO_AUTH_DISABLED", "0")]);
    let r = s.request("GET", "/branches/", &[HTML], None);
    assert_eq!(r.status, 401);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Basic realm="))
    );
    assert!(r.text().contains("<h1>401 Unauthorized</h1>"));
    let r = s.get("/branches/");
    assert_eq!((r.status, r.text().as_str()), (401, "401: Unauthorized"));
    assert!(r.header("www-authenticate").is_some());
}

#[test]
fn package_formats_show_their_source_lines() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/deb/", &[("pool/a.deb", b"x")]);
    s.upload_format("/branches/b/t/j/rpm/", &[("a.rpm", b"x")]);
    s.upload_format("/branches/b/t/j/bin/", &[("a.bin", b"x")]);

    // No signing key: apt must be told to trust the source, dnf not to check.
    let deb = page(&s, "/branches/b/t/j/deb/");
    assert!(
        deb.contains("deb [trusted=yes] http://arbor.test/branches/b/t/j/deb/ ./"),
        "{deb}"
    );
    assert!(!deb.contains("yum.repos.d") && !deb.contains("pubkey"));
    let rpm = page(&s, "/branches/b/t/j/rpm/");
    assert!(
        rpm.contains("baseurl=http://arbor.test/branches/b/t/j/rpm/\n"),
        "{rpm}"
    );
    assert!(rpm.contains("repo_gpgcheck=0"));
    // Neither for other formats nor below a format's root.
    assert!(!page(&s, "/branches/b/t/j/bin/").contains("Package repository"));
    assert!(!page(&s, "/branches/b/t/j/deb/pool/").contains("Package repository"));
    // The job page says which formats are repositories.
    let job = page(&s, "/branches/b/t/j/");
    assert_eq!(job.matches("deb repository").count(), 1, "{job}");
    assert_eq!(job.matches("rpm repository").count(), 1, "{job}");
}

#[test]
fn pages_say_how_to_fetch_what_they_show() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/bin/", &[("sub/a.txt", b"x")]);
    let job = page(&s, "/branches/b/t/j/");
    for line in [
        "arbor -U http://arbor.test -p / download branches/b/t/j j/",
        "curl -fL -o j.tar http://arbor.test/branches/b/t/j.tar",
    ] {
        assert!(job.contains(line), "{line} in {job}");
    }
    let format = page(&s, "/branches/b/t/j/bin/");
    assert!(
        format.contains("download branches/b/t/j/bin bin/"),
        "{format}"
    );
    assert!(!format.contains("docker pull"), "not an image");
    // Below a format's root there is nothing more to say.
    assert!(!page(&s, "/branches/b/t/j/bin/sub/").contains("Fetch it"));
}
