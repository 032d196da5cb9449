//! The client commands of the `arbor` binary (issue 16), end to end: against arbor and
//! against the real dlrepo 0.44 server, each command prints what the real `dlrepo-cli`
//! prints and exits as it does; then what dlrepo-cli cannot do: parallel uploads with
//! dedup, `--resume`, verified and resumed downloads, tokens, progress on a terminal.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use crate::common::dlrepo::Dlrepo;
use common::*;
use std::path::Path;
use std::process::Command;

/// One finished client run.
pub(crate) struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// What a script would compare: the status, stdout, and the `error:`/`URL:` lines
    /// (progress lines differ on purpose).
    fn visible(&self, base: &str) -> String {
        let stderr: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:") || l.starts_with("URL:"))
            .collect();
        let text = format!(
            "exit {:?}\n{}--\n{}",
            self.code,
            self.stdout,
            stderr.join("\n")
        );
        text.replace(base, "BASE")
    }
}

/// `arbor ARGS` or `python3 dlrepo-cli ARGS` against `base`, in `cwd`, with a throw-away
/// HOME, at the root repository.
pub(crate) fn client(
    dlrepo_cli: bool,
    base: &str,
    cwd: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = client_command(dlrepo_cli, base, cwd);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("the client runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The command of [`client`], before its arguments.
fn client_command(dlrepo_cli: bool, base: &str, cwd: &Path) -> Command {
    let mut cmd = if dlrepo_cli {
        let mut cmd = Command::new("python3");
        cmd.arg(test_dep(
            "ARBOR_TEST_DLREPO_CLI",
            "dlrepo-cli.path",
            "run tests/deps/install, which writes target/test-deps/dlrepo-cli.path",
        ));
        cmd
    } else {
        Command::new(env!("CARGO_BIN_EXE_arbor"))
    };
    let home = cwd.join("home");
    std::fs::create_dir_all(&home).unwrap();
    cmd.current_dir(cwd)
        .env("HOME", &home)
        .env("DLREPO_URL", base)
        .env("DLREPO_PREFIX", "/")
        .env("DLREPO_USER", "")
        .env_remove("DLREPO_PASSWORD")
        .env_remove("ARBOR_TOKEN");
    cmd
}

/// A tree to upload: nested directories, a name with a space and a `+`, and one content
/// twice.
fn make_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("tree/sub/deeper")).unwrap();
    std::fs::write(dir.join("tree/a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.join("tree/sub/b c+d.txt"), "bravo\n").unwrap();
    std::fs::write(dir.join("tree/sub/deeper/copy.txt"), "alpha\n").unwrap();
    std::fs::write(dir.join("single.bin"), vec![7u8; 70_000]).unwrap();
}

/// Every command, in an order that exercises each, with the error cases scripts meet.
const SCRIPT: &[&[&str]] = &[
    &["upload", "main", "T1", "j1", "fmt", "tree"],
    &["upload", "main", "t1", "j1", "fmt", "single.bin"],
    &["upload", "main", "t1", "j2", "fmt", "single.bin"],
    &[
        "set-info",
        "main",
        "t1",
        "j1",
        "product=foo",
        "product_variant=x",
        "product_branch=1",
        "version=1.0",
        "color=blue",
    ],
    &["set-info", "main", "t1", "j1", "color="],
    &["set-info", "main", "t1", "j2", "color=red"],
    &["jobs", "main", "t1"],
    &["jobs", "main", "t1", "color=red"],
    &["jobs", "main", "t1", "color=nope"],
    &["tags", "main"],
    &["tags", "-r", "main"],
    &["branches"],
    &["-v", "branches"],
    &["-j", "branches"],
    &["status", "main", "t1"],
    &["-j", "status", "main", "t1"],
    &["--no-print-url", "status", "main", "t1"],
    &["set-description", "main", "t1", "hello world"],
    &["get-description", "main", "t1"],
    &["lock", "main", "t1", "j2"],
    &["lock", "-u", "main", "t1", "j2"],
    &["lock", "main", "t1"],
    &["lock", "-u", "main", "t1"],
    &["stable", "main", "t1"],
    &["stable", "-u", "main", "t1"],
    &["internal", "main", "t1", "j2"],
    &["internal", "-u", "main", "t1", "j2"],
    &["cleanup-policy", "main", "-d", "3", "-r", "2"],
    &["cleanup-policy", "main"],
    &["get", "main", "t1", "j1", "fmt", "out"],
    &["release", "main", "t1"],
    &["get-info", "main", "t1", "nope"],
    &["get", "main", "t1", "j1", "nope", "out2"],
    &["flush"],
    &["delete", "main", "t1", "j2", "fmt"],
    &["delete", "main", "t1", "j2"],
    &["jobs", "main", "t1"],
    &["delete", "main", "t1"],
    &["delete", "main"],
    &["branches"],
];

/// The script run by `dlrepo-cli` and by `arbor` against two fresh servers of one kind
/// (`start` makes one and gives its base URL).
fn same_as_dlrepo_cli<S>(start: impl Fn() -> (S, String)) {
    let mut transcripts = Vec::new();
    for dlrepo_cli in [true, false] {
        let (_server, base) = start();
        let work = tempfile::tempdir().unwrap();
        make_tree(work.path());
        let mut transcript = String::new();
        for args in SCRIPT {
            let run = client(dlrepo_cli, &base, work.path(), args, &[]);
            transcript += &format!("$ {}\n{}\n", args.join(" "), run.visible(&base));
        }
        // What `get` wrote.
        let mut files: Vec<String> = walkdir::WalkDir::new(work.path().join("out"))
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| {
                let rel = e
                    .path()
                    .strip_prefix(work.path())
                    .unwrap()
                    .display()
                    .to_string();
                format!("{rel} {}", sha256_hex(&std::fs::read(e.path()).unwrap()))
            })
            .collect();
        files.sort();
        transcript += &files.join("\n");
        transcripts.push(transcript);
    }
    let (theirs, ours) = (&transcripts[0], &transcripts[1]);
    for (a, b) in theirs.lines().zip(ours.lines()) {
        assert_eq!(
            a, b,
            "dlrepo-cli and arbor differ; dlrepo-cli:\n{theirs}\narbor:\n{ours}"
        );
    }
    assert_eq!(theirs, ours);
    // The comparison covered something: files came down, and errors were errors.
    assert!(ours.contains("out/sub/deeper/copy.txt"), "{ours}");
    assert!(ours.contains("exit Some(1)"), "{ours}");
}

#[test]
fn every_command_prints_what_dlrepo_cli_prints_against_arbor() {
    same_as_dlrepo_cli(|| {
        let s = TestServer::start();
        let base = s.base.clone();
        (s, base)
    });
}

#[test]
fn every_command_prints_what_dlrepo_cli_prints_against_dlrepo() {
    same_as_dlrepo_cli(|| {
        let s = Dlrepo::start(&[]);
        let base = s.base.clone();
        (s, base)
    });
}

#[test]
fn a_parallel_upload_deduplicates_and_resumes() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    // 60 files in nested directories, a third of them sharing one content.
    for i in 0..60 {
        let dir = tree.join(format!("d{}", i % 4)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        let data = if i % 3 == 0 {
            b"shared content\n".to_vec()
        } else {
            format!("file {i}\n").repeat(i * 50 + 1).into_bytes()
        };
        std::fs::write(dir.join(format!("f{i}.txt")), data).unwrap();
    }
    let base = s.base.clone();
    let run = |args: &[&str]| client(false, &base, work.path(), args, &[]);
    let up = run(&["-J", "8", "upload", "b", "t", "j", "f", "tree"]);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    assert!(up.stdout.contains("Browse/Download: "));
    // Every file is there, each stored once per content.
    let listed = s.get("/branches/b/t/j/f/").json();
    assert_eq!(
        listed["artifact_format"]["files"].as_array().unwrap().len(),
        60
    );
    let blobs = walkdir::WalkDir::new(s.root.path().join(".blobs"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count();
    assert_eq!(blobs, 41, "40 distinct contents, one shared");
    assert!(uploads_left(s.root.path()).is_empty());

    // An interrupted upload, run again with --resume: only the missing file is sent.
    std::fs::write(tree.join("d0/e0/late.txt"), "late\n").unwrap();
    let again = run(&["upload", "--resume", "b", "t", "j", "f", "tree"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(
        again.stderr.matches("(unchanged)").count(),
        60,
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains(" d0/e0/late.txt\n"),
        "{}",
        again.stderr
    );
    assert_eq!(s.get("/branches/b/t/j/f/d0/e0/late.txt").text(), "late\n");

    // And back down, in parallel, byte for byte.
    let down = run(&["-J", "8", "get", "b", "t", "j", "f", "down"]);
    assert_eq!(down.code, Some(0), "{}", down.stderr);
    for e in walkdir::WalkDir::new(&tree)
        .into_iter()
        .filter_map(Result::ok)
    {
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(&tree).unwrap();
            let got = std::fs::read(work.path().join("down").join(rel)).unwrap();
            assert_eq!(got, std::fs::read(e.path()).unwrap(), "{}", rel.display());
        }
    }
}

#[test]
fn downloads_are_verified_and_continue_where_they_stopped() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    s.upload_format("/branches/b/t/j/f/", &[("big.bin", &data)]);
    let base = s.base.clone();
    let run = |args: &[&str]| client(false, &base, work.path(), args, &[]);

    // What an interrupted run left: continued, and the result is whole.
    let out = work.path().join("out");
    let partial = out.join(".arbor-partial");
    std::fs::create_dir_all(&partial).unwrap();
    let part = partial.join(sha256_hex(b"big.bin"));
    std::fs::write(&part, &data[..500_000]).unwrap();
    let get = run(&["get", "b", "t", "j", "f", "out"]);
    assert_eq!(get.code, Some(0), "{}", get.stderr);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), data);
    assert!(!partial.exists(), "the partial directory is tidied away");

    // Bytes of other content: the digest check catches them and it starts over.
    std::fs::remove_file(out.join("big.bin")).unwrap();
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(&part, vec![0u8; 500_000]).unwrap();
    let get = run(&["get", "b", "t", "j", "f", "out"]);
    assert_eq!(get.code, Some(0), "{}", get.stderr);
    assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), data);

    // Content that no longer matches its digest on the server: refused, nothing left.
    let stored = s.root.path().join("branches/b/t/j/f/big.bin");
    let mut bad = std::fs::read(&stored).unwrap();
    bad[1000] ^= 1;
    std::fs::write(&stored, &bad).unwrap();
    let get = run(&["get", "b", "t", "j", "f", "bad"]);
    assert_eq!(get.code, Some(1), "{}", get.stderr);
    assert!(
        get.stderr
            .contains("downloaded data does not match digest: sha256:"),
        "{}",
        get.stderr
    );
    assert!(!work.path().join("bad/big.bin").exists());
    assert!(
        !work
            .path()
            .join("bad/.arbor-partial")
            .join(sha256_hex(b"big.bin"))
            .exists()
    );
}

