//! A format's flat APT repository indexes through the router (issue 15): their content,
//! `./` segments on reads only, ACLs, dirty formats, and uploaded files winning over them.

use crate::common;
use crate::shared::access::{self, as_user};
use crate::shared::debs::build_deb;
use common::*;

const FMT: &str = "/branches/dev/t/j/deb/";

#[test]
fn packages_follow_the_format_and_its_acl() {
    let st = access::start::<App>(&[]);
    let s = &st.server;
    let work = tempfile::tempdir().unwrap();
    let deb = build_deb(work.path(), "arbor-hello", "1.0");
    let put = as_user(
        s,
        "alice",
        "PUT",
        &format!("{FMT}pool/hello.deb"),
        Some(&deb),
    );
    assert_eq!(put.status, 201);
    // Still dirty: no indexes yet, like the format's tar.
    assert_eq!(
        as_user(s, "alice", "GET", &format!("{FMT}Packages"), None).status,
        404
    );
    assert_eq!(as_user(s, "alice", "PATCH", FMT, Some(b"")).status, 200);

    let get = |user: &str, path: &str| as_user(s, user, "GET", path, None);
    let packages = get("alice", &format!("{FMT}./Packages"));
    assert_eq!(packages.status, 200, "{}", packages.text());
    let text = packages.text();
    assert!(
        text.starts_with("Package: arbor-hello\nVersion: 1.0\n"),
        "{text}"
    );
    assert!(text.contains("\nFilename: ./pool/hello.deb\n"), "{text}");
    assert!(text.contains(&format!("\nSize: {}\n", deb.len())), "{text}");
    assert!(text.contains(&format!("\nSHA256: {}\n", crate::shared::sha256_hex(&deb))));
    assert_eq!(get("alice", &format!("{FMT}Packages")).body, packages.body);
    let head = as_user(s, "alice", "HEAD", &format!("{FMT}./Packages"), None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for index in ["Packages.gz", "Packages.xz", "Release"] {
        assert_eq!(
            get("alice", &format!("{FMT}{index}")).status,
            200,
            "{index}"
        );
    }
    let release = get("alice", &format!("{FMT}Release")).text();
    assert!(
        release.starts_with("Date: ") && release.contains("\nSHA256:\n"),
        "{release}"
    );
    // Unsigned for now.
    for index in ["InRelease", "Release.gpg"] {
        assert_eq!(
            get("alice", &format!("{FMT}{index}")).status,
            404,
            "{index}"
        );
    }
    // Whoever may not read the format may not read its indexes, however spelled.
    for path in [
        FMT.to_owned(),
        format!("{FMT}Packages"),
        format!("{FMT}./Packages"),
    ] {
        let anon = s.get(&path);
        assert_eq!(anon.status, s.get(FMT).status, "{path}");
        assert_ne!(anon.status, 200, "{path}");
    }
    // Writes never normalise `.` segments.
    let put = as_user(s, "alice", "PUT", &format!("{FMT}./x.deb"), Some(b"x"));
    assert_eq!(put.status, 400, "{}", put.text());
}

#[test]
fn an_uploaded_file_wins_over_an_index() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/deb/", &[("Release", b"mine\n")]);
    assert_eq!(s.get("/branches/b/t/j/deb/Release").text(), "mine\n");
    // The other indexes are still made (with no package: empty).
    let packages = s.get("/branches/b/t/j/deb/Packages");
    assert_eq!((packages.status, packages.text()), (200, String::new()));
    assert_eq!(s.get("/branches/b/t/j/nope/Packages").status, 404);
}

#[test]
fn aliases_lead_to_the_indexes_of_what_they_name() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/deb/", &[("x.deb", b"not a package")]);
    let r = s.get("/branches/b/latest/j/deb/./Packages");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("/branches/b/t/j/deb/Packages"));
    // A file that is not a package is skipped, never a 500.
    assert_eq!(s.get("/branches/b/t/j/deb/Packages").status, 200);
}
