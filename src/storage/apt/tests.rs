//! Indexes of a format and of a product branch on a real data root: packages read once per
//! content, indexes made once per content, and the archive's choices (locked jobs only,
//! one stanza per package name, version and architecture).

use super::deb::testing::deb;
use super::*;
use crate::model::{JobRef, Scope};
use crate::storage::Visibility;
use crate::storage::fixture::{TestRepo, format, main_job, name, upload};
use serde_json::json;

#[test]
fn a_package_is_read_once_per_content() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let text = "Package: hello\nVersion: 1.0\n";
    let a = deb(text);
    std::fs::write(dir.path().join("sub/a.deb"), &a).unwrap();
    std::fs::write(dir.path().join("bad.deb"), b"junk").unwrap();
    let digests =
        json!({"sub/a.deb": sha256(&a), "bad.deb": sha256(b"junk"), "x.txt": "sha256:cc"});
    std::fs::write(dir.path().join(".digests"), digests.to_string()).unwrap();
    let cache = DebCache::default();
    let snap = Snapshot::read(dir.path()).unwrap();
    let (first, complete) = snap.packages(dir.path(), &cache);
    assert_eq!(first.len(), 1);
    // A file that is not a package stays so: the list is final.
    assert!(complete);
    let stanza = first[0].1.stanza(&first[0].0);
    assert!(stanza.starts_with(text), "{stanza}");
    assert!(stanza.contains("\nFilename: ./sub/a.deb\n"), "{stanza}");
    // Same digest, so the file is not read again.
    std::fs::write(dir.path().join("sub/a.deb"), b"junk").unwrap();
    let (again, _) = snap.packages(dir.path(), &cache);
    assert_eq!(again[0].1.stanza(&again[0].0), stanza);
    // A package the system could not read this time (here: gone) may be read next time.
    std::fs::remove_file(dir.path().join("bad.deb")).unwrap();
    assert!(!snap.packages(dir.path(), &DebCache::default()).1);
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(<Sha256 as sha2::Digest>::digest(bytes))
    )
}

#[test]
fn hostile_control_files_and_paths_make_no_stanza() {
    let dir = tempfile::tempdir().unwrap();
    let inject = deb("Package: legit\nVersion: 1\n\nPackage: injected\nFilename: ./../x.deb\n");
    let own = deb("Package: own\nFilename: ./../../etc/x.deb\nSHA256: 00\nVersion: 1\n");
    let plain = deb("Package: plain\n");
    let mut digests = serde_json::Map::new();
    for (rel, bytes) in [
        ("inject.deb", &inject),
        ("own.deb", &own),
        ("a\nb.deb", &plain),
    ] {
        if !rel.contains('\n') {
            std::fs::write(dir.path().join(rel), bytes).unwrap();
        }
        digests.insert(rel.into(), sha256(bytes).into());
    }
    std::fs::write(
        dir.path().join(".digests"),
        Value::Object(digests).to_string(),
    )
    .unwrap();
    let snap = Snapshot::read(dir.path()).unwrap();
    let (debs, complete) = snap.packages(dir.path(), &DebCache::default());
    assert!(complete);
    let text: String = debs.iter().map(|(rel, d)| d.stanza(rel)).collect();
    assert_eq!(debs.len(), 1, "{text}");
    assert!(
        !text.contains("injected") && !text.contains("etc/x.deb"),
        "{text}"
    );
    assert_eq!(text.matches("Filename:").count(), 1, "{text}");
    assert!(text.contains("Filename: ./own.deb\n"), "{text}");
}

/// Uploads one package per `(file, control)` to `j`'s format `deb` and finishes it.
fn debs(r: &Repo, j: &JobRef, files: &[(&str, &str)]) {
    for (file, control) in files {
        upload(r, j, "deb", file, &deb(control));
    }
    r.finalize_format(&format(j, "deb")).unwrap();
}

#[test]
fn a_repeat_reads_no_package_and_makes_no_index() {
    let r = TestRepo::new();
    let j = main_job("t", "j");
    debs(&r, &j, &[("a.deb", "Package: a\nVersion: 1\n")]);
    let f = format(&j, "deb");
    let first = r.apt_index(&f, AptIndex::PackagesXz).unwrap();
    let again = r.apt_index(&f, AptIndex::PackagesXz).unwrap();
    assert_eq!(first.bytes, again.bytes);
    let release = r.apt_index(&f, AptIndex::Release).unwrap();
    assert!(
        String::from_utf8(release.bytes.to_vec())
            .unwrap()
            .contains(" Packages.xz\n")
    );
    assert_eq!((r.apt.debs.reads(), r.apt.indexes.builds()), (1, 1));
    // A signature is made once per content and key.
    let signs = std::cell::Cell::new(0);
    let sign = |release: &[u8], _: f64| {
        signs.set(signs.get() + 1);
        release.to_vec()
    };
    for _ in 0..2 {
        let file = r.apt_index(&f, AptIndex::InRelease).unwrap();
        assert_eq!(file.signed(AptIndex::InRelease, "KEY", sign), file.bytes);
    }
    r.apt_index(&f, AptIndex::ReleaseGpg)
        .unwrap()
        .signed(AptIndex::ReleaseGpg, "KEY", sign);
    assert_eq!(signs.get(), 2);
    // Another upload (by this process or another one) changes `.digests`: new indexes,
    // and only the new package is read.
    upload(&r, &j, "deb", "b.deb", &deb("Package: b\nVersion: 1\n"));
    r.finalize_format(&f).unwrap();
    let text = r.apt_index(&f, AptIndex::Packages).unwrap().bytes;
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert_eq!(text.matches("Package: ").count(), 2, "{text}");
    assert_eq!((r.apt.debs.reads(), r.apt.indexes.builds()), (2, 2));
}

