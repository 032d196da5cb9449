//! The browser test (issue 5): Debian's chromium, driven by playwright-core from
//! tests/blackbox/browser/browse.cjs, browses a seeded server from the home page down to a file.
//! Screenshots land in target/test-output/screenshots/. Needs `tests/deps/install`
//! (chromium and playwright-core under target/test-deps/browser/), as `make test` runs it.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{Client as _, TestServer};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOW_TO_INSTALL: &str = "run tests/deps/install (installs chromium and playwright-core)";

fn top() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Branches with several tags, badges and descriptions, jobs with formats, and products.
fn seed(s: &TestServer) {
    for (tag, stable, desc) in [("1.9", true, "previous"), ("1.10", true, "current <b>")] {
        let job = format!("/branches/main/{tag}/job1/");
        s.upload_format(
            &format!("{job}fmt/"),
            &[
                ("dir/a%20b.txt", b"hello from arbor\n"),
                ("notes.txt", b"notes"),
                (
                    "arbor-server_1.10.0-rc1+build42_x86_64-unknown-linux-gnu.tar.gz",
                    b"long name",
                ),
            ],
        );
        let meta = json!({"job": {"product": "foo", "product_variant": "x86",
            "product_branch": "1", "version": tag}});
        assert_eq!(s.send_json("PATCH", &job, &meta).status, 200);
        let upd = json!({"tag": {"stable": stable, "locked": true, "description": desc}});
        let tag_url = format!("/branches/main/{tag}/");
        assert_eq!(s.send_json("POST", &tag_url, &upd).status, 200);
    }
    s.upload_format("/branches/main/1.10/%3Cscript%3E/fmt/", &[("x", b"x")]);
    s.upload_format(
        "/branches/feature/t1/j/doc/",
        &[("index.html", b"<p>doc</p>")],
    );
}

#[test]
fn browse_from_home_to_a_download() {
    let module = top().join("target/test-deps/browser/node_modules/playwright-core");
    let chromium = Path::new("/usr/bin/chromium");
    assert!(
        module.is_dir() && chromium.exists(),
        "browser test dependencies missing: {HOW_TO_INSTALL}"
    );
    let s = TestServer::start();
    seed(&s);
    let out = top().join("target/test-output");
    let shots = out.join("screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let profile = tempfile::tempdir().expect("profile dir");
    let run = Command::new("node")
        .arg(top().join("tests/blackbox/browser/browse.cjs"))
        .env("ARBOR_BASE", &s.base)
        .env("ARBOR_SHOTS", &shots)
        .env("ARBOR_PROFILE", profile.path())
        .env("PLAYWRIGHT_CORE", &module)
        .env("CHROMIUM", chromium)
        .output()
        .expect("run node");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "browser run failed:\n{report}");
    for shot in [
        "home",
        "branch",
        "job",
        "autoindex",
        "version",
        "product-branch",
        "tag",
        "branch-phone",
        "tag-phone",
        "job-phone",
        "autoindex-phone",
        "product-branch-phone",
    ] {
        let p = shots.join(format!("{shot}.png"));
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000),
            "{}",
            p.display()
        );
    }
}
