//! Publishing released tags (spec/CONFIG.md §5), black-box: a source server pushes a tag to
//! a target through a recording proxy, so each test sees the exact requests the target got.
//! Targets and sources are arbor, or the real dlrepo 0.44 server (`common::dlrepo`).
// Black-box tests check what the servers left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::dlrepo::Dlrepo;
use common::{Client as _, TestServer, digest_of};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- a minimal HTTP client for any server ------------------------------------------------

struct Http {
    base: String,
    agent: ureq::Agent,
}

struct Res {
    status: u16,
    body: Vec<u8>,
}

impl Res {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

impl Http {
    fn new(base: &str) -> Http {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_idle_connections_per_host(0)
            .build()
            .into();
        Http {
            base: base.to_owned(),
            agent,
        }
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Res {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Accept", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = if matches!(method, "GET" | "HEAD" | "DELETE") {
            self.agent.run(req.body(()).expect("request"))
        } else {
            self.agent.run(req.body(body).expect("request"))
        };
        let mut res = res.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let mut body = Vec::new();
        if method != "HEAD" {
            res.body_mut()
                .as_reader()
                .read_to_end(&mut body)
                .expect("body");
        }
        Res {
            status: res.status().as_u16(),
            body,
        }
    }

    fn get_json(&self, path: &str) -> Value {
        let r = self.request("GET", path, &[], b"");
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    fn send_json(&self, method: &str, path: &str, body: Value) -> Res {
        let data = serde_json::to_vec(&body).expect("json");
        self.request(method, path, &[("Content-Type", "application/json")], &data)
    }

    fn ok_json(&self, method: &str, path: &str, body: Value) {
        let r = self.send_json(method, path, body);
        assert_eq!(
            r.status,
            200,
            "{method} {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }

    fn upload(&self, format_url: &str, files: &[(&str, &[u8])]) {
        for (rel, data) in files {
            let d = digest_of(data);
            let r = self.request(
                "PUT",
                &format!("{format_url}{rel}"),
                &[("Digest", &d)],
                data,
            );
            assert_eq!(r.status, 201, "{rel}: {}", String::from_utf8_lossy(&r.body));
        }
        let r = self.request("PATCH", format_url, &[], b"");
        assert_eq!(r.status, 200, "PATCH {format_url}");
    }

    fn tag(&self, tag_url: &str) -> Value {
        self.get_json(tag_url)["tag"].clone()
    }
}

// ---- a recording proxy in front of a target ------------------------------------------------

/// Forwards connections to `upstream` and records each request as `METHOD PATH`, with
/// ` link` appended when it carries `X-Dlrepo-Link`.
struct Recorder {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
    /// The next this-many requests are answered `503` by the proxy itself.
    fail: Arc<Mutex<u32>>,
}

impl Recorder {
    fn start(upstream: &str) -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let fail = Arc::new(Mutex::new(0));
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let log2 = Arc::clone(&log);
        let fail2 = Arc::clone(&fail);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let log = Arc::clone(&log2);
                let fail = Arc::clone(&fail2);
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || relay_requests(client, server, &log, &fail));
                std::thread::spawn(move || {
                    let (mut from, mut to) = (s2, c2);
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Recorder { base, log, fail }
    }

    fn fail_next(&self, n: u32) {
        *self.fail.lock().expect("fail") = n;
    }

    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("log"))
    }

    fn snapshot(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

/// Client → server: parses request heads (bodies go by `Content-Length`; the publisher
/// never sends chunked bodies) and forwards everything unchanged.
fn relay_requests(
    client: TcpStream,
    mut server: TcpStream,
    log: &Mutex<Vec<String>>,
    fail: &Mutex<u32>,
) {
    let mut reader = BufReader::new(client);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => {
                    let _ = server.shutdown(std::net::Shutdown::Write);
                    return;
                }
                Ok(_) => {}
            }
            let end = line == b"\r\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.lines();
        let first: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
        let mut len = 0u64;
        let mut link = false;
        for l in lines {
            let Some((k, v)) = l.split_once(':') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => len = v.trim().parse().unwrap_or(0),
                "x-dlrepo-link" => link = true,
                "transfer-encoding" => panic!("chunked request in a publish: {text}"),
                _ => {}
            }
        }
        let entry = format!(
            "{} {}{}",
            first.first().unwrap_or(&""),
            first.get(1).unwrap_or(&""),
            if link { " link" } else { "" }
        );
        let refuse = {
            let mut n = fail.lock().expect("fail");
            let refuse = *n > 0;
            *n = n.saturating_sub(1);
            refuse
        };
        if refuse {
            log.lock().expect("log").push(format!("{entry} (503)"));
            let mut body = (&mut reader).take(len);
            let _ = std::io::copy(&mut body, &mut std::io::sink());
            let answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
            if reader.get_mut().write_all(answer).is_err() {
                return;
            }
            continue;
        }
        log.lock().expect("log").push(entry);
        if server.write_all(&head).is_err() {
            return;
        }
        let mut body = (&mut reader).take(len);
        if std::io::copy(&mut body, &mut server).is_err() {
            return;
        }
    }
}

// ---- servers -------------------------------------------------------------------------------

fn auth_file(dir: &Path) -> PathBuf {
    let p = dir.join("publish-auth");
    std::fs::write(&p, "publisher:secret\n").expect("auth file");
    p
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the source's status for the tag satisfies `f`.
fn wait_status(src: &Http, tag_url: &str, f: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let last = src.tag(tag_url)["publish_status"].clone();
        if f(&last) {
            return last;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting on the publish status, last {last}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- the tag every test publishes ------------------------------------------------------------

const TAG: &str = "/branches/rel/v1.0/";
const F1: &[u8] = b"first file\n";

/// `rel/v1.0` with: joba (locked, metadata, `bin` + internal `debug`), jobb (not locked),
/// jobc (locked, one file with joba's content: the target links it), jobi (locked, internal).
fn make_tag(src: &Http) {
    src.upload(
        &format!("{TAG}joba/bin/"),
        &[("f1.txt", F1), ("sub/f2.txt", b"second\n")],
    );
    src.upload(&format!("{TAG}joba/debug/"), &[("sym.dbg", b"symbols\n")]);
    src.ok_json(
        "PATCH",
        &format!("{TAG}joba/"),
        json!({"job": {"product": "prd", "version": "1.0", "product_variant": "x86", "product_branch": "1", "build": "7"}}),
    );
    src.upload(&format!("{TAG}jobb/bin/"), &[("b.txt", b"unfinished\n")]);
    src.upload(&format!("{TAG}jobc/bin/"), &[("same.txt", F1)]);
    src.upload(&format!("{TAG}jobi/bin/"), &[("i.txt", b"internal\n")]);
    src.ok_json(
        "PUT",
        &format!("{TAG}jobi/"),
        json!({"job": {"internal": true}}),
    );
    for job in ["joba", "jobc", "jobi"] {
        src.ok_json(
            "PUT",
            &format!("{TAG}{job}/"),
            json!({"job": {"locked": true}}),
        );
    }
}

fn release(src: &Http, released: bool) {
    src.ok_json("POST", TAG, json!({"tag": {"released": released}}));
}

/// Releases and waits for the `published to` status.
fn publish(src: &Http, urls: &str) {
    release(src, true);
    let want = format!("published to {urls}");
    // The status goes back to `in progress` first; wait past a stale `published to`.
    wait_status(src, TAG, |s| {
        s.as_str() == Some(&want) || s.as_str().is_some_and(|s| s.starts_with("error"))
    });
    let status = src.tag(TAG)["publish_status"].clone();
    assert_eq!(status, json!(want));
}

fn job_names(tag: &Value) -> Vec<String> {
    tag["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| j["name"].as_str().expect("name").to_owned())
        .collect()
}

/// Publishes `make_tag` from `src` to `target` through a recorder, then checks the first
/// round, a second round that uploads nothing, and the un-publish.
fn publish_round_trip(src: &Http, target: &Http, rec: &Recorder) {
    make_tag(src);
    publish(src, &rec.base);
    let first = rec.take();

    // What the target holds: the locked, non-internal jobs, without internal formats.
    let tag = target.tag(TAG);
    assert_eq!(job_names(&tag), ["joba", "jobc"], "{first:?}");
    for job in ["joba", "jobc"] {
        let mine = src.get_json(&format!("{TAG}{job}/"))["job"].clone();
        let theirs = target.get_json(&format!("{TAG}{job}/"))["job"].clone();
        assert_eq!(theirs["locked"], json!(true));
        assert_eq!(theirs["artifact_formats"], json!(["bin"]), "{job}");
        // The target computed the same digest: byte-identical dot-files on both sides.
        assert_eq!(theirs["digest"], mine["digest"], "{job}");
        assert_ne!(mine["digest"], json!(""));
    }
    let joba = target.get_json(&format!("{TAG}joba/"))["job"].clone();
    assert_eq!(
        (joba["product"].clone(), joba["build"].clone()),
        (json!("prd"), json!("7"))
    );
    let f2 = target.request("GET", &format!("{TAG}joba/bin/sub/f2.txt"), &[], b"");
    assert_eq!((f2.status, f2.body.as_slice()), (200, &b"second\n"[..]));

    // The requests: nothing about jobb or the debug format; jobi deleted; jobc linked.
    assert!(
        !first
            .iter()
            .any(|r| r.contains("/jobb/") || r.contains("/debug/")),
        "{first:?}"
    );
    assert!(first.contains(&format!("DELETE {TAG}jobi/")), "{first:?}");
    assert!(
        first.contains(&format!("PUT {TAG}jobc/bin/same.txt link")),
        "{first:?}"
    );
    assert!(
        first.contains(&format!("PUT {TAG}joba/bin/f1.txt")),
        "{first:?}"
    );
    let tail: Vec<&str> = first
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(
        tail,
        [
            &format!("PUT {TAG}jobc/") as &str,
            &format!("DELETE {TAG}jobi/"),
            &format!("GET {TAG}"),
        ],
        "{first:?}"
    );

    // The source flags.
    let tag = src.tag(TAG);
    assert_eq!(tag["released"], json!(true));
    let released: Vec<(String, bool)> = tag["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .map(|j| {
            (
                j["name"].as_str().unwrap_or("").to_owned(),
                j["released"] == json!(true),
            )
        })
        .collect();
    assert_eq!(
        released,
        [
            ("joba".to_owned(), true),
            ("jobb".to_owned(), false),
            ("jobc".to_owned(), true),
            ("jobi".to_owned(), false)
        ]
    );

    // Second round: same digests, so nothing is uploaded.
    publish_again(src, rec);
    let second = rec.take();
    assert_eq!(
        second,
        [
            format!("GET {TAG}joba/"),
            format!("GET {TAG}jobc/"),
            format!("DELETE {TAG}jobi/"),
            format!("GET {TAG}"),
        ]
    );

    // Un-publish: the target loses the tag, the source its flags and status.
    release(src, false);
    wait_status(src, TAG, Value::is_null);
    let tag = src.tag(TAG);
    assert_eq!(tag["released"], json!(false));
    assert!(
        tag["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["released"] == json!(false))
    );
    assert_eq!(rec.take(), [format!("DELETE {TAG}")]);
    assert_eq!(target.request("GET", TAG, &[], b"").status, 404);
}

/// A release while the status already says `published to`: waits for the round's last
/// request (the tag GET) to reach the target, then for the status it precedes.
fn publish_again(src: &Http, rec: &Recorder) {
    release(src, true);
    wait_for("the second round's tag GET", || {
        rec.snapshot()
            .last()
            .is_some_and(|r| *r == format!("GET {TAG}"))
    });
    wait_status(src, TAG, |s| {
        s.as_str().is_some_and(|s| s.starts_with("published to"))
    });
}

fn arbor_source(target_url: &str, dir: &Path, extra: &[(&str, &str)]) -> TestServer {
    let auth = auth_file(dir);
    let mut env = vec![
        ("DLREPO_PUBLISH_URL", target_url),
        ("DLREPO_PUBLISH_AUTH", auth.to_str().expect("utf-8 path")),
        ("DLREPO_INTERNAL_FORMAT_FILTER", "debug"),
    ];
    env.extend_from_slice(extra);
    TestServer::start_with(&env)
}

// ---- tests -----------------------------------------------------------------------------------

// Until the tag POST handler calls `arbor::publish::start_release`, every release is refused

#[test]
fn arbor_publishes_to_arbor_skipping_unlocked_and_internal_then_unpublishes() {
    let target = TestServer::start();
    let rec = Recorder::start(&target.base);
    let dir = tempfile::tempdir().expect("temp dir");
    let src = arbor_source(&rec.base, dir.path(), &[]);
    publish_round_trip(&Http::new(&src.base), &Http::new(&target.base), &rec);
    // Nothing was left on the target's disk: the tag is gone.
    assert!(!target.path("branches/rel/v1.0").exists());
    // The source never got the flag on disk once un-released.
    assert!(!src.path("branches/rel/v1.0/.released").exists());
    assert!(!src.path("branches/rel/v1.0/.publish-status").exists());
}

#[test]
fn arbor_publishes_to_a_real_dlrepo() {
    let target = Dlrepo::start(&[]);
    let rec = Recorder::start(&target.base);
    let dir = tempfile::tempdir().expect("temp dir");
    let src = arbor_source(&rec.base, dir.path(), &[]);
    publish_round_trip(&Http::new(&src.base), &Http::new(&target.base), &rec);
}

#[test]
fn a_real_dlrepo_publishes_to_arbor() {
    let target = TestServer::start();
    let rec = Recorder::start(&target.base);
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = auth_file(dir.path());
    let src = Dlrepo::start(&[
        ("DLREPO_PUBLISH_URL", &rec.base),
        ("DLREPO_PUBLISH_AUTH", auth.to_str().expect("utf-8 path")),
        ("DLREPO_INTERNAL_FORMAT_FILTER", "debug"),
    ]);
    publish_round_trip(&Http::new(&src.base), &Http::new(&target.base), &rec);
}

#[test]
fn transient_failures_are_retried() {
    let target = TestServer::start();
    let rec = Recorder::start(&target.base);
    let dir = tempfile::tempdir().expect("temp dir");
    let src = arbor_source(&rec.base, dir.path(), &[]);
    let http = Http::new(&src.base);
    make_tag(&http);
    // Two 503s in a row, then the target answers: the third try of the first request works.
    rec.fail_next(2);
    publish(&http, &rec.base);
    let log = rec.take();
    let job = format!("GET {TAG}joba/");
    assert_eq!(
        log[..3],
        [format!("{job} (503)"), format!("{job} (503)"), job.clone()],
        "{log:?}"
    );
    assert_eq!(
        job_names(&Http::new(&target.base).tag(TAG)),
        ["joba", "jobc"]
    );

    // Three in a row is one too many: the publish stops with the target's answer.
    rec.fail_next(3);
    release(&http, true);
    let status = wait_status(&http, TAG, |s| {
        s.as_str().is_some_and(|s| s.starts_with("error: "))
    });
    assert_eq!(
        status,
        json!(format!(
            "error: 503, message='Service Unavailable', url='{}{TAG}joba/'",
            rec.base
        ))
    );
}

/// A source publishing to `target_url`, whose release of `make_tag` ends in an error; returns
/// the source, a client for it, and the `error: ...` status.
fn failing_release(
    target_url: &str,
    dir: &Path,
    extra: &[(&str, &str)],
) -> (TestServer, Http, String) {
    let src = arbor_source(target_url, dir, extra);
    let http = Http::new(&src.base);
    make_tag(&http);
    release(&http, true);
    let status = wait_status(&http, TAG, |s| {
        s.as_str().is_some_and(|s| s.starts_with("error: "))
    });
    let status = status.as_str().unwrap_or_default().to_owned();
    (src, http, status)
}

#[test]
fn an_unreachable_target_leaves_an_error_status_and_no_flags() {
    // A port nobody listens on: bound, then closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let (_src, http, status) = failing_release(&url, dir.path(), &[]);
    assert!(status.contains(&url), "{status}");
    let tag = http.tag(TAG);
    assert_eq!(tag["released"], json!(false));
    assert!(
        tag["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["released"] == json!(false))
    );
}

#[test]
fn the_filter_command_picks_targets_in_the_tag_dir() {
    let (t1, t2) = (TestServer::start(), TestServer::start());
    let dir = tempfile::tempdir().expect("temp dir");
    let seen = dir.path().join("seen");
    let script = dir.path().join("filter");
    // Records its working directory and argument; agrees to the first target only.
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$(pwd) $1\" >> {}\n[ \"$1\" = \"{}\" ]\n",
            seen.display(),
            t1.base
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let urls = format!("{},{}", t1.base, t2.base);
    let src = arbor_source(
        &urls,
        dir.path(),
        &[("DLREPO_PUBLISH_FILTER_CMD", script.to_str().expect("utf-8"))],
    );
    let http = Http::new(&src.base);
    make_tag(&http);
    // The status names every configured target, even the one the filter skipped (Q43).
    publish(&http, &urls);
    assert_eq!(
        Http::new(&t1.base).request("GET", TAG, &[], b"").status,
        200
    );
    assert_eq!(
        Http::new(&t2.base).request("GET", TAG, &[], b"").status,
        404
    );
    let tag_dir = std::fs::canonicalize(src.path("branches/rel/v1.0")).expect("tag dir");
    let seen = std::fs::read_to_string(&seen).expect("filter ran");
    assert_eq!(
        seen,
        format!("{0} {1}\n{0} {2}\n", tag_dir.display(), t1.base, t2.base)
    );
}

#[test]
fn release_needs_both_publish_settings() {
    let srv = TestServer::start_with(&[("DLREPO_PUBLISH_URL", "http://127.0.0.1:9")]);
    let http = Http::new(&srv.base);
    http.upload(&format!("{TAG}joba/bin/"), &[("f1.txt", F1)]);
    let r = http.send_json("POST", TAG, json!({"tag": {"released": true}}));
    assert_eq!(r.status, 421);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "421: DLREPO_PUBLISH_AUTH is undefined"
    );
}

/// Sets `tag`'s creation time `secs` in the past, so cleanup sees it as older.
fn age_tag(srv: &TestServer, tag_url: &str, secs: u64) {
    let stamp = srv.path(&format!("{}.stamp", tag_url.trim_start_matches('/')));
    std::fs::File::options()
        .write(true)
        .open(&stamp)
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(secs)))
        .unwrap_or_else(|e| panic!("{}: {e}", stamp.display()));
}

/// A locked job in `tag_url`, released and published to `target_url`.
fn published_tag(http: &Http, tag_url: &str, target_url: &str) {
    http.upload(
        &format!("{tag_url}job/bin/"),
        &[("f.txt", tag_url.as_bytes())],
    );
    http.ok_json(
        "PUT",
        &format!("{tag_url}job/"),
        json!({"job": {"locked": true}}),
    );
    http.ok_json("POST", tag_url, json!({"tag": {"released": true}}));
    let want = format!("published to {target_url}");
    let status = wait_status(http, tag_url, |s| {
        s.as_str() == Some(&want) || s.as_str().is_some_and(|s| s.starts_with("error"))
    });
    assert_eq!(status, json!(want));
}

/// rel/v1 (older) and rel/v2, both published to `target`; the branch keeps one released tag.
fn two_released_tags_one_too_many(src: &TestServer, target: &TestServer) {
    let http = Http::new(&src.base);
    let (old, new) = ("/branches/rel/v1/", "/branches/rel/v2/");
    published_tag(&http, old, &target.base);
    published_tag(&http, new, &target.base);
    age_tag(src, old, 1000);
    http.ok_json(
        "POST",
        "/branches/rel/",
        json!({"branch": {"max_released_tags": 1}}),
    );
}

#[test]
fn cleanup_unpublishes_a_released_tag_before_deleting_it() {
    let target = TestServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let src = arbor_source(&target.base, dir.path(), &[]);
    two_released_tags_one_too_many(&src, &target);
    assert!(target.path("branches/rel/v1/job/bin/f.txt").exists());

    let pid = nix::unistd::Pid::from_raw(i32::try_from(src.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).expect("SIGUSR1");
    wait_for("the cleanup to delete v1", || {
        !src.path("branches/rel/v1").exists()
    });
    // Gone from the target too, and only that tag.
    assert!(!target.path("branches/rel/v1").exists());
    assert!(target.path("branches/rel/v2/job/bin/f.txt").exists());
    assert!(src.path("branches/rel/v2/.released").exists());
}

#[test]
fn cleanup_keeps_a_released_tag_it_cannot_unpublish() {
    let target = TestServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = auth_file(dir.path());
    let src = arbor_source(&target.base, dir.path(), &[]);
    let http = Http::new(&src.base);
    two_released_tags_one_too_many(&src, &target);
    let old = "/branches/rel/v1/";

    // `arbor gc` pointed at a target that is down: v1 stays, everywhere, and says why.
    let down = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port");
    let down = format!("http://{down}");
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_arbor"))
            .arg("gc")
            .env("DLREPO_ROOT_DIR", src.root.path())
            .env("DLREPO_PUBLISH_URL", url)
            .env("DLREPO_PUBLISH_AUTH", &auth)
            .output()
            .expect("arbor gc")
    };
    let out = run(&down);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("kept released tag rel/v1: unpublish failed: "),
        "{stdout}"
    );
    assert!(!stdout.contains("deleted tag rel/v1"), "{stdout}");
    assert!(src.path("branches/rel/v1/.released").exists());
    assert!(target.path("branches/rel/v1/job/bin/f.txt").exists());
    let status = http.tag(old)["publish_status"].clone();
    assert!(
        status.as_str().is_some_and(|s| s.starts_with("error: ")),
        "{status}"
    );

    // Once the target answers again, the next run retracts and deletes it.
    let out = run(&target.base);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deleted tag rel/v1"), "{stdout}");
    assert!(!src.path("branches/rel/v1").exists());
    assert!(!target.path("branches/rel/v1").exists());
    assert!(target.path("branches/rel/v2/job/bin/f.txt").exists());
}

/// A target that accepts connections, reads nothing and answers nothing: its URL, and the
/// connections it holds.
fn silent_target() -> (String, Arc<Mutex<Vec<TcpStream>>>) {
    let hole = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", hole.local_addr().expect("addr"));
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for c in hole.incoming().flatten() {
            keep.lock().expect("held").push(c);
        }
    });
    (url, held)
}

