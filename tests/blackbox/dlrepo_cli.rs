//! End-to-end tests: the real, unmodified `dlrepo-cli` script of dlrepo 0.44 drives arbor
//! (spec/CLI.md). Each test starts its own server on a temp root (auth disabled) and checks
//! what the client prints, its exit status, and the server's JSON and files on disk.
//!
//! The script path comes from `ARBOR_TEST_DLREPO_CLI`, else from
//! `target/test-deps/dlrepo-cli.path` (written by `tests/deps/install`). Without either the
//! tests fail: they never pass silently.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{Client as _, TestServer, nlink, sha256_hex, test_dep, uploads_left};
use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const HOW_TO_INSTALL: &str = "run `tests/deps/install` (or `make test`), which fetches dlrepo 0.44 \
     and writes target/test-deps/dlrepo-cli.path, or set ARBOR_TEST_DLREPO_CLI to the script";

/// Where the `dlrepo-cli` script is; panics (fails the test) when it cannot be found.
fn cli_script() -> PathBuf {
    test_dep("ARBOR_TEST_DLREPO_CLI", "dlrepo-cli.path", HOW_TO_INSTALL)
}

/// One finished `dlrepo-cli` run.
struct Out {
    args: Vec<String>,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dlrepo-cli {:?}: exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `python3 dlrepo-cli ...` against one server with an isolated HOME.
struct Cli {
    script: PathBuf,
    home: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Cli {
    /// The root repository (`DLREPO_PREFIX=/`), no user: the client sends no Authorization.
    fn root(srv: &TestServer) -> Cli {
        Cli::with_env(srv, &[("DLREPO_PREFIX", "/"), ("DLREPO_USER", "")])
    }

    fn with_env(srv: &TestServer, env: &[(&str, &str)]) -> Cli {
        let mut all = vec![("DLREPO_URL".to_owned(), srv.base.clone())];
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Cli {
            script: cli_script(),
            home: tempfile::tempdir().expect("temp HOME"),
            env: all,
        }
    }

    fn run(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new("python3");
        cmd.arg(&self.script)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            // No ~/.config/dlrepo-cli from the developer's account leaks in.
            .env("HOME", self.home.path())
            // Non-ASCII file names whatever the locale of the test machine.
            .env("PYTHONUTF8", "1");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): {HOW_TO_INSTALL}"));
        Out {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs and asserts exit status 0.
    fn ok(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, Some(0), "expected success\n{out}");
        out
    }

    /// Runs and asserts exit status 1 (the client's status for every error).
    fn fails(&self, args: &[&str]) -> Out {
        let out = self.run(args);
        assert_eq!(out.code, Some(1), "expected failure\n{out}");
        out
    }
}

/// Deterministic pseudo-random bytes (xorshift64).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn write_tree(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    for (rel, data) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
}

/// Every regular file under `dir`, keyed by its `/`-separated relative path.
fn read_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.expect("walk"))
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(dir).expect("under dir");
            let rel = rel.to_str().expect("UTF-8 name").to_owned();
            (rel, std::fs::read(e.path()).expect("read"))
        })
        .collect()
}

fn blob_path(srv: &TestServer, data: &[u8]) -> PathBuf {
    let hex = sha256_hex(data);
    srv.path(&format!(".blobs/sha256/{}/{hex}", &hex[..2]))
}

fn ino(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .ino()
}

