//! Faults at the wrong moment (issue 12 items 2 and 3): a server killed while a
//! post-process command rewrites a format, a job locked while uploads to it are in flight,
//! the orphan collector running (with a lifetime of 0) while an upload pauses, and what
//! the log says when a request fails.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{
    Client as _, TestServer, digest_of, fsck, sha256_hex, spawn_logged, uploads_left,
    write_test_hooks,
};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Polls `cond` for up to 20 s; fails the test with `what` otherwise.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn age(path: &Path, secs: u64) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(secs))
        .unwrap();
}

fn blob_of(srv: &TestServer, digest: &str) -> PathBuf {
    let (algo, hex) = digest.split_once(':').unwrap();
    srv.path(&format!(".blobs/{algo}/{}/{hex}", &hex[..2]))
}

/// Opens a connection and sends the head of a request with a `Content-Length` body; the
/// caller sends the body.
fn start_request(
    srv: &TestServer,
    method: &str,
    path: &str,
    headers: &str,
    len: usize,
) -> TcpStream {
    let mut s = TcpStream::connect(&srv.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Length: {len}\r\n\
         Connection: close\r\n\r\n",
        srv.addr
    )
    .unwrap();
    s
}

/// The status code and body of the answer on `s` (`Connection: close`).
fn answer(s: TcpStream) -> (u16, String) {
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let code = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line {line:?}"));
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    let text = String::from_utf8_lossy(&rest);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (code, body)
}

// ---- post-process ---------------------------------------------------------------------

const PP_FMT: &str = "/branches/pp/t/j/f/";
const PP_FILES: [(&str, &[u8]); 3] = [
    ("a.bin", b"alpha\n"),
    ("b.bin", b"bravo\n"),
    ("sub/c.bin", b"charlie\n"),
];

/// A command that rewrites the files one at a time, waiting after the first one for as
/// long as `$MARKS/hold` exists, and says how far it got in `$MARKS`.
const HOOK: &str = r#"#!/bin/sh
set -e
for f in a.bin b.bin sub/c.bin; do
    printf 'processed\n' >> "$f"
    touch "$MARKS/rewrote-$(basename $f)"
    while [ -e "$MARKS/hold" ]; do sleep 0.02; done
done
echo new > NEW.txt
touch "$MARKS/done"
"#;

#[derive(Debug, PartialEq)]
enum Seen {
    Before,
    After,
}

/// What a killed post-process left: every file the format lists is a hard link of its
/// blob, holds the bytes its digest names, and is served with them; no file is unlisted;
/// `arbor fsck` finds nothing. And the whole is either the format before the command or
/// after it.
fn check_format(srv: &TestServer) -> Seen {
    let fdir = srv.path(PP_FMT.trim_start_matches('/'));
    let digests: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(fdir.join(".digests")).unwrap()).unwrap();
    for (rel, digest) in &digests {
        let path = fdir.join(rel);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&digest_of(&bytes), digest, "{rel}: content vs .digests");
        let (file, blob) = (
            std::fs::metadata(&path).unwrap(),
            std::fs::metadata(blob_of(srv, digest)).unwrap(),
        );
        assert_eq!(
            (file.dev(), file.ino()),
            (blob.dev(), blob.ino()),
            "{rel} is not its blob"
        );
        let r = srv.get(&format!("{PP_FMT}{rel}"));
        assert_eq!(r.status, 200, "{rel}");
        assert_eq!(r.header("digest"), Some(digest.as_str()), "{rel}");
        assert_eq!(&digest_of(&r.body), digest, "{rel}: served bytes");
    }
    for entry in walkdir::WalkDir::new(&fdir).min_depth(1) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&fdir).unwrap().to_str().unwrap();
        if entry.file_type().is_file() && rel != ".digests" && rel != ".dirty" {
            assert!(digests.contains_key(rel), "{rel} is not listed");
        }
    }
    let (ok, out) = fsck(srv.root.path(), false);
    assert!(ok, "{out}");
    let dirty = fdir.join(".dirty").exists();
    let content = |rel: &str| std::fs::read(fdir.join(rel)).unwrap();
    if digests.len() == 3 {
        for (rel, data) in PP_FILES {
            assert_eq!(content(rel), data, "{rel} before the command");
        }
        assert!(
            dirty,
            "the format was finalised without its command's output"
        );
        Seen::Before
    } else {
        assert_eq!(digests.len(), 4, "{digests:?}");
        for (rel, data) in PP_FILES {
            assert_eq!(content(rel), [data, b"processed\n"].concat(), "{rel} after");
        }
        assert_eq!(content("NEW.txt"), b"new\n");
        assert!(!dirty);
        Seen::After
    }
}

