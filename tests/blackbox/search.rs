//! Search on a real server (docs/search.md, freshness): its own writes show in the next
//! query; another process's writes on the same root within the refresh period.

use crate::common;
use crate::shared::search::urls;
use common::*;
use std::time::{Duration, Instant};

/// The refresh period (`storage::search::REFRESH_PERIOD`) and a walk of this small tree,
/// with room for a loaded machine.
const OTHERS_DELAY: Duration = Duration::from_secs(12);

fn other_put(agent: &ureq::Agent, base: &str, path: &str, data: &[u8]) {
    let r = agent
        .put(format!("{base}{path}"))
        .header("Digest", &digest_of(data))
        .send(data)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 201);
}

/// How long until `pred` holds for the results of `q` (panics past [`OTHERS_DELAY`]).
fn until(s: &TestServer, q: &str, what: &str, pred: impl Fn(&[String]) -> bool) -> Duration {
    let began = Instant::now();
    loop {
        if pred(&urls(s, q)) {
            return began.elapsed();
        }
        assert!(began.elapsed() < OTHERS_DELAY, "{what}: {:?}", urls(s, q));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/search?q=` on the server at `addr`, asked again until its index is complete (within
/// the delay another process's writes take to show).
fn complete_search(addr: &str, q: &str) -> serde_json::Value {
    let agent = new_agent();
    let began = Instant::now();
    loop {
        let mut r = agent
            .get(format!("http://{addr}/search?q={q}"))
            .call()
            .unwrap_or_else(|e| panic!("{e}"));
        let text = r
            .body_mut()
            .read_to_string()
            .unwrap_or_else(|e| panic!("{e}"));
        let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
        if body["complete"] == true {
            return body;
        }
        assert!(began.elapsed() < OTHERS_DELAY, "{body}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn uploads_deletes_and_other_processes_show() {
    let s = TestServer::start();
    assert_eq!(s.put_file("/branches/b/t/old/f/lib.so", b"old").status, 201);
    assert_eq!(urls(&s, "lib.so"), ["/branches/b/t/old/f/lib.so"]);
    // Its own writes: at the next query.
    assert_eq!(
        s.put_file("/branches/b/t/mine/f/lib.so", b"mine").status,
        201
    );
    assert_eq!(urls(&s, "lib.so").len(), 2);
    assert_eq!(s.delete("/branches/b/t/mine/").status, 200);
    assert_eq!(urls(&s, "lib.so"), ["/branches/b/t/old/f/lib.so"]);
    // Another process on the same root: a new job, a file into an existing job, a delete.
    let (mut other, addr) = s.second_process();
    let base = format!("http://{addr}");
    let agent = new_agent();
    other_put(&agent, &base, "/branches/b/t/theirs/f/lib.so", b"theirs");
    let took = until(&s, "lib.so", "a new job", |u| u.len() == 2);
    eprintln!("a new job from another process showed after {took:?}");
    other_put(&agent, &base, "/branches/b/t/old/f/lib2.so", b"more");
    until(&s, "lib2.so", "a file into a known job", |u| u.len() == 1);
    let r = agent
        .delete(format!("{base}/branches/b/t/theirs/"))
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    until(&s, "lib.so", "a delete", |u| {
        u == ["/branches/b/t/old/f/lib.so"]
    });
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn the_index_is_saved_and_a_deleted_one_rebuilt() {
    let s = TestServer::start();
    assert_eq!(s.put_file("/branches/b/t/j/f/kept.bin", b"k").status, 201);
    assert_eq!(urls(&s, "kept.bin").len(), 1);
    // Trees under 1,000 jobs are not worth saving: another writer adds them.
    for i in 0..1000 {
        let f = s.path(&format!("branches/many/t/j{i}/f"));
        std::fs::create_dir_all(&f).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(f.join(".digests"), "{}").unwrap_or_else(|e| panic!("{e}"));
    }
    let saved = s.path(".search/index");
    let began = Instant::now();
    while !saved.exists() {
        assert!(began.elapsed() < OTHERS_DELAY, "no .search/index");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Derived data: deleted at any time, a new process builds it again from the tree.
    std::fs::remove_dir_all(s.path(".search")).unwrap_or_else(|e| panic!("{e}"));
    let (mut other, addr) = s.second_process();
    let began = Instant::now();
    let body = complete_search(&addr, "kept.bin");
    assert_eq!(body["results"][0]["url"], "/branches/b/t/j/f/kept.bin");
    while !saved.exists() {
        assert!(began.elapsed() < OTHERS_DELAY, "not saved again");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(urls(&s, "kept.bin").len(), 1);
    let _ = other.kill();
    let _ = other.wait();
}

#[test]
fn arbor_reindex_writes_the_index_a_start_loads() {
    let s = TestServer::start();
    assert_eq!(s.put_file("/branches/b/t/j/f/small.bin", b"s").status, 201);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("reindex")
        .env("DLREPO_ROOT_DIR", s.root.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("indexed 1 jobs in "), "{stdout}");
    // Even a small tree: the command saves whatever its size.
    assert!(s.path(".search/index").is_file());
    let (mut other, addr) = s.second_process();
    let body = complete_search(&addr, "small.bin");
    assert_eq!(body["results"][0]["url"], "/branches/b/t/j/f/small.bin");
    let _ = other.kill();
    let _ = other.wait();
}

/// `PUT /v2/{name}/manifests/{reference}` of an OCI image manifest, on the server at `base`.
fn other_manifest(agent: &ureq::Agent, base: &str, name: &str, reference: &str, m: &[u8]) {
    use crate::shared::oci_workflows::OCI_MANIFEST;
    let r = agent
        .put(format!("{base}/v2/{name}/manifests/{reference}"))
        .header("Content-Type", OCI_MANIFEST)
        .send(m)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 201);
}

#[test]
fn registry_pushes_by_another_process_show() {
    use crate::shared::oci_workflows::{LAYER, config, image_manifest, push_blob};
    let s = TestServer::start();
    let (mut other, addr) = s.second_process();
    let (base, agent) = (format!("http://{addr}"), new_agent());
    // The blobs wait in the repository, on the shared root: either process may name them.
    let image = |author: &str| {
        let cfg = config(author);
        push_blob(&s, "main/app", &cfg);
        push_blob(&s, "main/app", LAYER);
        image_manifest(&cfg)
    };
    let first = image("one");
    other_manifest(&agent, &base, "main/app", "v1", &first);
    let took = until(
        &s,
        &format!("digest:{}", digest_of(&first)),
        "a new image",
        |u| u.len() == 1,
    );
    eprintln!("an image pushed by another process showed after {took:?}");
    // A second push into the same job swaps its `container` directory.
    let second = image("two");
    other_manifest(&agent, &base, "main/app", "v1", &second);
    until(
        &s,
        &format!("digest:{}", digest_of(&second)),
        "a new push",
        |u| u.len() == 1,
    );
    assert!(urls(&s, &format!("digest:{}", digest_of(&first))).is_empty());
    let r = agent
        .delete(format!("{base}/v2/main/app/manifests/v1"))
        .call()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 202);
    until(&s, "kind:image", "a deleted image", <[String]>::is_empty);
    let _ = other.kill();
    let _ = other.wait();
}