/// Links `j` into version `version` of the product branch `p/v/pb`.
fn link(r: &Repo, j: &JobRef, version: &str) {
    let meta = json!({"product": "p", "product_variant": "v", "product_branch": "pb",
        "version": version});
    let serde_json::Value::Object(meta) = meta else {
        unreachable!("an object literal")
    };
    r.patch_metadata(j, &meta, &Visibility::everything())
        .unwrap();
}

fn branch_index(r: &Repo, acl: &Visibility) -> AptFile {
    let path = [name("p"), name("v"), name("pb")];
    match r.apt_branch_index(&Scope::Root, &path, AptIndex::Packages, acl) {
        Ok(BranchIndex::File(f)) => f,
        Ok(BranchIndex::Version(v)) => panic!("a version: {}", v.url()),
        Err(e) => panic!("{e:?}"),
    }
}

fn branch_packages(r: &Repo, acl: &Visibility) -> String {
    String::from_utf8(branch_index(r, acl).bytes.to_vec()).unwrap()
}

/// The format's timestamp, as `Release` dates it.
fn format_time(r: &Repo, j: &JobRef) -> f64 {
    crate::storage::digests::format_time(&r.format_dir(&format(j, "deb"))).unwrap()
}

#[test]
fn the_archive_takes_locked_versions_and_one_stanza_per_package() {
    let r = TestRepo::new();
    let all = Visibility::everything();
    let (old, new, open) = (
        main_job("t1", "j"),
        main_job("t2", "j"),
        main_job("t3", "j"),
    );
    debs(
        &r,
        &old,
        &[("foo.deb", "Package: foo\nVersion: 1.0\nArchitecture: all\n")],
    );
    debs(
        &r,
        &new,
        &[
            ("foo.deb", "Package: foo\nVersion: 1.1\nArchitecture: all\n"),
            // The same package as in 1.0 (rebuilt): only one stanza, the newest version's.
            (
                "old/foo.deb",
                "Package: foo\nVersion: 1.0\nArchitecture: all\nX-Rebuilt: yes\n",
            ),
        ],
    );
    debs(
        &r,
        &open,
        &[("foo.deb", "Package: foo\nVersion: 1.2\nArchitecture: all\n")],
    );
    for (j, version) in [(&old, "1.0"), (&new, "1.1"), (&open, "1.2")] {
        link(&r, j, version);
    }
    // Nothing is locked yet: an empty archive.
    assert_eq!(branch_packages(&r, &all), "");
    for j in [&old, &new] {
        r.lock_job(j, &all).unwrap();
    }
    // 1.0 is the older version, whatever the clock's resolution.
    let stamp = r.version_dir(&crate::model::VersionRef {
        scope: Scope::Root,
        product: name("p"),
        variant: name("v"),
        product_branch: name("pb"),
        version: name("1.0"),
    });
    let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(stamp.join(".stamp"))
        .unwrap()
        .set_modified(past)
        .unwrap();
    // Release is dated by the newest format taken (not by the unlocked job's).
    let newest = format_time(&r, &old).max(format_time(&r, &new));
    assert_eq!(branch_index(&r, &all).time, newest);
    let text = branch_packages(&r, &all);
    assert_eq!(text.matches("Package: foo\n").count(), 2, "{text}");
    assert!(text.contains("\nFilename: ./1.1/deb/foo.deb\n"), "{text}");
    assert!(
        text.contains("X-Rebuilt: yes\nFilename: ./1.1/deb/old/foo.deb\n"),
        "{text}"
    );
    assert!(!text.contains("1.2"), "an unlocked job's version: {text}");
    // A caller who may not read 1.1 gets 1.0's own package, and another cache entry.
    let no_new = Visibility::new(|url: &str| !url.contains("/1.1/"));
    let text = branch_packages(&r, &no_new);
    assert_eq!(text.matches("Package: foo\n").count(), 1, "{text}");
    assert!(text.contains("\nFilename: ./1.0/deb/foo.deb\n"), "{text}");
    assert_eq!(
        branch_packages(&r, &all).matches("Package: foo\n").count(),
        2
    );
}