/// A server whose post-process command is [`HOOK`], with the format uploaded (dirty).
fn post_process_server(marks: &Path, pause: Option<&str>) -> TestServer {
    let hook = marks.parent().unwrap().join("hook.sh");
    executable(&hook, HOOK);
    let env = [
        ("DLREPO_POST_PROCESS_CMD", hook.to_str().unwrap()),
        ("MARKS", marks.to_str().unwrap()),
    ];
    let srv = match pause {
        Some(hooks) => {
            let config = write_test_hooks(marks.parent().unwrap(), hooks);
            TestServer::start_configured(&env, &config)
        }
        None => TestServer::start_with(&env),
    };
    for (rel, data) in PP_FILES {
        assert_eq!(srv.put_file(&format!("{PP_FMT}{rel}"), data).status, 201);
    }
    srv
}

/// Sends the `PATCH` that runs the command, without waiting for its answer.
fn start_patch(srv: &TestServer) -> TcpStream {
    start_request(srv, "PATCH", PP_FMT, "", 0)
}

/// The same root served again, without the test's pause.
fn restart(srv: TestServer, marks: &Path) -> TestServer {
    let hook = marks.parent().unwrap().join("hook.sh");
    let env = [
        ("DLREPO_POST_PROCESS_CMD", hook.to_str().unwrap()),
        ("MARKS", marks.to_str().unwrap()),
    ];
    TestServer::start_in(srv.stop(), &env)
}

#[test]
fn a_server_killed_while_its_command_rewrites_files_serves_the_format_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let srv = post_process_server(&marks, None);
    assert_eq!(check_format(&srv), Seen::Before);
    std::fs::write(marks.join("hold"), "").unwrap();
    let patch = start_patch(&srv);
    wait_for("the command to rewrite a file", || {
        marks.join("rewrote-a.bin").exists()
    });
    let srv = restart(srv, &marks);
    drop(patch);
    // The command outlives the server that started it: let it go on and finish, wherever
    // it writes.
    std::fs::remove_file(marks.join("hold")).unwrap();
    wait_for("the orphaned command to finish", || {
        marks.join("done").exists()
    });
    assert_eq!(check_format(&srv), Seen::Before);
    // The client tries again.
    std::fs::remove_file(marks.join("done")).unwrap();
    let r = srv.request("PATCH", PP_FMT, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(check_format(&srv), Seen::After);
}

#[test]
fn a_server_killed_after_its_command_ran_serves_the_format_before_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    // Each point holds the server there for long enough to kill it.
    for (point, want) in [
        ("post-process-ran", Seen::Before),
        ("post-process-staged", Seen::Before),
        ("post-process-swapped", Seen::After),
    ] {
        let _ = std::fs::remove_file(marks.join("done"));
        let pause = format!("pause_at = '{point}'\npause_ms = 20000");
        let srv = post_process_server(&marks, Some(&pause));
        let patch = start_patch(&srv);
        let fdir = srv.path(PP_FMT.trim_start_matches('/'));
        let uploads = srv.path(".uploads");
        wait_for(point, || match point {
            "post-process-ran" => marks.join("done").exists(),
            // The new tree is complete, and says where it goes.
            "post-process-staged" => std::fs::read_dir(&uploads)
                .unwrap()
                .flatten()
                .any(|e| e.path().join(".target").exists()),
            _ => fdir.join("NEW.txt").exists(),
        });
        let srv = restart(srv, &marks);
        drop(patch);
        assert_eq!(check_format(&srv), want, "killed at {point}");
        if want == Seen::Before {
            let r = srv.request("PATCH", PP_FMT, &[], None);
            assert_eq!(r.status, 200, "{point}: {}", r.text());
            assert_eq!(check_format(&srv), Seen::After, "{point}: retried");
        }
    }
}