#[test]
fn credentials_tokens_and_exit_statuses() {
    let (user, password) = ("ci", "s3cret");
    let secured =
        crate::common::auth::Secured::start(&[(user, password, "ci")], &[("ci", "rw /**\n")]);
    let s = &secured.server;
    let work = tempfile::tempdir().unwrap();
    let base = s.base.clone();
    let run = |args: &[&str], env: &[(&str, &str)]| client(false, &base, work.path(), args, env);

    // No credentials and no terminal to ask on: the 401 is the answer, exit 1.
    let anon = run(&["branches"], &[]);
    assert_eq!(anon.code, Some(1));
    assert!(
        anon.stderr.starts_with("error: remote: 401"),
        "{}",
        anon.stderr
    );
    // A password from the environment, or in the URL.
    let ok = run(
        &["branches"],
        &[("DLREPO_USER", user), ("DLREPO_PASSWORD", password)],
    );
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let in_url = base.replace("http://", &format!("http://{user}:{password}@"));
    let ok = run(&["-U", &in_url, "branches"], &[]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    // A token, as curl would send it.
    let token = create_token(s.root.path(), user);
    let ok = run(&["branches"], &[("ARBOR_TOKEN", &token)]);
    assert_eq!(ok.code, Some(0), "{}", ok.stderr);
    let bad = run(&["branches"], &[("ARBOR_TOKEN", "not-a-token")]);
    assert_eq!(bad.code, Some(1));
    // Bad arguments: argparse's status.
    let usage = run(&["upload", "b", "t", "j", "f", "no-such-file"], &[]);
    assert_eq!(usage.code, Some(2), "{}", usage.stderr);
    let usage = run(&["set-info", "b", "t", "j", "not a param"], &[]);
    assert_eq!(usage.code, Some(2), "{}", usage.stderr);
}

/// `arbor token create` on the server's root; the token it prints.
fn create_token(root: &Path, user: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["--root"])
        .arg(root)
        .args(["token", "create", "--user", user])
        .output()
        .expect("arbor token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.len() > 20)
        .expect("a token in the output")
        .to_owned()
}

/// Runs `command` (a client command line) in `cwd` against `base` with a pseudo-terminal
/// from `script`, as an interactive shell would give it.
fn on_a_terminal(command: &str, base: &str, cwd: &Path) -> std::process::Output {
    Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .current_dir(cwd)
        .env("DLREPO_URL", base)
        .env("DLREPO_PREFIX", "/")
        .env("DLREPO_USER", "")
        .env("HOME", cwd)
        .output()
        .expect("script (util-linux) runs")
}

#[test]
fn progress_is_drawn_on_a_terminal_only() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.bin"), vec![1u8; 200_000]).unwrap();
    let arbor = env!("CARGO_BIN_EXE_arbor");
    let out = on_a_terminal(
        &format!("{arbor} upload b t j f a.bin"),
        &s.base,
        work.path(),
    );
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(tty.contains("\u{1b}["), "no terminal drawing in {tty:?}");
    assert!(tty.contains("uploaded 1 files"), "{tty:?}");
    // Piped: plain lines, no escape sequences.
    let piped = client(
        false,
        &s.base,
        work.path(),
        &["upload", "b", "t", "j", "f", "a.bin"],
        &[],
    );
    assert!(!piped.stderr.contains('\u{1b}'), "{:?}", piped.stderr);
    assert!(
        piped.stderr.contains(" a.bin (deduplicated)\n"),
        "{}",
        piped.stderr
    );
    // Quiet: nothing on stderr at all.
    let quiet = client(
        false,
        &s.base,
        work.path(),
        &["-q", "upload", "b", "t", "j", "f", "a.bin"],
        &[],
    );
    assert_eq!(quiet.stderr, "");
}

