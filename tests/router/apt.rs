//! A format's flat APT repository indexes through the router (issue 15): their content,
//! `./` segments on reads only, ACLs, dirty formats, and uploaded files winning over them;
//! a product branch as one archive of its locked, readable versions.

use crate::common;
use crate::shared::access::{self, as_user};
use crate::shared::auth::Secured;
use crate::shared::debs::build_deb;
use common::*;
use serde_json::json;

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
    // A format with an index of its own gets none made: a generated InRelease would
    // vouch for a Release that is not the one served.
    for index in ["Packages", "Packages.gz", "InRelease", "Release.gpg"] {
        let r = s.get(&format!("/branches/b/t/j/deb/{index}"));
        assert_eq!(r.status, 404, "{index}");
    }
    // Without it, the indexes are made (with no package: empty).
    s.upload_format("/branches/b/t/j/other/", &[("x.txt", b"x")]);
    let packages = s.get("/branches/b/t/j/other/Packages");
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

const PB: &str = "/products/p/v/pb/";

/// `admin` reads and writes everything; `bob` reads the products but version 1.1.
fn archive_server() -> Secured<App> {
    Secured::<App>::start(
        &[("admin", "a", "admins"), ("bob", "b", "partial")],
        &[
            ("admins", "rw /**\n"),
            ("partial", "r /products/** !/products/p/v/pb/1.1/**\n"),
        ],
    )
}

/// Job `b/{tag}/j` with one package `foo` of `version` in its format `deb`, linked into
/// product version `version`, locked when `lock`. Returns the package's bytes.
fn release_foo(
    s: &Secured<App>,
    work: &std::path::Path,
    tag: &str,
    version: &str,
    lock: bool,
) -> Vec<u8> {
    let deb = build_deb(work, "foo", version);
    let job = format!("/branches/b/{tag}/j/");
    let put = s.put("admin", &format!("{job}deb/foo_{version}_all.deb"), &deb);
    assert_eq!(put.status, 201, "{}", put.text());
    let patch = s.send("admin", "PATCH", &format!("{job}deb/"), &[], Some(b""));
    assert_eq!(patch.status, 200);
    let meta = json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "pb", "version": version}});
    assert_eq!(s.json("admin", "PATCH", &job, &meta).status, 200);
    if lock {
        let r = s.json("admin", "PUT", &job, &json!({"job": {"locked": true}}));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    deb
}

#[test]
fn a_product_branch_is_one_archive_of_its_locked_readable_versions() {
    let s = archive_server();
    let work = tempfile::tempdir().unwrap();
    let old = release_foo(&s, work.path(), "t1", "1.0", true);
    release_foo(&s, work.path(), "t2", "1.1", true);
    release_foo(&s, work.path(), "t3", "1.2", false);

    let packages = s.get("admin", &format!("{PB}./Packages"));
    assert_eq!(packages.status, 200, "{}", packages.text());
    let text = packages.text();
    assert_eq!(text.matches("Package: foo\n").count(), 2, "{text}");
    assert!(
        text.contains("\nFilename: ./1.0/deb/foo_1.0_all.deb\n"),
        "{text}"
    );
    assert!(
        text.contains("\nFilename: ./1.1/deb/foo_1.1_all.deb\n"),
        "{text}"
    );
    assert!(
        !text.contains("1.2"),
        "an unlocked job's version is not served: {text}"
    );
    // apt downloads through the product version format URLs.
    let got = s.get("admin", &format!("{PB}./1.0/deb/foo_1.0_all.deb"));
    assert_eq!((got.status, &got.body), (200, &old));
    let release = s.get("admin", &format!("{PB}Release")).text();
    assert!(
        release.starts_with("Date: ") && release.contains(" Packages.xz\n"),
        "{release}"
    );
    for index in ["Packages.gz", "Packages.xz"] {
        assert_eq!(
            s.get("admin", &format!("{PB}{index}")).status,
            200,
            "{index}"
        );
    }
    // No signing key: no signed forms.
    assert_eq!(s.get("admin", &format!("{PB}InRelease")).status, 404);
    let head = s.send("admin", "HEAD", &format!("{PB}./Packages.gz"), &[], None);
    assert_eq!((head.status, head.body.len()), (200, 0));

    // A version the caller may not read is not in its archive, nor in its Release.
    let partial = s.get("bob", &format!("{PB}Packages")).text();
    assert_eq!(partial.matches("Package: foo\n").count(), 1, "{partial}");
    assert!(!partial.contains("1.1"), "{partial}");
    assert_ne!(
        s.get("bob", &format!("{PB}Release")).body,
        release.as_bytes()
    );
    // The first caller's cached archive is still its own.
    assert_eq!(s.get("admin", &format!("{PB}Packages")).text(), text);
    // Whoever may not read the branch may not read its archive, however spelled.
    let anonymous = s.server.get(PB).status;
    assert_ne!(anonymous, 200);
    for index in ["Packages", "./Packages", "Release"] {
        assert_eq!(
            s.server.get(&format!("{PB}{index}")).status,
            anonymous,
            "{index}"
        );
    }
    // Writes are refused; a missing branch is a 404.
    let put = s.put("admin", &format!("{PB}Packages"), b"x");
    assert_eq!(put.status, 405, "{}", put.text());
    assert_eq!(s.get("admin", "/products/p/v/nope/Packages").status, 404);
}

