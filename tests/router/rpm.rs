//! A format's dnf repository metadata through the router (issue 15): the same XML as
//! createrepo_c makes from the same files, `./` segments on reads, ACLs, dirty formats,
//! aliases, junk skipped, and uploaded files winning over the generated ones.

use crate::common;
use crate::shared::access::{self, as_user};
use crate::shared::rpms::{build_rpm, rpmbuild, rpmbuild_source};
use common::*;
use std::io::Read;
use std::path::Path;
use std::process::Command;

const FMT: &str = "/branches/dev/t/j/rpm/";

fn gunzip(data: &[u8]) -> String {
    let mut out = String::new();
    flate2::read::GzDecoder::new(data)
        .read_to_string(&mut out)
        .expect("gzip");
    out
}

/// The XML with the one value createrepo_c takes from the file system (the file's mtime,
/// where arbor puts the format's time) blanked, and the final newline dropped.
fn comparable(xml: &str) -> String {
    let re = regex::Regex::new(r#"<time file="\d+""#).unwrap();
    re.replace_all(xml.trim_end(), "<time file=\"T\"")
        .into_owned()
}

/// What createrepo_c makes of `files` (laid out by relative path), by metadata kind.
fn createrepo(dir: &Path, files: &[(&str, &[u8])]) -> Vec<(&'static str, String)> {
    for (rel, data) in files {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let out = Command::new("createrepo_c")
        .args(["--no-database", "--simple-md-filenames"])
        .arg(dir)
        .output()
        .expect("createrepo_c runs (tests/deps/install installs createrepo-c)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ["primary", "filelists", "other"]
        .into_iter()
        .map(|kind| {
            let gz = std::fs::read(dir.join(format!("repodata/{kind}.xml.gz"))).unwrap();
            (kind, gunzip(&gz))
        })
        .collect()
}

/// A package with what the metadata must get right: an epoch, a dist release, markup in
/// texts, scriptlet (pre) requirements, requirements the package satisfies itself (left
/// out), weak and rich dependencies, configuration, ghost and directory entries, and two
/// changelog entries.
const TRICKY: &str = r#"Name: arbor-tricky
Epoch: 3
Version: 1.0
Release: 2.el9
Summary: tricky <summary> & "quotes"
License: MIT
URL: http://example.org/?a=1&b=2
BuildArch: noarch
Provides: virt-thing = 1.0
Requires: virt-thing = 1.0
Requires: /usr/bin/arbor-tricky
Requires: /usr/share/arbor-tricky/data
Requires(pre): shadow-utils
Requires(post): coreutils
Recommends: weak-dep >= 2:1.1-3
Suggests: sugg
Enhances: enh
Supplements: (supp and other)
Conflicts: old-thing < 1.0
Obsoletes: older-thing <= 0.9

%description
Line one.

Line <three> & "four".

%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/usr/sbin %{buildroot}/etc/arbor %{buildroot}/usr/share/arbor-tricky
echo 'echo' > %{buildroot}/usr/bin/arbor-tricky
echo s > %{buildroot}/usr/sbin/arbor-tricky-s
echo c > %{buildroot}/etc/arbor/conf
echo d > %{buildroot}/usr/share/arbor-tricky/data

%pre
true

%post
true

%files
%attr(0755,root,root) /usr/bin/arbor-tricky
/usr/sbin/arbor-tricky-s
%dir /etc/arbor
%config(noreplace) /etc/arbor/conf
%dir /usr/share/arbor-tricky
/usr/share/arbor-tricky/data
%ghost /usr/share/arbor-tricky/ghost

%changelog
* Tue Jan 02 2024 A <a@example.org> - 3:1.0-2
- second <change> & more
* Mon Jan 01 2024 B <b@example.org> - 1.0-1
- first
"#;

#[test]
fn metadata_is_createrepos_and_follows_the_acl() {
    let st = access::start::<App>(&[]);
    let s = &st.server;
    let work = tempfile::tempdir().unwrap();
    let hello = std::fs::read(build_rpm(
        work.path(),
        "arbor-hello",
        "1.0",
        Some("arbor-other >= 2.0"),
    ))
    .unwrap();
    let other = std::fs::read(build_rpm(work.path(), "arbor-other", "2.1", None)).unwrap();
    let tricky = std::fs::read(rpmbuild(work.path(), "tricky", TRICKY)).unwrap();
    let source = std::fs::read(rpmbuild_source(work.path(), "source", TRICKY)).unwrap();
    let files: [(&str, &[u8]); 4] = [
        ("hello.rpm", &hello),
        ("pool/other.rpm", &other),
        ("pool/tricky.rpm", &tricky),
        ("src/tricky.src.rpm", &source),
    ];
    for (rel, data) in files {
        let put = as_user(s, "alice", "PUT", &format!("{FMT}{rel}"), Some(data));
        assert_eq!(put.status, 201, "{}", put.text());
    }
    let get = |user: &str, path: &str| as_user(s, user, "GET", path, None);
    // Still dirty: no metadata yet, like the format's tar.
    assert_eq!(
        get("alice", &format!("{FMT}repodata/repomd.xml")).status,
        404
    );
    assert_eq!(as_user(s, "alice", "PATCH", FMT, Some(b"")).status, 200);

    let repomd = get("alice", &format!("{FMT}./repodata/repomd.xml"));
    assert_eq!(repomd.status, 200, "{}", repomd.text());
    assert_eq!(repomd.header("content-type"), Some("application/xml"));
    let repomd = repomd.text();
    assert_eq!(
        get("alice", &format!("{FMT}repodata/repomd.xml")).text(),
        repomd
    );
    let head = as_user(
        s,
        "alice",
        "HEAD",
        &format!("{FMT}./repodata/repomd.xml"),
        None,
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let expected = createrepo(&work.path().join("cr"), &files);
    for (kind, theirs) in expected {
        let gz = get("alice", &format!("{FMT}repodata/{kind}.xml.gz"));
        assert_eq!(gz.status, 200, "{kind}");
        assert_eq!(gz.header("content-type"), Some("application/gzip"));
        // repomd.xml names each file by its SHA-256 and size.
        let sum = crate::shared::sha256_hex(&gz.body);
        assert!(
            repomd.contains(&format!("<checksum type=\"sha256\">{sum}</checksum>")),
            "{repomd}"
        );
        assert!(
            repomd.contains(&format!("<size>{}</size>", gz.body.len())),
            "{repomd}"
        );
        let ours = gunzip(&gz.body);
        assert_eq!(comparable(&ours), comparable(&theirs), "{kind}");
    }
    let primary = gunzip(&get("alice", &format!("{FMT}repodata/primary.xml.gz")).body);
    assert!(
        primary.contains("<location href=\"pool/other.rpm\"/>"),
        "{primary}"
    );
    // Unsigned without a key.
    assert_eq!(
        get("alice", &format!("{FMT}repodata/repomd.xml.asc")).status,
        404
    );
    // Whoever may not read the format may not read its metadata, however spelled.
    for path in [
        format!("{FMT}repodata/repomd.xml"),
        format!("{FMT}./repodata/repomd.xml"),
        format!("{FMT}repodata/primary.xml.gz"),
    ] {
        let anon = s.get(&path);
        assert_eq!(anon.status, s.get(FMT).status, "{path}");
        assert_ne!(anon.status, 200, "{path}");
    }
}

#[test]
fn an_uploaded_file_wins_over_generated_metadata() {
    let s = App::start();
    s.upload_format(
        "/branches/b/t/j/rpm/",
        &[("repodata/repomd.xml", b"mine\n")],
    );
    assert_eq!(
        s.get("/branches/b/t/j/rpm/repodata/repomd.xml").text(),
        "mine\n"
    );
    // A format with repodata of its own gets none made: a generated file would not be
    // the one its repomd.xml names.
    for name in ["primary.xml.gz", "filelists.xml.gz", "repomd.xml.asc"] {
        let r = s.get(&format!("/branches/b/t/j/rpm/repodata/{name}"));
        assert_eq!(r.status, 404, "{name}");
    }
    // Without it, the files are made (with no package: empty).
    s.upload_format("/branches/b/t/j/other/", &[("x.txt", b"x")]);
    let primary = s.get("/branches/b/t/j/other/repodata/primary.xml.gz");
    assert_eq!(primary.status, 200);
    assert!(gunzip(&primary.body).contains(" packages=\"0\">"));
    assert_eq!(
        s.get("/branches/b/t/j/nope/repodata/repomd.xml").status,
        404
    );
    assert_eq!(
        s.get("/branches/b/t/j/rpm/repodata/nope.xml.gz").status,
        404
    );
}

#[test]
fn aliases_lead_to_the_metadata_of_what_they_name() {
    let s = App::start();
    s.upload_format("/branches/b/t/j/rpm/", &[("x.rpm", b"not a package")]);
    let r = s.get("/branches/b/latest/j/rpm/./repodata/repomd.xml");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("/branches/b/t/j/rpm/repodata/repomd.xml")
    );
    // A file that is not a package is skipped, never a 500.
    let primary = s.get("/branches/b/t/j/rpm/repodata/primary.xml.gz");
    assert_eq!(primary.status, 200);
    assert!(gunzip(&primary.body).contains(" packages=\"0\">"));
}