#[test]
fn download_fetches_a_job_or_a_product_version_through_its_alias() {
    let s = TestServer::start();
    s.upload_format(
        "/branches/b/t1/j/bin/",
        &[("a.txt", b"one\n"), ("d/b.txt", b"two\n")],
    );
    s.upload_format("/branches/b/t1/j/doc/", &[("readme", b"read me\n")]);
    let meta = serde_json::json!({"job": {"product": "p", "product_variant": "v",
        "product_branch": "pb", "version": "1.0"}});
    assert_eq!(s.send_json("PATCH", "/branches/b/t1/j/", &meta).status, 200);
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| client(false, &s.base, work.path(), args, &[]);

    let want = [
        ("bin/a.txt", "one\n"),
        ("bin/d/b.txt", "two\n"),
        ("doc/readme", "read me\n"),
    ];
    for (path, dir) in [
        ("branches/b/t1/j", "job"),
        ("/branches/b/latest/j/", "alias"),
        ("products/p/v/pb/latest", "version"),
    ] {
        let out = run(&["download", path, dir]);
        assert_eq!(out.code, Some(0), "{path}: {}", out.stderr);
        for (rel, text) in want {
            let got = std::fs::read_to_string(work.path().join(dir).join(rel));
            assert_eq!(got.ok().as_deref(), Some(text), "{path}: {rel}");
        }
    }
    let one = run(&["download", "branches/b/t1/j/doc", "fmt"]);
    assert_eq!(one.code, Some(0), "{}", one.stderr);
    assert_eq!(
        std::fs::read_to_string(work.path().join("fmt/readme")).unwrap(),
        "read me\n"
    );
    let missing = run(&["download", "products/p/v/pb/9.9", "none"]);
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("error: remote: 404"),
        "{}",
        missing.stderr
    );
}