// ---- lock and upload ------------------------------------------------------------------

/// The job digest as spec/LAYOUT.md §3.4 computes it, from the files on disk.
fn job_digest(jdir: &Path) -> String {
    let mut parts = vec![format!(
        "\".metadata\": \"sha256:{}\"",
        sha256_hex(&std::fs::read(jdir.join(".metadata")).unwrap())
    )];
    let mut formats: Vec<String> = std::fs::read_dir(jdir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    formats.sort();
    for f in formats {
        let digests = std::fs::read(jdir.join(&f).join(".digests"))
            .unwrap_or_else(|e| panic!("{f}/.digests: {e}"));
        parts.push(format!("\"{f}\": \"sha256:{}\"", sha256_hex(&digests)));
    }
    sha256_hex(format!("{{{}}}", parts.join(", ")).as_bytes())
}

#[test]
fn a_job_is_never_locked_while_an_upload_commits() {
    const ROUNDS: usize = 25;
    const UPLOADS: usize = 12;
    let srv = TestServer::start();
    let (mut locked, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let job = format!("/branches/race/t/j{round}/");
        // Clean formats, ready to be locked; the uploads go into them.
        for i in 0..UPLOADS {
            srv.upload_format(&format!("{job}f{i:02}/"), &[("seed", b"seed")]);
        }
        // Each upload has sent all of its body but the last byte.
        let bodies: Vec<Vec<u8>> = (0..UPLOADS)
            .map(|i| format!("round {round} upload {i}").into_bytes())
            .collect();
        let conns: Vec<TcpStream> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let head = format!("Digest: {}\r\n", digest_of(body));
                let path = format!("{job}f{i:02}/x");
                let mut s = start_request(&srv, "PUT", &path, &head, body.len());
                s.write_all(&body[..body.len() - 1]).unwrap();
                s
            })
            .collect();
        let lock = start_request(
            &srv,
            "PUT",
            &job,
            "Content-Type: application/json\r\n",
            r#"{"job": {"locked": true}}"#.len(),
        );
        std::thread::sleep(Duration::from_millis(20));
        let go = std::sync::Barrier::new(UPLOADS + 1);
        let (lock_answer, uploads) = std::thread::scope(|scope| {
            let handles: Vec<_> = conns
                .into_iter()
                .zip(&bodies)
                .map(|(mut s, body)| {
                    let go = &go;
                    scope.spawn(move || {
                        go.wait();
                        s.write_all(&body[body.len() - 1..]).unwrap();
                        answer(s)
                    })
                })
                .collect();
            let mut lock = lock;
            go.wait();
            lock.write_all(br#"{"job": {"locked": true}}"#).unwrap();
            let lock_answer = answer(lock);
            let uploads: Vec<(u16, String)> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            (lock_answer, uploads)
        });
        let jdir = srv.path(job.trim_start_matches('/'));
        let is_locked = jdir.join(".locked").exists();
        let stored = uploads.iter().filter(|u| u.0 == 201).count();
        for (code, body) in &uploads {
            match code {
                201 => {}
                400 | 409 => assert!(body.contains("locked"), "{code} {body}"),
                _ => panic!("round {round}: an upload answered {code} {body}"),
            }
        }
        if is_locked {
            locked += 1;
            assert_eq!(lock_answer.0, 200, "{lock_answer:?}");
            assert_eq!(stored, 0, "round {round}: uploads stored in a locked job");
            // They were checked before the lock came, and lost the race to it.
            for (code, body) in &uploads {
                assert_eq!(*code, 409, "round {round}: {body}");
            }
            for entry in std::fs::read_dir(&jdir).unwrap().flatten() {
                assert!(
                    !entry.path().join(".dirty").exists(),
                    "round {round}: a locked job holds the dirty format {:?}",
                    entry.file_name()
                );
            }
            let recorded = std::fs::read_to_string(jdir.join(".digest")).unwrap();
            assert_eq!(recorded, job_digest(&jdir), "round {round}: stale .digest");
        } else {
            refused += 1;
            assert_eq!(
                lock_answer,
                (400, "400: Job has dirty formats".to_owned()),
                "round {round}"
            );
            assert!(
                stored > 0,
                "round {round}: the lock was refused for nothing"
            );
        }
    }
    eprintln!("{locked} rounds locked, {refused} refused the lock");
}