fn json_ok(srv: &TestServer, path: &str) -> serde_json::Value {
    let r = srv.get(path);
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A tree with the awkward cases: nesting, `a b+c.txt`, non-ASCII, empty and ~3 MiB files.
fn awkward_tree() -> BTreeMap<String, Vec<u8>> {
    [
        ("top.txt", b"top level\n".to_vec()),
        ("sub/deeper/nested.txt", b"nested file\n".to_vec()),
        ("sub/sibling.txt", b"sibling\n".to_vec()),
        ("a b+c.txt", b"space and plus\n".to_vec()),
        (
            "donn\u{e9}es/\u{e9}t\u{e9} \u{65e5}\u{672c}.txt",
            "caf\u{e9}\n".as_bytes().to_vec(),
        ),
        ("empty", Vec::new()),
        ("big.bin", pattern(3 * 1024 * 1024 + 17, 1)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The client sends a space as `+` and the server keeps `+` literally (spec/CLI.md §1), so
/// `a b+c.txt` is stored, listed and downloaded as `a+b+c.txt`.
fn stored_name(local: &str) -> String {
    local.replace(' ', "+")
}

#[test]
fn upload_then_get_round_trips_a_tree_byte_for_byte() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    let src = tempfile::tempdir().expect("tmp");
    let files = awkward_tree();
    write_tree(src.path(), &files);
    let stored: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (stored_name(k), v.clone()))
        .collect();

    // Names as typed (mixed case); the server lower-cases them.
    let out = cli.ok(&["upload", "Main", "Tag1", "Job1", "Fmt", s(src.path())]);
    assert_eq!(
        out.stdout,
        format!(
            "Browse/Download: {}/branches/main/tag1/job1/fmt/\n",
            srv.base
        )
    );
    assert!(
        !out.stderr.contains("deduplicated"),
        "fresh content:\n{out}"
    );

    // The server's view: every file listed (sorted), and the format is clean after the PATCH.
    let fmt = json_ok(&srv, "/branches/main/tag1/job1/fmt/");
    let listed: Vec<&str> = fmt["artifact_format"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|v| v.as_str().expect("str"))
        .collect();
    let want: Vec<&str> = stored.keys().map(String::as_str).collect();
    assert_eq!(listed, want);
    assert_eq!(fmt["artifact_format"]["dirty"], false);

    // On disk: hard links to the blobs, and `.digests` with every sha256.
    let dir = srv.path("branches/main/tag1/job1/fmt");
    assert!(!dir.join(".dirty").exists());
    let digests: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(".digests")).expect(".digests"))
            .expect("json");
    for (name, data) in &stored {
        let file = dir.join(name);
        assert_eq!(&std::fs::read(&file).expect("stored file"), data, "{name}");
        assert_eq!(
            ino(&file),
            ino(&blob_path(&srv, data)),
            "{name} is the blob"
        );
        assert_eq!(nlink(&file), 2, "{name}: blob + one use");
        assert_eq!(
            digests[name],
            format!("sha256:{}", sha256_hex(data)),
            "{name}"
        );
    }
    assert!(!dir.join("a b+c.txt").exists());

    // Download into fresh dirs: lower-case names, then names as typed (GET follows the 302s).
    for (i, names) in [
        ["main", "tag1", "job1", "fmt"],
        ["Main", "TAG1", "Job1", "FMT"],
    ]
    .iter()
    .enumerate()
    {
        let dest = tempfile::tempdir().expect("tmp");
        let target = dest.path().join(format!("out{i}"));
        let mut args = vec!["get"];
        args.extend(names);
        args.push(s(&target));
        let out = cli.ok(&args);
        assert_eq!(out.stdout, "", "{out}");
        let got = read_tree(&target);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            stored.keys().collect::<Vec<_>>(),
            "{names:?}"
        );
        for (name, data) in &stored {
            assert!(got[name] == *data, "{names:?}: {name} differs");
        }
    }
}