#[test]
fn login_saves_a_checked_token_that_later_commands_send() {
    let (user, password) = ("ci", "s3cret");
    let secured =
        crate::common::auth::Secured::start(&[(user, password, "ci")], &[("ci", "rw /**\n")]);
    let s = &secured.server;
    let token = create_token(s.root.path(), user);
    let work = tempfile::tempdir().unwrap();
    let login = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("login")
            .env("HOME", work.path().join("home"))
            .env("DLREPO_URL", &s.base)
            .env("DLREPO_PREFIX", "/")
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    // A token the server refuses is not saved.
    assert_eq!(login("arbor_nope_nope\n").status.code(), Some(1));
    let file = work.path().join("home/.config/arbor/tokens");
    assert!(!file.exists());
    let ok = login(&format!("{token}\n"));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Later commands send it, with no password anywhere.
    let run = |args: &[&str]| client(false, &s.base, work.path(), args, &[("DLREPO_USER", "me")]);
    let branches = run(&["branches"]);
    assert_eq!(branches.code, Some(0), "{}", branches.stderr);
    let logout = run(&["logout"]);
    assert_eq!(logout.code, Some(0), "{}", logout.stderr);
    assert_eq!(run(&["branches"]).code, Some(1));
}

/// A server that answers every request with `status` (and `body`), but HEAD with 404 (so
/// an upload goes on to its PUT), counting them: what a broken proxy or an overloaded
/// server looks like to the client.
fn fake_server(
    status: u16,
    body: &'static str,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut length, mut line) = (0usize, String::new());
            let mut head = false;
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                head |= line.starts_with("HEAD ");
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                line.clear();
            }
            let _ = reader.take(length as u64).read_to_end(&mut Vec::new());
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let reply = if head {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_owned()
            } else {
                format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            };
            let _ = conn.write_all(reply.as_bytes());
        }
    });
    (base, count)
}