// ---- the orphan collector -------------------------------------------------------------

fn gc_now(srv: &TestServer) {
    let mut gc = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"));
    gc.arg("gc")
        .env("DLREPO_ROOT_DIR", srv.root.path())
        .env("DLREPO_ORPHAN_BLOB_LIFETIME", "0");
    common::run_ok(&mut gc, "arbor gc");
}

#[test]
fn uploads_that_pause_survive_the_collector_with_a_lifetime_of_0() {
    let srv = TestServer::start_with(&[
        ("DLREPO_ORPHAN_BLOB_LIFETIME", "0"),
        // Written batch by batch as they arrive: small batches reach the disk at once.
        ("DLREPO_CHUNK_SIZE", "4096"),
    ]);
    // Streamed to `.uploads/` (over the size kept in memory), in two halves.
    let data: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    let digest = digest_of(&data);
    let head = format!("Digest: {digest}\r\n");
    let mut put = start_request(&srv, "PUT", "/branches/gc/t/j/f/big", &head, data.len());
    put.write_all(&data[..data.len() / 2]).unwrap();
    // A registry session, written to in two halves too.
    let r = srv.request("POST", "/v2/gc/img/blobs/uploads/", &[], Some(b""));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.header("docker-upload-uuid").unwrap().to_owned();
    // Pushes gather 1 MiB (or DLREPO_CHUNK_SIZE, when larger) before a write: half of this
    // layer is more than that, so part of it is on disk when it pauses.
    let layer = b"a layer that pauses half way".repeat(110_000);
    let mut patch = start_request(
        &srv,
        "PATCH",
        &format!("/v2/gc/img/blobs/uploads/{id}"),
        "",
        layer.len(),
    );
    patch.write_all(&layer[..layer.len() / 2]).unwrap();
    wait_for("both bodies to reach .uploads/", || {
        let size = |n: &str| std::fs::metadata(srv.path(".uploads").join(n)).map_or(0, |m| m.len());
        uploads_left(srv.root.path())
            .iter()
            .any(|n| n != &id && !n.contains('.') && size(n) > 0)
            && size(&id) > 0
    });
    // Both pause longer than any lifetime (an hour, as far as their mtimes tell), and the
    // collector runs meanwhile.
    for name in uploads_left(srv.root.path()) {
        age(&srv.path(".uploads").join(name), 3600);
    }
    gc_now(&srv);
    put.write_all(&data[data.len() / 2..]).unwrap();
    assert_eq!(answer(put), (201, "201: Created".to_owned()));
    let r = srv.get("/branches/gc/t/j/f/big");
    assert_eq!((r.status, digest_of(&r.body)), (200, digest.clone()));
    patch.write_all(&layer[layer.len() / 2..]).unwrap();
    assert_eq!(answer(patch).0, 202);
    let d = digest_of(&layer);
    let r = srv.request(
        "PUT",
        &format!("/v2/gc/img/blobs/uploads/{id}?digest={d}"),
        &[],
        Some(b""),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = srv.get(&format!("/v2/gc/img/blobs/{d}"));
    assert_eq!((r.status, digest_of(&r.body)), (200, d));
}

// ---- what a failure logs --------------------------------------------------------------

#[test]
fn a_500_logs_the_method_the_url_and_the_path_that_failed() {
    let root = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("arbor.log");
    // Where temp files go is not a directory: every upload fails on the server's side.
    std::fs::write(root.path().join(".uploads"), "in the way").unwrap();
    let env = [
        ("DLREPO_LOG_LEVEL", "WARNING"),
        ("DLREPO_LOG_OUTPUT", "console"),
    ];
    let (mut child, addr) = spawn_logged(root.path(), &env, &log);
    let agent = common::new_agent();
    let base = format!("http://{addr}");
    let r = common::send(
        &agent,
        &base,
        "PUT",
        "/branches/b/t/j/f/file.txt?x=1",
        &[("Digest", &digest_of(b"data"))],
        Some(b"data"),
    );
    assert_eq!(r.status, 500, "{}", r.text());
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("ERROR: request failed"))
        .unwrap_or_else(|| panic!("no error logged: {text}"));
    for want in [
        "method=PUT",
        "/branches/b/t/j/f/file.txt?x=1",
        &format!(
            "{}/.uploads/",
            root.path().canonicalize().unwrap().display()
        ),
        "Not a directory",
    ] {
        assert!(line.contains(want), "{want:?} missing from {line}");
    }
}