#[test]
fn a_stop_interrupts_a_stuck_publish_and_says_so() {
    let (url, held) = silent_target();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut src = arbor_source(
        &url,
        dir.path(),
        &[
            ("DLREPO_PUBLISH_TIMEOUT", "600"),
            ("DLREPO_DRAIN_TIMEOUT", "2"),
        ],
    );
    let http = Http::new(&src.base);
    make_tag(&http);
    release(&http, true);
    wait_for("the publish to reach the target", || {
        !held.lock().expect("held").is_empty()
    });

    let pid = nix::unistd::Pid::from_raw(i32::try_from(src.child.id()).expect("pid"));
    let stopped = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let status = loop {
        if let Some(status) = src.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "a publish stuck on a silent target held the stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        stopped.elapsed() >= Duration::from_secs(2),
        "the publish got no time"
    );
    let left =
        std::fs::read_to_string(src.path("branches/rel/v1.0/.publish-status")).expect("status");
    assert_eq!(
        left.trim(),
        "error: interrupted by a server stop; release the tag again to finish"
    );
    assert!(!src.path("branches/rel/v1.0/.released").exists());
}

// ---- https targets ---------------------------------------------------------------------------

/// Terminates TLS with `server.pem`/`server.key` and passes the bytes on to `upstream`,
/// as nginx does in front of a real target, writing the number of connections it accepted
/// (handshake or not) to `count`. One asyncio loop: no TLS object is shared between threads.
const TLS_PROXY: &str = r#"
import asyncio, ssl, sys
host, port, cert, key, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
accepted = 0