#[test]
fn second_upload_of_the_same_content_is_deduplicated() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    let src = tempfile::tempdir().expect("tmp");
    let files: BTreeMap<String, Vec<u8>> = [
        ("one.txt".to_owned(), b"first file\n".to_vec()),
        ("dir/two.bin".to_owned(), pattern(200_000, 7)),
        ("zero".to_owned(), Vec::new()),
    ]
    .into_iter()
    .collect();
    write_tree(src.path(), &files);

    let out = cli.ok(&["upload", "b", "t", "j1", "f", s(src.path())]);
    assert!(!out.stderr.contains("deduplicated"), "{out}");
    for data in files.values() {
        assert_eq!(nlink(&blob_path(&srv, data)), 2);
    }

    let out = cli.ok(&["upload", "b", "t", "j2", "f", s(src.path())]);
    assert_eq!(
        out.stdout,
        format!("Browse/Download: {}/branches/b/t/j2/f/\n", srv.base)
    );
    for (name, data) in &files {
        let base = name.rsplit('/').next().expect("basename");
        assert!(
            out.stderr.contains(&format!("{base} (deduplicated)")),
            "{name} not deduplicated\n{out}"
        );
        let blob = blob_path(&srv, data);
        assert_eq!(nlink(&blob), 3, "{name}: blob + two uses");
        let linked = srv.path(&format!("branches/b/t/j2/f/{name}"));
        assert_eq!(ino(&linked), ino(&blob), "{name}");
    }
    let fmt = json_ok(&srv, "/branches/b/t/j2/f/");
    assert_eq!(
        fmt["artifact_format"]["files"],
        serde_json::json!(["dir/two.bin", "one.txt", "zero"])
    );
    assert_eq!(fmt["artifact_format"]["dirty"], false);
}

#[test]
fn set_info_get_info_products_and_job_filters() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    let src = tempfile::tempdir().expect("tmp");
    let file = src.path().join("app.txt");
    std::fs::write(&file, b"the app\n").expect("write");
    cli.ok(&["upload", "B", "T", "J1", "F", s(&file)]);

    let out = cli.ok(&["set-info", "B", "T", "J1", "build=42", "Owner=MiXeD Case"]);
    assert_eq!(
        out.stdout, "",
        "no products URL without the four keys\n{out}"
    );
    // Keys keep their case, values are lower-cased; `.metadata` is PYJSON with sorted keys.
    let meta = std::fs::read_to_string(srv.path("branches/b/t/j1/.metadata")).expect("meta");
    assert_eq!(meta, r#"{"Owner": "mixed case", "build": "42"}"#);

    let out = cli.ok(&["get-info", "B", "T", "J1"]);
    assert_eq!(out.stderr, format!("URL: {}/branches/B/T/J1/\n", srv.base));
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 9, "{out}");
    assert_eq!(
        lines[..6],
        [
            "Owner=mixed case",
            "build=42",
            "locked=False",
            "name=j1",
            "released=False",
            "internal=False"
        ]
    );
    let ts: f64 = lines[6]
        .strip_prefix("timestamp=")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("timestamp line: {out}"));
    assert!(ts > 1.0e9, "{out}");
    assert_eq!(lines[7..], ["digest=", "artifact_formats=f"]);

    let out = cli.ok(&["--no-print-url", "get-info", "b", "t", "j1"]);
    assert_eq!(out.stderr, "");
    let job = json_ok(&srv, "/branches/b/t/j1/");
    assert_eq!(job["job"]["Owner"], "mixed case");
    assert_eq!(job["job"]["build"], "42");

    // `k=` deletes the key.
    cli.ok(&["set-info", "b", "t", "j1", "build="]);
    let out = cli.ok(&["--no-print-url", "get-info", "b", "t", "j1"]);
    assert!(!out.stdout.contains("build="), "{out}");
    assert!(
        out.stdout.starts_with("Owner=mixed case\nlocked=False\n"),
        "{out}"
    );

    // With the four product keys the client prints the products URL.
    let out = cli.ok(&[
        "set-info",
        "B",
        "T",
        "J1",
        "product=Foo",
        "product_variant=X86",
        "product_branch=1.0",
        "version=1.0.1",
    ]);
    assert_eq!(
        out.stdout,
        format!(
            "Browse/Download: {}/products/foo/x86/1.0/1.0.1/\n",
            srv.base
        )
    );
    let pb = json_ok(&srv, "/products/foo/x86/1.0/");
    let versions = pb["product_branch"]["versions"]
        .as_array()
        .expect("versions");
    assert_eq!(versions.len(), 1, "{pb}");
    assert_eq!(versions[0]["name"], "1.0.1");
    let ver = json_ok(&srv, "/products/foo/x86/1.0/1.0.1/");
    assert_eq!(ver["version"]["artifact_formats"], serde_json::json!(["f"]));
    let r = srv.get("/products/foo/x86/1.0/1.0.1/f/app.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"the app\n");
    assert_eq!(
        json_ok(&srv, "/products/")["products"],
        serde_json::json!([{"name": "foo"}])
    );

    // `jobs B T k=v...` is the tag's metadata filter.
    cli.ok(&["set-info", "b", "t", "j2", "product=bar", "version=2"]);
    cli.ok(&["set-info", "b", "t", "j3", "build=7"]);
    let jobs = |args: &[&str]| {
        let mut all = vec!["--no-print-url", "jobs"];
        all.extend(args);
        cli.ok(&all).stdout
    };
    assert_eq!(jobs(&["b", "t"]), "j1\nj2\nj3\n");
    // Lower-case names: on a non-canonical tag URL the server answers 302 and, as in 0.44,
    // the redirect drops the query string, i.e. the filter (spec/API.md §1.4).
    assert_eq!(jobs(&["b", "t", "product=foo"]), "j1\n");
    assert_eq!(
        jobs(&["b", "t", "product=Foo"]),
        "",
        "values are stored lower-case"
    );
    assert_eq!(jobs(&["b", "t", "product=bar", "version=2"]), "j2\n");
    assert_eq!(jobs(&["b", "t", "product=bar", "version=3"]), "");
    assert_eq!(jobs(&["b", "t", "locked=False", "build=7"]), "j3\n");
}