#[test]
fn the_command_still_reads_the_jobs_metadata_next_to_its_format() {
    // dlrepo ran it in the format directory: hooks read `../.metadata` to name releases.
    let dir = tempfile::tempdir().unwrap();
    let hook = dir.path().join("meta.sh");
    executable(&hook, "#!/bin/sh\ncp ../.metadata seen-metadata.json\n");
    let srv = TestServer::start_with(&[("DLREPO_POST_PROCESS_CMD", hook.to_str().unwrap())]);
    let meta = serde_json::json!({"job": {"build": "42"}});
    assert_eq!(
        srv.send_json("PATCH", "/branches/b/t/j/", &meta).status,
        200
    );
    assert_eq!(srv.put_file("/branches/b/t/j/f/a", b"a").status, 201);
    let r = srv.request("PATCH", "/branches/b/t/j/f/", &[], Some(b""));
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = srv.get("/branches/b/t/j/f/seen-metadata.json");
    assert_eq!(seen.status, 200, "{}", seen.text());
    assert_eq!(seen.json(), serde_json::json!({"build": "42"}));
}

// ---- product links ---------------------------------------------------------------------

/// A server killed in the middle of a metadata write that moves a job from one product
/// version to another (the old links gone, the new `.metadata` in, the new links not made
/// yet): `fsck` names it, and the next start links the job where its `.metadata` says.
#[test]
fn a_metadata_write_killed_midway_is_finished_by_the_next_start() {
    let srv = TestServer::start();
    assert_eq!(
        srv.put_file("/branches/b/t/j/fmt/a.txt", b"hello").status,
        201
    );
    let meta = |version: &str| {
        format!(
            r#"{{"job": {{"product": "p", "product_variant": "v", "product_branch": "pb", "version": "{version}"}}}}"#
        )
    };
    let patch = |srv: &TestServer, body: &str| {
        let head = "Content-Type: application/json\r\n";
        let mut s = start_request(srv, "PATCH", "/branches/b/t/j/", head, body.len());
        s.write_all(body.as_bytes()).unwrap();
        s
    };
    assert_eq!(answer(patch(&srv, &meta("1"))).0, 200);
    let dir = tempfile::tempdir().unwrap();
    let hooks = write_test_hooks(
        dir.path(),
        "pause_at = 'metadata-committed'\npause_ms = 20000",
    );
    let srv = TestServer::start_in_configured(srv.stop(), &hooks);
    let held = patch(&srv, &meta("2"));
    let jdir = srv.path("branches/b/t/j");
    wait_for("the new metadata", || {
        std::fs::read_to_string(jdir.join(".metadata")).is_ok_and(|m| m.contains("\"2\""))
    });
    let root = srv.stop();
    drop(held);
    let products = root.path().join("products/p/v/pb");
    assert!(!products.join("1").exists() && !products.join("2").exists());
    let (healthy, report) = fsck(root.path(), false);
    assert!(!healthy && report.contains("cut short"), "{report}");

    let srv = TestServer::start_in(root, &[]);
    let r = srv.request("GET", "/products/p/v/pb/2/fmt/a.txt", &[], None);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
    let (healthy, report) = fsck(srv.root(), false);
    assert!(healthy, "{report}");
}