#[test]
fn refusals_and_server_errors_exit_1_after_the_retries_they_deserve() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("a.bin"), b"data").unwrap();
    // A refusal is final: one request, its message, exit 1.
    for (status, body) in [
        (422, "422: invalid digest"),
        (404, "404: Not Found"),
        (401, ""),
    ] {
        let (base, count) = fake_server(status, body);
        let run = client(false, &base, work.path(), &["status", "b", "t"], &[]);
        assert_eq!(run.code, Some(1), "{status}: {}", run.stderr);
        let want = if body.is_empty() {
            format!("error: remote: HTTP Error {status}: Unauthorized")
        } else {
            format!("error: remote: {body}")
        };
        assert!(run.stderr.contains(&want), "{status}: {}", run.stderr);
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "{status}"
        );
    }
    let (base, count) = fake_server(422, "422: Received data does not match digest");
    let up = client(
        false,
        &base,
        work.path(),
        &["upload", "b", "t", "j", "f", "a.bin"],
        &[],
    );
    assert_eq!(up.code, Some(1));
    assert!(
        up.stderr.contains("error: remote: 422: Received data"),
        "{}",
        up.stderr
    );
    // A small file goes straight to its PUT (no HEAD first), sent once.
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A 503 is tried four times, with pauses, then reported.
    let (base, count) = fake_server(503, "503: busy");
    let started = std::time::Instant::now();
    let run = client(false, &base, work.path(), &["branches"], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("error: remote: 503: busy"),
        "{}",
        run.stderr
    );
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert!(started.elapsed() >= std::time::Duration::from_secs(3));
}