#[test]
fn lock_and_unlock_jobs_and_tags_whatever_the_case_typed() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    let src = tempfile::tempdir().expect("tmp");
    let file = src.path().join("f.txt");
    std::fs::write(&file, b"locked content\n").expect("write");
    cli.ok(&["upload", "main", "tag1", "job1", "fmt", s(&file)]);
    let job_dir = srv.path("branches/main/tag1/job1");
    let tag_dir = srv.path("branches/main/tag1");

    // Job lock (PUT) with the names typed in mixed case.
    let out = cli.ok(&["lock", "Main", "Tag1", "Job1"]);
    assert_eq!(out.stdout, "");
    assert!(job_dir.join(".locked").is_file());
    let digest = std::fs::read_to_string(job_dir.join(".digest")).expect(".digest on lock");
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{digest:?}"
    );
    let job = json_ok(&srv, "/branches/main/tag1/job1/");
    assert_eq!(job["job"]["locked"], true);
    assert_eq!(job["job"]["digest"], digest.as_str());

    // A locked job refuses metadata (uploads: see `refused_upload_shows_the_server_error`).
    let out = cli.fails(&["set-info", "main", "tag1", "job1", "build=1"]);
    assert_eq!(out.stderr, "error: remote: 400: Job is locked\n");

    // Job unlock (POST).
    cli.ok(&["lock", "-u", "main", "TAG1", "JOB1"]);
    assert!(!job_dir.join(".locked").exists());
    assert_eq!(
        json_ok(&srv, "/branches/main/tag1/job1/")["job"]["locked"],
        false
    );

    // Tag lock and unlock (POST on the tag).
    let status = |tag: &str| cli.ok(&["--no-print-url", "status", "main", tag]).stdout;
    cli.ok(&["lock", "main", "tag1"]);
    assert!(tag_dir.join(".locked").is_file());
    assert_eq!(
        status("tag1"),
        "released=False\nstable=False\nlocked=True\npublish_status=None\n"
    );
    cli.ok(&["lock", "-u", "main", "tag1"]);
    assert!(!tag_dir.join(".locked").exists());
    assert!(status("tag1").contains("\nlocked=False\n"));

    // Upper-case tag typed by the user: arbor must act on the canonical tag (API.md Q6;
    // 0.44 answered 302 and the client's replayed GET silently dropped the change).
    cli.ok(&["lock", "main", "TAG1"]);
    assert!(
        tag_dir.join(".locked").is_file(),
        "`lock main TAG1` did not lock tag1"
    );
    assert!(status("Tag1").contains("\nlocked=True\n"));
    assert_eq!(
        json_ok(&srv, "/branches/main/")["branch"]["tags"][0]["locked"],
        true
    );
    cli.ok(&["lock", "-u", "MAIN", "TAG1"]);
    assert!(
        !tag_dir.join(".locked").exists(),
        "`lock -u MAIN TAG1` did not unlock tag1"
    );
    assert!(status("tag1").contains("\nlocked=False\n"));
    // No second, upper-case tag was created on the way.
    let tags: Vec<String> = std::fs::read_dir(srv.path("branches/main"))
        .expect("branch dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(tags, ["tag1"]);
}