#[test]
fn a_version_named_like_an_index_wins_over_the_archive() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/deb/", &[("x.deb", b"not a package")]);
    let meta = json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "pb", "version": "Packages"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    let r = s.get(&format!("{PB}Packages"));
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("/products/p/v/pb/packages/"));
    // The other names are still the archive's (empty: the job is not locked).
    let r = s.get(&format!("{PB}Release"));
    assert_eq!(r.status, 200);
    assert!(r.text().starts_with("Date: "), "{}", r.text());
    assert_eq!(s.get(&format!("{PB}Packages.gz")).status, 200);
}

/// A `.deb` whose control file is `control` as is (dpkg-deb would refuse these).
fn crafted_deb(control: &str) -> Vec<u8> {
    use std::io::Write;
    let member = |name: &str, data: &[u8]| {
        let mut out = format!(
            "{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            0,
            0,
            0,
            "100644",
            data.len()
        )
        .into_bytes();
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(b'\n');
        }
        out
    };
    let gz = |data: &[u8]| {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    };
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(control.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "./control", control.as_bytes())
        .unwrap();
    let mut out = b"!<arch>\n".to_vec();
    out.extend(member("debian-binary", b"2.0\n"));
    out.extend(member("control.tar.gz", &gz(&tar.into_inner().unwrap())));
    out.extend(member("data.tar.gz", &gz(b"")));
    out
}

#[test]
fn hostile_packages_inject_no_stanza() {
    let st = access::start::<App>(&[]);
    let s = &st.server;
    let put = |path: &str, body: &[u8]| {
        as_user(s, "alice", "PUT", &format!("{FMT}{path}"), Some(body)).status
    };
    let inject = "Package: legit\nVersion: 1\nArchitecture: all\n\nPackage: injected\n\
                  Version: 9\nArchitecture: all\nFilename: ./../../../../etc/x.deb\n";
    assert_eq!(put("inject.deb", &crafted_deb(inject)), 201);
    let own = "Package: own\nVersion: 1\nArchitecture: all\nFilename: ./../../etc/x.deb\n\
               SHA256: 00\nSize: 1\n";
    assert_eq!(put("own.deb", &crafted_deb(own)), 201);
    let big = format!("Package: big\nDescription: x\n {}\n", "a".repeat(2 << 20));
    assert_eq!(put("big.deb", &crafted_deb(&big)), 201);
    // A newline in the path would end the Filename line.
    let plain = crafted_deb("Package: plain\nVersion: 1\nArchitecture: all\n");
    assert_eq!(put("a%0APackage:%20evil.deb", &plain), 201);
    assert_eq!(as_user(s, "alice", "PATCH", FMT, Some(b"")).status, 200);
    let packages = as_user(s, "alice", "GET", &format!("{FMT}Packages"), None);
    assert_eq!(packages.status, 200);
    let text = packages.text();
    assert!(
        !text.contains("injected") && !text.contains("etc/x.deb"),
        "{text}"
    );
    assert!(!text.contains("evil") && !text.contains("big"), "{text}");
    assert_eq!(text.matches("Package: ").count(), 1, "{text}");
    assert!(
        text.starts_with("Package: own\nVersion: 1\nArchitecture: all\nFilename: ./own.deb\n"),
        "{text}"
    );
}
