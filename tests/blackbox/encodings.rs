//! Every encoding of every bundle (issue 14, spec/API.md §6) decoded by the real tools:
//! GNU tar with gzip, xz and zstd, Info-ZIP's unzip, and Python's tarfile and zipfile. Each
//! archive is checked member by member against its own SHA256SUMS.txt and against what was
//! uploaded, and downloaded twice to the same bytes.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// Suffix, Content-Type.
const ENCODINGS: [(&str, &str); 5] = [
    (".tar", "application/x-tar"),
    (".tar.gz", "application/gzip"),
    (".tar.xz", "application/x-xz"),
    (".tar.zst", "application/zstd"),
    (".zip", "application/zip"),
];

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The files of the job's formats, by member name below the archive's directory.
fn upload(s: &TestServer) -> BTreeMap<String, Vec<u8>> {
    let text: Vec<u8> = (0..60_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let files: Vec<(&str, &str, Vec<u8>)> = vec![
        ("bin", "random.bin", noise(1_500_000, 7)),
        ("bin", "sub/dir/text.log", text),
        ("bin", "empty", Vec::new()),
        (
            "docs",
            "caf\u{e9} menu.txt",
            b"non-ASCII and a space\n".to_vec(),
        ),
    ];
    let mut expected = BTreeMap::new();
    for fmt in ["bin", "docs"] {
        let mine: Vec<(&str, &[u8])> = files
            .iter()
            .filter(|f| f.0 == fmt)
            .map(|f| (f.1, f.2.as_slice()))
            .collect();
        let encoded: Vec<(String, &[u8])> = mine
            .iter()
            .map(|(n, d)| (n.replace(' ', "%20").replace('\u{e9}', "%C3%A9"), *d))
            .collect();
        let refs: Vec<(&str, &[u8])> = encoded.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        s.upload_format(&format!("/branches/b/t/j/{fmt}/"), &refs);
        for (n, d) in mine {
            expected.insert(format!("{fmt}/{n}"), d.to_vec());
        }
    }
    expected
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts `file` (an archive in encoding `suffix`) into `into` with the real tools,
/// after their own integrity test.
fn extract(file: &Path, suffix: &str, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let tar = |flag: &str| {
        run(Command::new("tar")
            .arg(format!("-x{flag}f"))
            .arg(file)
            .arg("-C")
            .arg(into));
    };
    match suffix {
        ".tar" => tar(""),
        ".tar.gz" => {
            run(Command::new("gzip").arg("-t").arg(file));
            tar("z");
        }
        ".tar.xz" => {
            run(Command::new("xz").arg("-t").arg(file));
            tar("J");
        }
        ".tar.zst" => {
            run(Command::new("zstd").args(["-q", "-t"]).arg(file));
            let plain = file.with_extension("plain.tar");
            run(Command::new("zstd")
                .args(["-q", "-d", "-f"])
                .arg(file)
                .arg("-o")
                .arg(&plain));
            run(Command::new("tar")
                .arg("-xf")
                .arg(&plain)
                .arg("-C")
                .arg(into));
        }
        ".zip" => {
            run(Command::new("unzip").arg("-tq").arg(file));
            run(Command::new("unzip")
                .arg("-q")
                .arg(file)
                .arg("-d")
                .arg(into));
        }
        other => panic!("{other}"),
    }
}

/// Every regular file under `dir`, by path relative to it.
fn files_under(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            (rel, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// The members hold exactly what was uploaded (below `prefix/`), and SHA256SUMS.txt lists
/// each of them with its digest.
fn check_members(got: &BTreeMap<String, Vec<u8>>, prefix: &str, want: &BTreeMap<String, Vec<u8>>) {
    let sums_name = format!("{prefix}/SHA256SUMS.txt");
    let sums = String::from_utf8(got[&sums_name].clone()).unwrap();
    let mut listed = BTreeMap::new();
    for line in sums.lines() {
        let (hex, name) = line.split_once("  ").unwrap();
        listed.insert(name.to_owned(), hex.to_owned());
    }
    let members: BTreeMap<String, Vec<u8>> = got
        .iter()
        .filter(|(n, _)| **n != sums_name)
        .map(|(n, d)| {
            (
                n.strip_prefix(&format!("{prefix}/")).unwrap().to_owned(),
                d.clone(),
            )
        })
        .collect();
    assert_eq!(&members, want, "{prefix}: members");
    let digests: BTreeMap<String, String> = members
        .iter()
        .map(|(n, d)| (n.clone(), sha256_hex(d)))
        .collect();
    assert_eq!(digests, listed, "{prefix}: SHA256SUMS.txt");
}

/// Python's tarfile or zipfile reads the archive and checks every member against its
/// SHA256SUMS.txt; prints the member count.
const PYTHON_CHECK: &str = r#"
import hashlib, sys, tarfile, zipfile
path, kind = sys.argv[1], sys.argv[2]
if kind == "zip":
    z = zipfile.ZipFile(path)
    assert z.testzip() is None
    data = {i.filename: z.read(i) for i in z.infolist()}
else:
    with tarfile.open(path) as t:
        data = {m.name: t.extractfile(m).read() for m in t.getmembers()}
sums = [n for n in data if n.endswith("/SHA256SUMS.txt")]
assert len(sums) == 1, sums
prefix = sums[0][: -len("SHA256SUMS.txt")]
listed = {}
for line in data[sums[0]].decode().splitlines():
    digest, name = line.split("  ", 1)
    listed[prefix + name] = digest
got = {n: hashlib.sha256(d).hexdigest() for n, d in data.items() if n != sums[0]}
assert got == listed, (got, listed)
print(len(got))
"#;

fn python_check(file: &Path, suffix: &str) -> usize {
    let (path, kind) = match suffix {
        ".zip" => (file.to_path_buf(), "zip"),
        // Python's tarfile reads gzip and xz itself; zstd only from 3.14 on.
        ".tar.zst" => (file.with_extension("plain.tar"), "tar"),
        _ => (file.to_path_buf(), "tar"),
    };
    let out = run(Command::new("python3")
        .args(["-c", PYTHON_CHECK])
        .arg(&path)
        .arg(kind));
    out.trim().parse().unwrap()
}

/// Downloads `url` in every encoding and checks each as described above.
fn check_bundle(s: &TestServer, url: &str, prefix: &str, want: &BTreeMap<String, Vec<u8>>) {
    let work = tempfile::tempdir().unwrap();
    for (i, (suffix, content_type)) in ENCODINGS.into_iter().enumerate() {
        let full = format!("{url}{suffix}");
        let r = s.get(&full);
        assert_eq!(r.status, 200, "{full}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{full}");
        let name = format!("{prefix}{suffix}");
        assert_eq!(
            r.header("content-disposition"),
            Some(format!("attachment; filename=\"{name}\"; filename*=UTF-8''{name}").as_str()),
            "{full}"
        );
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let again = s.get(&full);
        assert!(again.body == r.body, "{full}: two downloads differ");
        // HEAD answers as the .tar's HEAD does (its headers are the archive side's part).
        assert_eq!(s.head(&full).status, 200, "HEAD {full}");

        let file = work.path().join(format!("a{i}{suffix}"));
        std::fs::write(&file, &r.body).unwrap();
        let into = work.path().join(format!("x{i}"));
        extract(&file, suffix, &into);
        check_members(&files_under(&into), prefix, want);
        assert_eq!(python_check(&file, suffix), want.len(), "{full}: python");
    }
}

fn with_prefix(want: &BTreeMap<String, Vec<u8>>, format: &str) -> BTreeMap<String, Vec<u8>> {
    want.iter()
        .filter_map(|(n, d)| {
            let rest = n.strip_prefix(&format!("{format}/"))?;
            Some((rest.to_owned(), d.clone()))
        })
        .collect()
}

#[test]
fn every_encoding_of_every_bundle_decodes_to_its_members() {
    let s = TestServer::start();
    let want = upload(&s);
    let bin = with_prefix(&want, "bin");
    check_bundle(&s, "/branches/b/t/j", "j-t", &want);
    check_bundle(&s, "/branches/b/t/j/bin", "j-t-bin", &bin);

    let meta = json!({"job": {"product": "foo", "product_variant": "x86",
        "product_branch": "1.0", "version": "1.0.1"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t/j/", &meta).status, 200);
    check_bundle(&s, "/products/foo/x86/1.0/1.0.1", "foo-x86-v1.0.1", &want);
    check_bundle(
        &s,
        "/products/foo/x86/1.0/1.0.1/bin",
        "foo-x86-v1.0.1-bin",
        &bin,
    );
}

#[test]
fn encodings_route_like_tar() {
    let s = TestServer::start();
    s.upload_format("/branches/b/t/j/f/", &[("a.txt", b"a")]);
    s.send_json(
        "PATCH",
        "/branches/b/t/j/",
        &json!({"job": {"product": "foo", "product_variant": "x86",
            "product_branch": "1.0", "version": "1.0.1"}}),
    );
    for (suffix, _) in ENCODINGS {
        // Aliases and other spellings redirect to the canonical URL of the same encoding.
        for (from, to) in [
            ("/branches/b/latest/j", "/branches/b/t/j"),
            ("/branches/B/T/J", "/branches/b/t/j"),
            ("/branches/b/t/j/F", "/branches/b/t/j/f"),
            (
                "/products/foo/x86/1.0/latest",
                "/products/foo/x86/1.0/1.0.1",
            ),
            (
                "/products/foo/x86/1.0/latest/f",
                "/products/foo/x86/1.0/1.0.1/f",
            ),
        ] {
            let r = s.get(&format!("{from}{suffix}"));
            assert_eq!(r.status, 302, "{from}{suffix}");
            assert_eq!(r.header("location"), Some(format!("{to}{suffix}").as_str()));
        }
        // A missing job, format or version: the answer of its .tar.
        for url in [
            "/branches/b/t/nope",
            "/branches/b/t/j/nope",
            "/branches/nope/t/j",
            "/products/foo/x86/1.0/9.9",
        ] {
            let tar = s.get(&format!("{url}.tar"));
            let enc = s.get(&format!("{url}{suffix}"));
            assert_eq!(
                (enc.status, enc.text()),
                (tar.status, tar.text()),
                "{url}{suffix}"
            );
        }
    }
    // With a slash, a name ending like an encoding is the entity of that name.
    assert_eq!(s.get("/branches/b/t/j.zip/").status, 404);
    // Suffixes that are not encodings are names, as they always were.
    for other in [".tgz", ".tar.bz2", ".gz", ".ZIP"] {
        let r = s.get(&format!("/branches/b/t/j{other}"));
        assert_ne!(r.status, 200, "{other}");
    }
}

#[test]
fn a_dirty_format_answers_as_its_tar() {
    let s = TestServer::start();
    // Uploaded but not finalised: the format stays dirty.
    assert_eq!(s.put_file("/branches/b/t/j/f/a.txt", b"a").status, 201);
    let tar_head = s.head("/branches/b/t/j/f.tar").status;
    let tar_get = s.get("/branches/b/t/j/f.tar").status;
    for (suffix, _) in ENCODINGS {
        let url = format!("/branches/b/t/j/f{suffix}");
        assert_eq!(s.head(&url).status, tar_head, "HEAD {url}");
        assert_eq!(s.get(&url).status, tar_get, "GET {url}");
    }
}

/// The zip's bytes depend on the entity, not on the blobs: a dedup upload elsewhere and a
/// restart leave them unchanged.
#[test]
fn zip_bytes_are_stable_across_dedup_and_restart() {
    let mut s = TestServer::start();
    s.upload_format("/branches/b/t/j/f/", &[("a.txt", b"shared content")]);
    let before = s.get("/branches/b/t/j.zip").body;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.upload_format("/branches/b/t/other/f/", &[("b.txt", b"shared content")]);
    assert!(
        s.get("/branches/b/t/j.zip").body == before,
        "after a dedup upload"
    );
    s.kill_and_restart();
    assert!(
        s.get("/branches/b/t/j.zip").body == before,
        "after a restart"
    );
}