#[test]
fn status_stable_and_release_without_publishing() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    cli.ok(&["set-info", "b", "t", "j", "build=1"]);
    let tag_dir = srv.path("branches/b/t");

    let out = cli.ok(&["status", "b", "t"]);
    assert_eq!(out.stderr, format!("URL: {}/branches/b/t/\n", srv.base));
    assert_eq!(
        out.stdout,
        "released=False\nstable=False\nlocked=False\npublish_status=None\n"
    );

    cli.ok(&["stable", "B", "T"]);
    assert!(tag_dir.join(".stable").is_file());
    assert_eq!(
        cli.ok(&["--no-print-url", "status", "b", "t"]).stdout,
        "released=False\nstable=True\nlocked=False\npublish_status=None\n"
    );
    // The `stable` alias now resolves to t (GET only, 302 to the canonical URL).
    let r = srv.get("/branches/b/stable/j/");
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(r.header("location"), Some("/branches/b/t/j/"));

    cli.ok(&["stable", "-u", "b", "t"]);
    assert!(!tag_dir.join(".stable").exists());
    assert!(
        cli.ok(&["status", "b", "t"])
            .stdout
            .contains("\nstable=False\n")
    );

    // No DLREPO_PUBLISH_URL: release and unrelease are refused with 421.
    for args in [
        ["release", "b", "t"].as_slice(),
        &["release", "b", "t", "-u"],
    ] {
        let out = cli.fails(args);
        assert_eq!(out.stdout, "");
        assert_eq!(
            out.stderr,
            "error: remote: 421: DLREPO_PUBLISH_URL is undefined\n"
        );
    }
    assert!(!tag_dir.join(".released").exists());
    assert_eq!(
        cli.ok(&["--no-print-url", "status", "b", "t"]).stdout,
        "released=False\nstable=False\nlocked=False\npublish_status=None\n"
    );
}