async def pump(r, w):
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        w.close()

async def handle(cr, cw):
    global accepted
    accepted += 1
    with open(count, "w") as f:
        f.write(str(accepted))
    try:
        await cw.start_tls(ctx)
        ur, uw = await asyncio.open_connection(host, port)
    except (OSError, ssl.SSLError):
        cw.close()
        return
    await asyncio.gather(pump(cr, uw), pump(ur, cw))

ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)

async def main():
    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await srv.serve_forever()

asyncio.run(main())
"#;

/// [`TLS_PROXY`] in front of `upstream` (`http://host:port`), killed on drop.
struct TlsProxy {
    child: Child,
    base: String,
    count: PathBuf,
}

impl TlsProxy {
    fn start(upstream: &str, certs: &Path) -> TlsProxy {
        let (host, port) = upstream
            .trim_start_matches("http://")
            .rsplit_once(':')
            .expect("host:port");
        let mut child = Command::new("python3")
            .args(["-c", TLS_PROXY, host, port])
            .arg(certs.join("server.pem"))
            .arg(certs.join("server.key"))
            .arg(certs.join("connections"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("proxy port");
        let port = line.trim();
        assert!(!port.is_empty(), "the TLS proxy did not start");
        TlsProxy {
            child,
            base: format!("https://127.0.0.1:{port}"),
            count: certs.join("connections"),
        }
    }

    /// Connections accepted so far.
    fn connections(&self) -> u32 {
        std::fs::read_to_string(&self.count)
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn https_targets_are_verified_against_the_system_ca_store() {
    let target = TestServer::start();
    let certs = tempfile::tempdir().expect("temp dir");
    let ca = common::make_certificates(certs.path());
    let proxy = TlsProxy::start(&target.base, certs.path());
    let on_target = Http::new(&target.base);

    // The test CA trusted through SSL_CERT_FILE: published, then un-published, over TLS.
    let dir = tempfile::tempdir().expect("temp dir");
    let trust = ("SSL_CERT_FILE", ca.to_str().expect("utf-8 path"));
    let src = arbor_source(&proxy.base, dir.path(), &[trust]);
    let http = Http::new(&src.base);
    make_tag(&http);
    publish(&http, &proxy.base);
    assert_eq!(job_names(&on_target.tag(TAG)), ["joba", "jobc"]);
    release(&http, false);
    wait_for("the un-publish", || {
        on_target.request("GET", TAG, &[], b"").status == 404
    });

    // The system store does not hold the test CA: nothing is sent, the status says why, and
    // the refusal is final: one connection, no retry.
    let before = proxy.connections();
    let dir = tempfile::tempdir().expect("temp dir");
    let (src, _, status) = failing_release(&proxy.base, dir.path(), &[]);
    assert!(status.contains("certificate"), "{status}");
    assert_eq!(proxy.connections() - before, 1);
    assert!(!src.path("branches/rel/v1.0/.released").exists());
    assert_eq!(on_target.request("GET", TAG, &[], b"").status, 404);
}

// ---- the request cap and the timeout -------------------------------------------------------

/// A target that holds every request `delay` before answering, one request per connection,
/// and counts how many it held at once. It answers as an empty dlrepo would: jobs missing,
/// files missing, uploads and finalisation accepted, the tag listing one job.
struct SlowTarget {
    base: String,
    most: Arc<Mutex<(u32, u32)>>,
}

impl SlowTarget {
    fn start(delay: Duration) -> SlowTarget {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let most = Arc::new(Mutex::new((0, 0)));
        let counts = Arc::clone(&most);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || slow_answer(conn, delay, &counts));
            }
        });
        SlowTarget { base, most }
    }