#[test]
fn a_version_named_like_an_index_wins() {
    let r = TestRepo::new();
    let j = main_job("t", "j");
    debs(&r, &j, &[("a.deb", "Package: a\nVersion: 1\n")]);
    link(&r, &j, "Release");
    let path = [name("p"), name("v"), name("pb")];
    let got = r.apt_branch_index(
        &Scope::Root,
        &path,
        AptIndex::Release,
        &Visibility::everything(),
    );
    assert!(matches!(got, Ok(BranchIndex::Version(v)) if v.version == name("release")));
    // Unless the caller may not see it.
    let hidden = Visibility::new(|url: &str| !url.ends_with("/release/"));
    let got = r.apt_branch_index(&Scope::Root, &path, AptIndex::Release, &hidden);
    assert!(matches!(got, Ok(BranchIndex::File(_))));
    let missing = [name("p"), name("v"), name("nope")];
    let got = r.apt_branch_index(&Scope::Root, &missing, AptIndex::Release, &hidden);
    assert!(matches!(got, Err(StoreError::NotFound)));
}

/// A package an ACL hides one by one is named, with its digests, by no index the caller
/// gets: the format's own index needs every file readable (the HTTP layer answers 404
/// otherwise), and the product branch's archive leaves that format out.
#[test]
fn a_hidden_package_is_in_no_index_the_caller_gets() {
    let r = TestRepo::new();
    let j = main_job("t1", "j");
    debs(
        &r,
        &j,
        &[
            (
                "pub.deb",
                "Package: pubpkg\nVersion: 1.0\nArchitecture: all\n",
            ),
            (
                "secret.deb",
                "Package: secretpkg\nVersion: 1.0\nArchitecture: all\n",
            ),
        ],
    );
    link(&r, &j, "1.0");
    r.lock_job(&j, &Visibility::everything()).unwrap();
    let f = crate::model::FormatRef::Version {
        version: crate::model::VersionRef {
            scope: Scope::Root,
            product: name("p"),
            variant: name("v"),
            product_branch: name("pb"),
            version: name("1.0"),
        },
        format: name("deb"),
    };
    let hides = Visibility::new(|url: &str| !url.ends_with("/1.0/deb/secret.deb"));
    assert!(!r.reads_every_file(&f, &hides).unwrap());
    assert!(r.reads_every_file(&f, &Visibility::everything()).unwrap());
    let text = branch_packages(&r, &hides);
    assert!(!text.contains("secretpkg"), "{text}");
    assert!(branch_packages(&r, &Visibility::everything()).contains("secretpkg"));
}

/// One small package uploaded many times is stored once but listed once per copy: past
/// `MAX_INDEX_INPUT` of metadata the index is refused, not made.
#[test]
fn many_copies_of_a_large_control_file_make_no_index() {
    let r = TestRepo::new();
    let j = main_job("t", "j");
    let control = format!(
        "Package: big\nVersion: 1\nDescription: x\n {}\n",
        "a".repeat(1_000_000)
    );
    let package = deb(&control);
    let copies = cache::MAX_INDEX_INPUT / control.len() + 2;
    for i in 0..copies {
        upload(&r, &j, "deb", &format!("big{i}.deb"), &package);
    }
    r.finalize_format(&format(&j, "deb")).unwrap();
    match r.apt_index(&format(&j, "deb"), AptIndex::Packages) {
        Err(StoreError::Refused(why)) => assert!(why.contains("more than an index"), "{why}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an index of {copies} copies was made"),
    }
}

/// A package stored under an md5 digest (which the API takes) is listed, and its index
/// kept like any other.
#[test]
fn a_package_stored_under_another_algorithm_is_listed_once_read() {
    use md5::Digest as _;
    let r = TestRepo::new();
    let j = main_job("t", "j");
    let package = deb("Package: old\nVersion: 1\n");
    let digest = format!("md5:{}", hex::encode(md5::Md5::digest(&package)));
    let digest = crate::model::Digest::parse(Some(&digest)).unwrap();
    let staged = r.stage_bytes(&digest, &package).unwrap();
    let rel = crate::model::RelPath::parse("old.deb").unwrap();
    r.store_and_link(staged, &format(&j, "deb"), &rel).unwrap();
    r.finalize_format(&format(&j, "deb")).unwrap();
    for _ in 0..2 {
        let text = r.apt_index(&format(&j, "deb"), AptIndex::Packages).unwrap();
        let text = String::from_utf8(text.bytes.to_vec()).unwrap();
        assert!(text.contains("Package: old\n"), "{text:?}");
    }
    assert_eq!((r.apt.debs.reads(), r.apt.indexes.builds()), (1, 1));
}

/// A product branch whose versions all ship the same large package lists it once, and so
/// counts it once against the limit.
#[test]
fn the_archive_counts_each_package_once() {
    let r = TestRepo::new();
    let all = Visibility::everything();
    let control = format!(
        "Package: big\nVersion: 1\nArchitecture: all\nDescription: x\n {}\n",
        "a".repeat(1_000_000)
    );
    let versions = cache::MAX_INDEX_INPUT / control.len() + 2;
    for i in 0..versions {
        let j = main_job(&format!("t{i}"), "j");
        debs(&r, &j, &[("big.deb", &control)]);
        link(&r, &j, &format!("{i}"));
        r.lock_job(&j, &all).unwrap();
    }
    let text = branch_packages(&r, &all);
    assert_eq!(text.matches("Package: big\n").count(), 1);
}