#[test]
fn cleanup_policy_descriptions_tags_and_branches() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    for (b, t) in [
        ("alpha", "t1"),
        ("alpha", "t2"),
        ("alpha", "rel"),
        ("beta", "x"),
    ] {
        cli.ok(&["set-info", b, t, "j", "build=1"]);
    }

    // Cleanup policy: set both, read back, change one (the other is kept).
    let out = cli.ok(&["cleanup-policy", "Alpha", "-d", "3", "-r", "2"]);
    assert_eq!(out.stdout, "");
    assert_eq!(
        std::fs::read_to_string(srv.path("branches/alpha/.cleanup_policy")).expect("policy"),
        r#"{"max_daily_tags": 3, "max_released_tags": 2}"#
    );
    assert_eq!(
        cli.ok(&["cleanup-policy", "alpha"]).stdout,
        "max_daily_tags=3\nmax_released_tags=2\n"
    );
    cli.ok(&["cleanup-policy", "alpha", "-d", "5"]);
    assert_eq!(
        cli.ok(&["cleanup-policy", "alpha"]).stdout,
        "max_daily_tags=5\nmax_released_tags=2\n"
    );
    assert_eq!(
        cli.ok(&["cleanup-policy", "beta"]).stdout,
        "max_daily_tags=0\nmax_released_tags=0\n"
    );
    let out = cli.fails(&["cleanup-policy", "nosuch", "-d", "1"]);
    assert_eq!(out.stderr, "error: remote: 404: Not Found\n");

    // Descriptions are stripped on write; their case is kept.
    cli.ok(&[
        "set-description",
        "alpha",
        "T1",
        "  Nightly Build of 2024  ",
    ]);
    assert_eq!(
        std::fs::read_to_string(srv.path("branches/alpha/t1/.description")).expect("desc"),
        "Nightly Build of 2024\n"
    );
    let out = cli.ok(&["get-description", "alpha", "t1"]);
    assert_eq!(out.stdout, "Nightly Build of 2024\n");
    assert_eq!(
        out.stderr,
        format!("URL: {}/branches/alpha/t1/\n", srv.base)
    );
    assert_eq!(
        cli.ok(&["--no-print-url", "get-description", "alpha", "t2"])
            .stdout,
        ""
    );
    cli.ok(&["set-description", "alpha", "t1", ""]);
    assert!(!srv.path("branches/alpha/t1/.description").exists());
    assert_eq!(cli.ok(&["get-description", "alpha", "t1"]).stdout, "");

    // Only a publish sets `.released`; put the flag on disk as a publish would leave it.
    std::fs::write(srv.path("branches/alpha/rel/.released"), b"").expect("flag");
    cli.ok(&["lock", "alpha", "t2"]);

    let out = cli.ok(&["tags", "alpha"]);
    assert_eq!(out.stdout, "rel\nt1\nt2\n");
    assert_eq!(out.stderr, format!("URL: {}/branches/alpha/\n", srv.base));
    assert_eq!(cli.ok(&["tags", "alpha", "-r"]).stdout, "rel\n");
    assert_eq!(cli.ok(&["tags", "beta", "-r"]).stdout, "");

    let out = cli.ok(&["branches"]);
    assert_eq!(out.stdout, "alpha\nbeta\n");
    assert_eq!(out.stderr, format!("URL: {}/branches/\n", srv.base));
    assert_eq!(
        cli.ok(&["--no-print-url", "-v", "branches"]).stdout,
        "alpha: released 1/2 daily 2/5 locked 1\n\
         beta:  released   0 daily   1 locked 0\n"
    );
}

