//! Template tests: each page renders its links, and hostile names come out as text.

use super::*;
use crate::http::reply::ApiResult;
use crate::model::{BranchRef, JobRef, Name, Scope, TagRef, VersionRef};
use crate::storage::page_info::{DirEntry, FormatSummary, HomeInfo, Release, Repos};
use crate::storage::{
    BranchInfo, BranchSummary, JobEntry, JobInfo, TagInfo, TagSummary, VersionSummary,
};
use serde_json::{Map, Value, json};

const EVIL: &str = "<script>alert(1)</script>";

fn body(res: ApiResult) -> String {
    let res = res.unwrap_or_else(|e| panic!("render failed: {e}"));
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bytes = rt
        .block_on(axum::body::to_bytes(res.into_body(), 1 << 24))
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn chrome(path: &str) -> Chrome {
    Chrome::for_path(path, Some("<bob>".into()))
}

/// Every page: the stylesheet, icons, breadcrumbs, the login, and no raw hostile markup.
fn common(html: &str) {
    assert!(html.contains(r#"href="/static/dlrepo.css""#));
    assert!(html.contains(r#"href="/static/favicon.svg""#));
    assert!(html.contains(r#"src="/static/logo.svg""#));
    assert!(html.contains(r#"<nav aria-label="Breadcrumb">"#));
    assert!(html.contains("Authenticated as <strong>&#60;bob&#62;</strong>"));
    assert!(!html.contains("<script"), "unescaped markup in:\n{html}");
}

fn name(s: &str) -> Name {
    Name::parse(s).expect("name")
}

fn job_ref(job: &str) -> JobRef {
    JobRef {
        tag: TagRef {
            branch: BranchRef {
                scope: Scope::Root,
                branch: name("main"),
            },
            tag: name("t1"),
        },
        job: name(job),
    }
}

#[test]
fn home_lists_users_releases_and_quota() {
    let info = HomeInfo {
        users: vec!["alice".into(), EVIL.to_lowercase()],
        branches: true,
        products: false,
        releases: vec![Release {
            version: VersionRef {
                scope: Scope::Root,
                product: name("foo"),
                variant: name("x86"),
                product_branch: name("1"),
                version: name("1.0"),
            },
            timestamp: 1_795_315_711.0,
            icon: true,
        }],
        disk_usage: Some(2_000),
    };
    let html = body(home_page(chrome("/"), None, &info, true, 10_000, false));
    common(&html);
    assert!(!html.contains("/pubkey"));
    assert!(html.contains(r#"<a href="branches/">Branches</a>"#));
    assert!(
        !html.contains(r#"href="products/""#),
        "products/ is not readable"
    );
    assert!(html.contains(r#"<a href="/~alice/">~alice</a>"#));
    assert!(html.contains(r#"href="/~%3Cscript%3Ealert(1)%3C%2Fscript%3E/""#));
    assert!(html.contains(r#"<a href="/products/foo/x86/1/1.0/">foo-x86-v1.0</a>"#));
    assert!(html.contains(r#"src="/static/foo.svg""#));
    assert!(html.contains("2.0 kB used of 10.0 kB"));
    let signed = body(home_page(chrome("/"), None, &info, true, 10_000, true));
    assert!(signed.contains(r#"<a href="/pubkey">armored</a>"#));
    assert!(signed.contains(r#"<a href="/pubkey.gpg">binary</a>"#));
}

#[test]
fn branches_and_branch_pages() {
    let list = vec![BranchSummary {
        name: EVIL.into(),
        daily_tags: 3,
        released_tags: 1,
        locked_tags: 0,
        stable_tags: 0,
        cleanup_policy: Map::new(),
    }];
    let html = body(branches_page(chrome("/branches/"), &list));
    common(&html);
    assert!(html.contains(r#"<a href="%3Cscript%3Ealert(1)%3C%2Fscript%3E/">&#60;script&#62;"#));

    let tag = |n: &str, stable: bool, released: bool| TagSummary {
        name: n.into(),
        timestamp: json!(1_795_315_711.5),
        released,
        locked: false,
        stable,
        publish_status: None,
        description: Some(EVIL.into()),
    };
    let info = BranchInfo {
        name: "main".into(),
        cleanup_policy: Map::new(),
        tags: vec![
            tag("1.9", true, false),
            tag("1.10", true, true),
            tag("1.2", false, false),
        ],
    };
    let html = body(branch_page(chrome("/branches/main/"), &info));
    common(&html);
    for link in ["latest/", "stable/", "oldstable/", "1.9/", "1.10/", "1.2/"] {
        assert!(html.contains(&format!(r#"href="{link}""#)), "{link}");
    }
    // Natural order, newest first: 1.10 before 1.9 before 1.2.
    let pos = |s: &str| html.find(s).expect(s);
    assert!(pos(r#"href="1.10/""#) < pos(r#"href="1.9/""#));
    assert!(pos(r#"href="1.9/""#) < pos(r#"href="1.2/""#));
    assert!(html.contains(r#"<span class="badge released">released</span>"#));
    assert!(html.contains("2026 Nov 22, 05:28:31 UTC") || html.contains("UTC</time>"));
}

#[test]
fn tag_page_links_jobs() {
    let mut metadata = Map::new();
    metadata.insert("product".into(), "foo".into());
    metadata.insert("product_variant".into(), "x86".into());
    metadata.insert("product_branch".into(), "1.X".into());
    metadata.insert("version".into(), "1".into());
    let job = JobEntry {
        name: EVIL.into(),
        metadata,
        locked: true,
        released: false,
    };
    let info = TagInfo {
        name: "t1".into(),
        released: false,
        locked: true,
        stable: false,
        publish_status: None,
        description: Some("nightly & <b>".into()),
        jobs: vec![job].into(),
        rendered: None,
    };
    let html = body(tag_page(chrome("/branches/main/t1/"), &info));
    common(&html);
    assert!(html.contains(r#"<a href="%3Cscript%3Ealert(1)%3C%2Fscript%3E/">&#60;script&#62;alert(1)&#60;/script&#62;</a>"#));
    assert!(html.contains("nightly &#38; &#60;b&#62;"));
    // The product version is a link, relative so that it stays in a user repository.
    assert!(html.contains(r#"<a href="../../../products/foo/x86/1.x/1/">foo-x86-v1</a>"#));
    assert!(
        html.contains(r#"<th scope="col">State</th>"#),
        "a job is locked"
    );
    let mut open = info;
    let jobs = std::sync::Arc::make_mut(&mut open.jobs);
    jobs[0].locked = false;
    jobs[0].metadata.remove("product_branch");
    let html = body(tag_page(chrome("/branches/main/t1/"), &open));
    assert!(
        !html.contains("State"),
        "no job has a state: no empty column"
    );
    assert!(
        html.contains("<td>foo-x86-v1</td>"),
        "no link without a branch"
    );
}

#[test]
fn job_page_links_formats_and_archive() {
    let j = job_ref("<script>");
    let mut m = Map::new();
    m.insert("product".into(), "foo".into());
    m.insert("product_branch".into(), "1".into());
    m.insert("product_variant".into(), "x86".into());
    m.insert("version".into(), "1.0".into());
    m.insert("extra".into(), Value::String(EVIL.into()));
    let info = JobInfo {
        entry: JobEntry {
            name: "<script>".into(),
            metadata: m,
            locked: true,
            released: false,
        },
        timestamp: json!(0),
        ..JobInfo::default()
    };
    let formats = vec![FormatSummary {
        name: "rpm pkgs".into(),
        internal: true,
        dirty: false,
        repos: Repos {
            rpm: true,
            deb: false,
        },
        job_url: None,
    }];
    let html = body(job_page(
        chrome("/branches/main/t1/x/"),
        &j,
        &info,
        &formats,
        "http://h",
    ));
    common(&html);
    assert!(html.contains(r#"href="../%3Cscript%3E.tar""#));
    assert!(html.contains(r#"<a href="rpm%20pkgs/">rpm pkgs</a>"#));
    assert!(html.contains(r#"href="rpm%20pkgs.tar""#));
    // Every encoding of the job's and the format's bundle is offered.
    for enc in [".tar.gz", ".tar.xz", ".tar.zst", ".zip"] {
        assert!(html.contains(&format!(r#"href="../%3Cscript%3E{enc}" download>{enc}<"#)));
        assert!(html.contains(&format!(r#"href="rpm%20pkgs{enc}" download>{enc}<"#)));
    }
    assert!(html.contains(r#"href="rpm%20pkgs.sha256""#));
    assert!(html.contains("rpm repository"));
    assert!(html.contains(r#"<a href="/products/foo/x86/1/1.0/">foo-x86-v1.0</a>"#));
    assert!(html.contains("<dd>n/a</dd>") || html.contains(">n/a</time>"));
    assert!(html.contains("<th scope=\"row\">extra</th>"));
}

#[test]
fn autoindex_lists_files_and_dirs() {
    let entries = vec![
        DirEntry {
            name: "sub dir".into(),
            dir: true,
            size: 0,
            digest: None,
        },
        DirEntry {
            name: EVIL.into(),
            dir: false,
            size: 2_500_000,
            digest: Some("sha256:abc".into()),
        },
        DirEntry {
            name: "arbor-1.0_x86.tar".into(),
            dir: false,
            size: 6,
            digest: None,
        },
    ];
    let html = body(autoindex_page(
        chrome("/branches/main/t1/j/fmt/"),
        "fmt/".into(),
        Some("fmt"),
        &entries,
        Vec::new(),
        Vec::new(),
    ));
    common(&html);
    assert!(html.contains(r#"<a href="sub%20dir/">sub dir/</a>"#));
    assert!(html.contains(r#"href="%3Cscript%3Ealert(1)%3C%2Fscript%3E" download>"#));
    assert!(html.contains(
        r#"href="%3Cscript%3Ealert(1)%3C%2Fscript%3E.sha256" title="sha256:abc">sha256:abc</a>"#
    ));
    assert!(html.contains(r#"<data value="2500000">2.5 MB</data>"#));
    assert!(html.contains(r#">arbor-<wbr>1.<wbr>0_<wbr>x86.<wbr>tar</a>"#));
    assert!(html.contains(r#"href="../fmt.tar""#));
    assert!(html.contains(r#"href="../fmt.tar.zst" download>"#));
    assert!(html.contains(r#"href="../fmt.zip" download>"#));
    assert!(html.contains(r#"href="../fmt.sha256""#));
}

#[test]
fn product_pages() {
    let html = body(level_page(
        chrome("/products/"),
        0,
        String::new(),
        &["foo".into(), EVIL.to_lowercase()],
    ));
    common(&html);
    assert!(html.contains(r#"<a href="foo/">foo</a>"#));

    let v = |n: &str, stable: bool| VersionSummary {
        name: n.into(),
        timestamp: json!(1.0),
        locked: false,
        released: false,
        stable,
    };
    let html = body(product_branch_page(
        chrome("/products/foo/x86/1/"),
        "1".into(),
        &[v("1.0.9", true), v("1.0.10", false)],
        super::repo_snippets(
            Repos {
                deb: true,
                rpm: false,
            },
            "http://h",
            "/products/foo/x86/1/",
            false,
        ),
    ));
    assert!(html.contains("deb [trusted=yes] http://h/products/foo/x86/1/ ./"));
    common(&html);
    assert!(html.contains("<h1>foo x86, branch 1</h1>"));
    assert!(html.contains("<title>foo x86, branch 1 — dlrepo</title>"));
    assert!(html.contains(r#"href="latest/""#) && html.contains(r#"href="stable/""#));
    assert!(!html.contains("oldstable"));
    assert!(html.find("1.0.10/") < html.find("1.0.9/"));

    let formats = vec![FormatSummary {
        name: "fmt".into(),
        internal: false,
        dirty: false,
        repos: Repos {
            rpm: false,
            deb: true,
        },
        job_url: Some("/branches/main/t1/j/".into()),
    }];
    let v = crate::model::VersionRef {
        scope: crate::model::Scope::Root,
        product: Name::parse("foo").unwrap(),
        variant: Name::parse("x86").unwrap(),
        product_branch: Name::parse("1").unwrap(),
        version: Name::parse("1.0").unwrap(),
    };
    let html = body(version_page(
        chrome("/products/foo/x86/1/1.0/"),
        &v,
        &formats,
        "http://h",
    ));
    assert!(html.contains("arbor -U http://h -p / download products/foo/x86/1/1.0 1.0/"));
    assert!(html.contains("curl -fL -o 1.0.tar http://h/products/foo/x86/1/1.0.tar"));
    common(&html);
    assert!(html.contains(r#"href="../1.0.tar""#));
    assert!(html.contains(r#"href="../1.0.tar.xz" download>"#));
    assert!(html.contains(r#"href="../1.0.zip" download>"#));
    assert!(html.contains(r#"<a href="/branches/main/t1/j/">job</a>"#));
    assert!(html.contains("deb repository"));
    assert!(html.contains(r#"<th scope="col">State</th>"#));
    let plain = FormatSummary {
        repos: Repos::default(),
        ..formats[0].clone()
    };
    let html = body(version_page(
        chrome("/products/foo/x86/1/1.0/"),
        &v,
        &[plain],
        "http://h",
    ));
    assert!(
        !html.contains("State"),
        "no format has a state: no empty column"
    );
}

#[test]
fn error_pages_keep_status_and_headers() {
    use crate::http::reply::{ApiError, plain_status};
    let mut plain = plain_status(axum::http::StatusCode::UNAUTHORIZED, "Unauthorized");
    plain
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
    let res = error_page(plain, "/branches/<x>/", None);
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], "Basic");
    let html = body(Ok(res));
    assert!(html.contains("<h1>401 Unauthorized</h1>"));
    assert!(html.contains("&#60;x&#62;") && !html.contains("<x>"));

    let res = error_page(ApiError::MethodNotAllowed("GET").into_response(), "/", None);
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()[header::ALLOW], "GET");
}