    /// The most requests it held at once.
    fn most_at_once(&self) -> u32 {
        self.most.lock().expect("counts").1
    }
}

fn slow_answer(conn: TcpStream, delay: Duration, counts: &Mutex<(u32, u32)>) {
    let mut reader = BufReader::new(conn);
    let mut first = String::new();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if first.is_empty() {
            first = line.clone();
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap_or(0);
        }
        if line == "\r\n" {
            break;
        }
    }
    let _ = std::io::copy(&mut (&mut reader).take(len as u64), &mut std::io::sink());
    {
        let mut c = counts.lock().expect("counts");
        c.0 += 1;
        c.1 = c.1.max(c.0);
    }
    std::thread::sleep(delay);
    counts.lock().expect("counts").0 -= 1;
    let mut parts = first.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = match method {
        "GET" if path == TAG => ("200 OK", r#"{"tag": {"jobs": [{"name": "wide"}]}}"#),
        "GET" | "HEAD" => ("404 Not Found", ""),
        "PUT" if path.ends_with('/') => ("200 OK", "{}"),
        "PUT" => ("201 Created", ""),
        _ => ("200 OK", "{}"),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = reader.get_mut().write_all(answer.as_bytes());
}

/// `rel/v1.0` with one locked job of six files in one format.
fn make_wide_tag(src: &Http) {
    let files: Vec<(String, Vec<u8>)> = (0..6)
        .map(|i| (format!("f{i}.txt"), format!("file {i}\n").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    src.upload(&format!("{TAG}wide/bin/"), &refs);
    src.ok_json(
        "PUT",
        &format!("{TAG}wide/"),
        json!({"job": {"locked": true}}),
    );
}

#[test]
fn publish_requests_in_flight_never_exceed_the_cap() {
    for cap in [1, 3] {
        let target = SlowTarget::start(Duration::from_millis(150));
        let dir = tempfile::tempdir().expect("temp dir");
        let max = cap.to_string();
        let src = arbor_source(
            &target.base,
            dir.path(),
            &[("DLREPO_PUBLISH_MAX_REQUESTS", &max)],
        );
        let http = Http::new(&src.base);
        make_wide_tag(&http);
        publish(&http, &target.base);
        // Six files' HEADs and PUTs could all go at once: the cap holds them back, and is
        // reached (each request takes 150 ms).
        assert_eq!(
            target.most_at_once(),
            cap,
            "DLREPO_PUBLISH_MAX_REQUESTS={cap}"
        );
    }
}

#[test]
fn a_target_that_never_answers_times_out() {
    let (url, held) = silent_target();
    let dir = tempfile::tempdir().expect("temp dir");
    let (src, _, status) = failing_release(&url, dir.path(), &[("DLREPO_PUBLISH_TIMEOUT", "1")]);
    assert!(status.contains("timeout"), "{status}");
    // Each of the three tries waited for its own answer.
    assert_eq!(held.lock().expect("held").len(), 3);
    assert!(!src.path("branches/rel/v1.0/.released").exists());
}

/// Two server processes on one root (as two hosts on a shared volume) asked to release one
/// tag at once: the runs take turns, as two runs in one process do (issue 19).
#[test]
fn two_processes_on_one_root_publish_a_tag_one_run_after_the_other() {
    let target = TestServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let runs = dir.path().join("runs");
    let script = dir.path().join("filter");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho start >> {0}\nsleep 1\necho end >> {0}\n",
            runs.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let src = arbor_source(
        &target.base,
        dir.path(),
        &[("DLREPO_PUBLISH_FILTER_CMD", script.to_str().expect("utf-8"))],
    );
    let (mut second, second_addr) = src.second_process();
    let second_base = format!("http://{second_addr}");
    make_tag(&Http::new(&src.base));
    std::thread::scope(|s| {
        for base in [&src.base, &second_base] {
            s.spawn(move || release(&Http::new(base), true));
        }
    });
    let read = || std::fs::read_to_string(&runs).unwrap_or_default();
    wait_for("both runs", || read().lines().count() == 4);
    assert_eq!(read(), "start\nend\nstart\nend\n", "the runs overlapped");
    let want = format!("published to {}", target.base);
    wait_status(&Http::new(&src.base), TAG, |s| s.as_str() == Some(&want));
    let _ = second.kill();
    let _ = second.wait();
}