#[test]
fn delete_format_job_tag_and_branch() {
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    let src = tempfile::tempdir().expect("tmp");
    let file = src.path().join("data.txt");
    std::fs::write(&file, b"to be deleted\n").expect("write");
    for (t, j) in [("t", "j1"), ("t", "j2"), ("t2", "j")] {
        cli.ok(&["upload", "b", t, j, "f", s(&file)]);
    }
    let blob = blob_path(&srv, b"to be deleted\n");
    assert_eq!(nlink(&blob), 4);

    // Format.
    let out = cli.ok(&["delete", "b", "t", "j1", "f"]);
    assert_eq!(out.stdout, "");
    assert!(!srv.path("branches/b/t/j1/f").exists());
    assert_eq!(
        json_ok(&srv, "/branches/b/t/j1/")["job"]["artifact_formats"],
        serde_json::json!([])
    );
    assert_eq!(nlink(&blob), 3);

    // Job.
    cli.ok(&["delete", "B", "T", "J1"]);
    assert!(!srv.path("branches/b/t/j1").exists());
    assert_eq!(srv.get("/branches/b/t/j1/").status, 404);
    assert_eq!(cli.ok(&["jobs", "b", "t"]).stdout, "j2\n");
    let out = cli.fails(&["delete", "b", "t", "j1"]);
    assert_eq!(out.stderr, "error: remote: 404: Not Found\n");

    // Tag: refused while locked, by the tag and by the branch delete.
    cli.ok(&["lock", "b", "t"]);
    let out = cli.fails(&["delete", "b", "t"]);
    assert_eq!(out.stderr, "error: remote: 400: Tag t is locked\n");
    let out = cli.fails(&["delete", "b"]);
    assert_eq!(out.stderr, "error: remote: 400: Tag t is locked\n");
    assert!(srv.path("branches/b/t/j2/f/data.txt").is_file());
    assert_eq!(nlink(&blob), 3);
    cli.ok(&["lock", "-u", "b", "t"]);
    cli.ok(&["delete", "b", "t"]);
    assert!(!srv.path("branches/b/t").exists());
    assert_eq!(cli.ok(&["tags", "b"]).stdout, "t2\n");
    assert_eq!(nlink(&blob), 2);

    // A tag typed upper-case is deleted too (API.md Q6: act on the canonical tag).
    cli.ok(&["set-info", "b", "t3", "j", "build=1"]);
    cli.ok(&["delete", "b", "T3"]);
    assert!(
        !srv.path("branches/b/t3").exists(),
        "`delete b T3` did not delete t3"
    );
    assert_eq!(cli.ok(&["tags", "b"]).stdout, "t2\n");

    // Branch.
    cli.ok(&["set-info", "other", "t", "j", "build=1"]);
    cli.ok(&["delete", "b"]);
    assert!(!srv.path("branches/b").exists());
    assert!(
        !blob.exists() || nlink(&blob) == 1,
        "no use left: an orphan for GC"
    );
    assert_eq!(cli.ok(&["branches"]).stdout, "other\n");
    let out = cli.fails(&["delete", "b"]);
    assert_eq!(out.stderr, "error: remote: 404: Not Found\n");
}

#[test]
fn user_prefix_with_basic_auth_while_auth_is_disabled() {
    let srv = TestServer::start();
    // The default prefix `/~%(user)s/` and pre-emptive Basic auth, which arbor ignores while
    // DLREPO_AUTH_DISABLED is set.
    let cli = Cli::with_env(
        &srv,
        &[("DLREPO_USER", "Bob"), ("DLREPO_PASSWORD", "secret")],
    );
    let src = tempfile::tempdir().expect("tmp");
    let file = src.path().join("mine.txt");
    std::fs::write(&file, b"user data\n").expect("write");

    let out = cli.ok(&["upload", "b", "t", "j", "f", s(&file)]);
    assert_eq!(
        out.stdout,
        format!("Browse/Download: {}/~bob/branches/b/t/j/f/\n", srv.base)
    );
    assert_eq!(
        std::fs::read(srv.path("users/bob/branches/b/t/j/f/mine.txt")).expect("user file"),
        b"user data\n"
    );
    assert!(!srv.path("branches/b").exists());
    assert_eq!(
        json_ok(&srv, "/branches/")["branches"],
        serde_json::json!([])
    );

    let out = cli.ok(&["branches"]);
    assert_eq!(out.stdout, "b\n");
    assert_eq!(out.stderr, format!("URL: {}/~Bob/branches/\n", srv.base));
    let dest = tempfile::tempdir().expect("tmp");
    cli.ok(&["get", "b", "t", "j", "f", s(dest.path())]);
    assert_eq!(
        std::fs::read(dest.path().join("mine.txt")).expect("got"),
        b"user data\n"
    );

    let out = cli.ok(&["flush"]);
    assert_eq!(
        out.stdout,
        format!("deleting all branches in {}/~Bob/\n", srv.base)
    );
    assert_eq!(cli.ok(&["branches"]).stdout, "");
    assert!(!srv.path("users/bob/branches/b").exists());

    // `flush` refuses the root repository (a client-side check).
    let out = Cli::root(&srv).fails(&["flush"]);
    assert!(out.stderr.contains("is not a user space"), "{out}");
}