#[test]
fn an_upload_killed_midway_is_finished_by_resume() {
    let s = TestServer::start();
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    for i in 0..300 {
        std::fs::write(tree.join(format!("f{i:03}")), format!("{i}\n").repeat(2000)).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(["-q", "-J", "1", "upload", "b", "t", "j", "f", "tree"])
        .current_dir(work.path())
        .env("HOME", work.path())
        .env("DLREPO_URL", &s.base)
        .env("DLREPO_PREFIX", "/")
        .env("DLREPO_USER", "")
        .spawn()
        .unwrap();
    // Killed once some files, not all, are on the server.
    let fdir = s.root.path().join("branches/b/t/j/f");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_dir(&fdir).map_or(0, |d| d.count()) < 20 {
        assert!(std::time::Instant::now() < deadline, "no upload progress");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The server may still commit a PUT whose body had all arrived: wait for it to settle.
    let listed = || {
        let digests = std::fs::read(fdir.join(".digests")).unwrap();
        let digests: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&digests).unwrap();
        digests.len()
    };
    let mut before = listed();
    loop {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let now = listed();
        if now == before && uploads_left(s.root.path()).is_empty() {
            break;
        }
        before = now;
    }
    assert!((1..300).contains(&before), "{before} files before the kill");

    let again = client(
        false,
        &s.base,
        work.path(),
        &["upload", "--resume", "b", "t", "j", "f", "tree"],
        &[],
    );
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    // Exactly what had arrived is skipped; the rest is sent.
    let unchanged = again.stderr.matches("(unchanged)").count();
    assert_eq!(unchanged, before, "{}", again.stderr);
    let listed = s.get("/branches/b/t/j/f/").json();
    assert_eq!(
        listed["artifact_format"]["files"].as_array().unwrap().len(),
        300
    );
    assert_eq!(s.get("/branches/b/t/j/f/f123").text(), "123\n".repeat(2000));
    let (healthy, report) = fsck(s.root.path(), false);
    assert!(healthy, "{report}");
}

#[test]
fn what_dlrepo_cli_lacks_works_against_dlrepo_too() {
    let s = Dlrepo::start(&[]);
    let work = tempfile::tempdir().unwrap();
    make_tree(work.path());
    let run = |args: &[&str]| client(false, &s.base, work.path(), args, &[]);
    let up = run(&["-J", "8", "upload", "b", "t", "j", "f", "tree"]);
    assert_eq!(up.code, Some(0), "{}", up.stderr);
    // dlrepo's HEAD answers the Digest of a file it holds: --resume skips all of them.
    let again = run(&["upload", "--resume", "b", "t", "j", "f", "tree"]);
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert_eq!(
        again.stderr.matches("(unchanged)").count(),
        3,
        "{}",
        again.stderr
    );
    let meta = [
        "product=p",
        "product_variant=v",
        "product_branch=pb",
        "version=1.0",
    ];
    let set = run(&[&["set-info", "b", "t", "j"][..], &meta].concat());
    assert_eq!(set.code, Some(0), "{}", set.stderr);
    for (path, dir) in [
        ("branches/b/t/j", "job"),
        ("branches/b/latest/j", "alias"),
        ("products/p/v/pb/1.0", "version"),
    ] {
        let down = run(&["download", path, dir]);
        assert_eq!(down.code, Some(0), "{path}: {}", down.stderr);
        let got = std::fs::read_to_string(work.path().join(dir).join("f/sub/deeper/copy.txt"));
        assert_eq!(got.ok().as_deref(), Some("alpha\n"), "{path}");
    }
}

/// One request's head, as `listener` received it, answered with `reply`.
fn answer_once(listener: std::net::TcpListener, reply: String) -> std::thread::JoinHandle<String> {
    use std::io::{BufRead as _, BufReader, Write as _};
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let (mut head, mut line) = (String::new(), String::new());
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
            head.push_str(&line);
            line.clear();
        }
        let _ = conn.write_all(reply.as_bytes());
        head
    })
}

/// Without `LOGNAME`, `USER`, `LNAME` or `USERNAME` (a container, a cron job; or set empty), the default
/// prefix names the user ID's login, as Python's `getpass.getuser()` does for dlrepo-cli.
#[test]
fn the_default_prefix_names_the_login_when_no_variable_does() {
    let id = Command::new("id").arg("-un").output().expect("id runs");
    let login = String::from_utf8_lossy(&id.stdout).trim().to_owned();
    assert!(!login.is_empty(), "id -un named nobody");
    for dlrepo_cli in [false, true] {
        let here = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/", here.local_addr().unwrap());
        let asked = answer_once(
            here,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"branches\": []}".into(),
        );
        let work = tempfile::tempdir().unwrap();
        let mut cmd = client_command(dlrepo_cli, &base, work.path());
        cmd.env_remove("DLREPO_PREFIX").env_remove("DLREPO_USER");
        for v in ["LOGNAME", "LNAME", "USERNAME"] {
            cmd.env_remove(v);
        }
        // Set but empty counts as unset.
        cmd.env("USER", "");
        let out = cmd.arg("branches").output().expect("the client runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "dlrepo-cli {dlrepo_cli}: {out:?}"
        );
        let head = asked.join().unwrap();
        let want = format!("GET /~{login}/branches/ ");
        assert!(head.starts_with(&want), "dlrepo-cli {dlrepo_cli}: {head}");
    }
}

#[test]
fn credentials_never_follow_a_redirect_to_another_server() {
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let there = format!("http://{}/x/", elsewhere.local_addr().unwrap());
    let here = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", here.local_addr().unwrap());
    let first = answer_once(
        here,
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {there}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    let second = answer_once(
        elsewhere,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{\"branches\": []}".into(),
    );
    let work = tempfile::tempdir().unwrap();
    let env = [("DLREPO_USER", "ci"), ("DLREPO_PASSWORD", "s3cret")];
    let run = client(false, &base, work.path(), &["branches"], &env);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let asked_here = first.join().unwrap().to_ascii_lowercase();
    assert!(asked_here.contains("authorization: basic"), "{asked_here}");
    let asked_there = second.join().unwrap().to_ascii_lowercase();
    assert!(!asked_there.contains("authorization"), "{asked_there}");
}

#[test]
fn a_file_named_like_another_files_partial_is_no_trouble() {
    let s = TestServer::start();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let other = vec![b'Z'; 300_000];
    s.upload_format(
        "/branches/b/t/j/f/",
        &[
            ("big", &big),
            ("big.part", &other),
            (".arbor-partialx", b"x"),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(work.path().join("out"));
        let get = client(
            false,
            &s.base,
            work.path(),
            &["-J", "4", "get", "b", "t", "j", "f", "out"],
            &[],
        );
        assert_eq!(get.code, Some(0), "{}", get.stderr);
        assert_eq!(std::fs::read(work.path().join("out/big")).unwrap(), big);
        assert_eq!(
            std::fs::read(work.path().join("out/big.part")).unwrap(),
            other
        );
    }
}

/// A server that ignores where a `Range` asks to start (206 from byte 0) and names no
/// digest: the client must not glue its old bytes to the new ones.
#[test]
fn a_broken_range_answer_is_never_glued_to_old_bytes() {
    let body: Vec<u8> = (0..2000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let served = body.clone();
    let base = scripted_server(move |head| {
        if head.starts_with("GET /branches/b/t/j/f/ ") {
            let json = br#"{"artifact_format": {"name": "f", "files": ["a.bin"]}}"#;
            http("200 OK", "Content-Type: application/json\r\n", json)
        } else if head.to_ascii_lowercase().contains("range:") {
            let extra = format!(
                "Content-Range: bytes 0-{}/{}\r\n",
                served.len() - 1,
                served.len()
            );
            http("206 Partial Content", &extra, &served)
        } else {
            http("200 OK", "", &served)
        }
    });
    let work = tempfile::tempdir().unwrap();
    let partial = work.path().join("out/.arbor-partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::write(partial.join(sha256_hex(b"a.bin")), vec![b'Z'; 500]).unwrap();
    let get = client(
        false,
        &base,
        work.path(),
        &["get", "b", "t", "j", "f", "out"],
        &[],
    );
    assert_eq!(get.code, Some(0), "{}", get.stderr);
    assert_eq!(std::fs::read(work.path().join("out/a.bin")).unwrap(), body);
}

#[test]
fn files_stored_under_other_digests_download_and_verify() {
    let s = TestServer::start();
    use sha2::Digest as _;
    let data = b"named by sha512\n";
    let digest = format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)));
    let put = s.request(
        "PUT",
        "/branches/b/t/j/f/h.txt",
        &[("Digest", digest.as_str())],
        Some(data),
    );
    assert_eq!(put.status, 201, "{}", put.text());
    let work = tempfile::tempdir().unwrap();
    let get = client(
        false,
        &s.base,
        work.path(),
        &["get", "b", "t", "j", "f", "out"],
        &[],
    );
    assert_eq!(get.code, Some(0), "{}", get.stderr);
    assert_eq!(std::fs::read(work.path().join("out/h.txt")).unwrap(), data);
}

/// A server that answers each request with what `reply` makes of its head (request line
/// and headers): a hostile or broken server, as the client may meet one.
fn scripted_server(reply: impl Fn(&str) -> Vec<u8> + Send + 'static) -> String {
    use std::io::{BufRead as _, BufReader, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let (mut head, mut line) = (String::new(), String::new());
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                head.push_str(&line);
                line.clear();
            }
            let _ = conn.write_all(&reply(&head));
        }
    });
    base
}