#[test]
fn refused_upload_shows_the_server_error() {
    // The server refuses these PUTs from their headers. The client is still sending the
    // body, so the server must read (and drop) it before closing, as aiohttp's lingering
    // close does in 0.44: else the client gets EPIPE and never shows the server's answer.
    // A body far larger than the socket buffers makes the race deterministic.
    let srv = TestServer::start();
    let cli = Cli::root(&srv);
    let src = tempfile::tempdir().expect("tmp");
    let small = src.path().join("first.txt");
    std::fs::write(&small, b"first\n").expect("write");
    cli.ok(&["upload", "b", "t", "j", "f", s(&small)]);
    cli.ok(&["lock", "b", "t", "j"]);
    let big = src.path().join("big.bin");
    std::fs::write(&big, pattern(16 << 20, 5)).expect("write");

    let out = cli.fails(&["upload", "b", "t", "j", "f", s(&big)]);
    assert!(
        out.stderr
            .ends_with("error: remote: 400: Cannot upload files in locked jobs\n"),
        "{out}"
    );
    assert!(!srv.path("branches/b/t/j/f/big.bin").exists());

    // Through an alias tag: 405.
    let out = cli.fails(&["upload", "b", "latest", "j", "f", s(&big)]);
    assert!(
        out.stderr
            .ends_with("error: remote: 405: Method Not Allowed\n"),
        "{out}"
    );
    assert!(uploads_left(srv.root.path()).is_empty());
    assert_eq!(
        json_ok(&srv, "/branches/b/t/j/f/")["artifact_format"]["files"],
        serde_json::json!(["first.txt"])
    );
}

#[test]
fn auth_enabled_server_with_user_and_password_in_the_default_prefix() {
    let etc = tempfile::tempdir().expect("tmp");
    let acls = etc.path().join("acls");
    std::fs::create_dir_all(&acls).expect("acls");
    std::fs::write(acls.join("users"), "rw /~$user/**\nr /branches/\n").expect("acl");
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "carol:s3cret:users\n").expect("auth");
    let srv = TestServer::start_with(&[
        ("DLREPO_AUTH_DISABLED", "0"),
        ("DLREPO_AUTH_FILE", s(&auth)),
        ("DLREPO_ACLS_DIR", s(&acls)),
    ]);
    let cli = Cli::with_env(
        &srv,
        &[("DLREPO_USER", "carol"), ("DLREPO_PASSWORD", "s3cret")],
    );
    let src = tempfile::tempdir().expect("tmp");
    let files = awkward_tree();
    write_tree(src.path(), &files);
    let out = cli.ok(&["upload", "b", "T", "j", "f", s(src.path())]);
    assert!(
        out.stdout.ends_with(&format!(
            "Browse/Download: {}/~carol/branches/b/t/j/f/\n",
            srv.base
        )),
        "{out}"
    );
    let dest = tempfile::tempdir().expect("tmp");
    cli.ok(&["get", "b", "t", "j", "f", s(dest.path())]);
    let expected: BTreeMap<String, Vec<u8>> = files
        .iter()
        .map(|(k, v)| (stored_name(k), v.clone()))
        .collect();
    assert_eq!(read_tree(dest.path()), expected);
    cli.ok(&["set-info", "b", "t", "j", "build=7"]);
    assert_eq!(
        cli.ok(&["get-info", "b", "t", "j"]).stdout.lines().next(),
        Some("build=7")
    );
    cli.ok(&["lock", "b", "t"]);
    assert_eq!(cli.ok(&["branches"]).stdout, "b\n");
    // Another user's repository and a wrong password are refused with the server's 401.
    let other = Cli::with_env(
        &srv,
        &[("DLREPO_USER", "carol"), ("DLREPO_PASSWORD", "nope")],
    );
    let out = other.fails(&["branches"]);
    assert!(out.stderr.contains("401"), "{out}");
    let nosy = Cli::with_env(
        &srv,
        &[
            ("DLREPO_USER", "carol"),
            ("DLREPO_PASSWORD", "s3cret"),
            ("DLREPO_PREFIX", "/~dave/"),
        ],
    );
    let out = nosy.fails(&["branches"]);
    assert!(out.stderr.contains("401"), "{out}");
}