fn http(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// What a hostile server (or a broken proxy) can answer never becomes a file the client
/// keeps as good, nor bytes written outside the target, nor escape sequences on the
/// terminal: each such answer is an error, exit 1.
#[test]
fn a_hostile_server_gets_errors_not_files() {
    const JSON: &str = "Content-Type: application/json\r\n";
    let listing =
        |files: &str| format!(r#"{{"artifact_format": {{"name": "f", "files": {files}}}}}"#);
    let work = tempfile::tempdir().unwrap();
    let get = |base: &str, out: &str| {
        client(
            false,
            base,
            work.path(),
            &["get", "b", "t", "j", "f", out],
            &[],
        )
    };

    // The format lists `a.txt`, which is answered with `file`.
    let one_file = |file: Vec<u8>| {
        let one = listing(r#"["a.txt"]"#);
        scripted_server(
            move |head| match head.starts_with("GET /branches/b/t/j/f/ ") {
                true => http("200 OK", JSON, one.as_bytes()),
                false => file.clone(),
            },
        )
    };

    // A file answered with a status that is not its content.
    let base = one_file(http("204 No Content", "", b""));
    let run = get(&base, "out1");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("answered 204"), "{}", run.stderr);
    assert!(!work.path().join("out1/a.txt").exists());

    // A listing that is not one (a proxy's login page), or names a file twice.
    for (body, why) in [
        ("<html>log in</html>".to_owned(), "not a listing"),
        (listing(r#"["a.txt", "a.txt"]"#), "twice"),
    ] {
        let base = scripted_server(move |_| {
            let kind = if body.starts_with('<') {
                "Content-Type: text/html\r\n"
            } else {
                JSON
            };
            http("200 OK", kind, body.as_bytes())
        });
        let run = get(&base, "out2");
        assert_eq!(run.code, Some(1), "{}", run.stderr);
        assert!(run.stderr.contains(why), "{}", run.stderr);
    }

    // Nor is it an empty list of branches.
    let base = scripted_server(|_| http("200 OK", "Content-Type: text/html\r\n", b"<html>"));
    let run = client(false, &base, work.path(), &["branches"], &[]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("not JSON"), "{}", run.stderr);

    // No Digest: kept, as dlrepo-cli keeps it, but said.
    let base = one_file(http("200 OK", "", b"unchecked"));
    let run = get(&base, "out3");
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: a.txt: the server sent no Digest"),
        "{}",
        run.stderr
    );

    // A symlink planted where unfinished downloads go, by whoever could write the target.
    let victim = work.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let partial = work.path().join("out4/.arbor-partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::os::unix::fs::symlink(&victim, partial.join(sha256_hex(b"a.txt"))).unwrap();
    let run = get(&base, "out4");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    std::fs::remove_dir_all(&partial).unwrap();
    std::os::unix::fs::symlink(work.path(), &partial).unwrap();
    let run = get(&base, "out4");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // A description any writer set prints as it is into a pipe (scripts read dlrepo-cli's
    // bytes), and without its escape sequences on a terminal.
    let tag = r#"{"tag": {"name": "t", "description": "\u001b]0;owned\u0007hi"}}"#;
    let base = scripted_server(move |_| http("200 OK", JSON, tag.as_bytes()));
    let piped = client(
        false,
        &base,
        work.path(),
        &["get-description", "b", "t"],
        &[],
    );
    assert_eq!(piped.stdout, "\x1b]0;owned\x07hi\n");
    let command = format!("{} get-description b t", env!("CARGO_BIN_EXE_arbor"));
    let tty = on_a_terminal(&command, &base, work.path());
    let tty = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.contains("?]0;owned?hi"), "{tty:?}");
    assert!(!tty.contains("\x1b]0;owned"), "{tty:?}");

    // Escape sequences in an error text reach the terminal as `?`.
    let base = scripted_server(|_| http("404 Not Found", "", b"\x1b]0;owned\x07\x1b[2Jgone"));
    let run = get(&base, "out5");
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
    assert!(
        run.stderr.contains("?]0;owned??[2Jgone"),
        "{:?}",
        run.stderr
    );
}

/// `get` through an alias takes every file from the tag the alias named when the listing
/// was read, not from whatever it names by the time each file is asked for.
#[test]
fn get_through_an_alias_stays_on_one_tag() {
    let listing = r#"{"artifact_format": {"name": "f", "files": ["a.txt"]}}"#;
    let digest = format!("Digest: sha256:{}\r\n", sha256_hex(b"from t1"));
    let base = scripted_server(move |head| {
        let path = head.split(' ').nth(1).unwrap_or_default();
        match path {
            "/branches/b/latest/j/f/" => {
                http("302 Found", "Location: /branches/b/t1/j/f/\r\n", b"")
            }
            "/branches/b/t1/j/f/" => http(
                "200 OK",
                "Content-Type: application/json\r\n",
                listing.as_bytes(),
            ),
            "/branches/b/t1/j/f/a.txt" => http("200 OK", &digest, b"from t1"),
            _ => http("404 Not Found", "", b"not here"),
        }
    });
    let work = tempfile::tempdir().unwrap();
    let run = client(
        false,
        &base,
        work.path(),
        &["get", "b", "latest", "j", "f", "out"],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(
        std::fs::read(work.path().join("out/a.txt")).unwrap(),
        b"from t1"
    );
}
