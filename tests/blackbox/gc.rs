//! Cleanup policies and orphan collection (spec/LAYOUT.md §6), by period, SIGUSR1 and
//! `arbor gc`, and the race between the collector and uploads.

// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

fn age(path: &Path, secs: u64) {
    let when = SystemTime::now() - Duration::from_secs(secs);
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// main: t1 (oldest), t2 (locked), t3 (newest), v1 and v2 released; keep 1 daily, 1 released.
fn seed_policy(s: &TestServer) {
    for (i, t) in ["t1", "t2", "t3", "v1", "v2"].iter().enumerate() {
        s.upload_format(&format!("/branches/main/{t}/j/f/"), &[("x", t.as_bytes())]);
        age(
            &s.path(&format!("branches/main/{t}/.stamp")),
            1000 - 100 * i as u64,
        );
    }
    s.send_json(
        "POST",
        "/branches/main/t2/",
        &json!({"tag": {"locked": true}}),
    );
    for t in ["v1", "v2"] {
        std::fs::File::create(s.path(&format!("branches/main/{t}/.released"))).unwrap();
    }
    let r = s.send_json(
        "POST",
        "/branches/main/",
        &json!({"branch": {"max_daily_tags": 1, "max_released_tags": 1}}),
    );
    assert_eq!(r.status, 200);
}

fn tags(s: &TestServer) -> Vec<String> {
    s.get("/branches/main/").json()["branch"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn arbor(s: &TestServer, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .args(args)
        .env("DLREPO_ROOT_DIR", s.root.path())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn arbor_gc_applies_policies_and_dry_run_changes_nothing() {
    let s = TestServer::start();
    seed_policy(&s);
    let before = snapshot(s.root.path());
    let out = arbor(&s, &["gc", "--dry-run"], &[]);
    assert!(out.contains("would delete tag main/t1"), "{out}");
    assert!(out.contains("would delete tag main/v1"), "{out}");
    assert!(
        !out.contains("main/t2") && !out.contains("main/t3") && !out.contains("main/v2"),
        "{out}"
    );
    assert_eq!(before, snapshot(s.root.path()));
    // The blobs of t1 and v1 ("t1", "v1": 4 bytes) are fresh, so they would stay, and the
    // run says so and why ...
    assert!(out.contains("would delete 0 orphan blobs"), "{out}");
    assert!(
        out.contains(
            "would keep 2 orphan blobs, 4 bytes, younger than DLREPO_ORPHAN_BLOB_LIFETIME \
             (600 s): an upload may still link them; a run after that age removes them\n"
        ),
        "{out}"
    );
    // ... unless the lifetime lets them go, in the same pass as their tags.
    let now = [("DLREPO_ORPHAN_BLOB_LIFETIME", "0")];
    let out = arbor(&s, &["gc", "--dry-run"], &now);
    assert!(
        out.contains("would delete 2 orphan blobs and 0 stale uploads, 4 bytes would be freed"),
        "{out}"
    );
    assert!(!out.contains("would keep"), "{out}");
    assert_eq!(before, snapshot(s.root.path()));
    let out = arbor(&s, &["gc"], &now);
    assert!(
        out.contains("deleted 2 orphan blobs and 0 stale uploads, 4 bytes freed"),
        "{out}"
    );
    assert!(out.contains("deleted tag main/t1"), "{out}");
    // Locked tags stay whatever their age; the newest daily and released ones stay.
    assert_eq!(tags(&s), ["t2", "t3", "v2"]);
    // With a lifetime of 0 the orphans of the deleted tags went too.
    let h = sha256_hex(b"t1");
    assert!(!s.path(&format!(".blobs/sha256/{}/{h}", &h[..2])).exists());
}

#[test]
fn sigusr1_and_the_period_run_a_cleanup() {
    let s = TestServer::start();
    seed_policy(&s);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(s.child.id()).unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    wait_until("the SIGUSR1 cleanup", || tags(&s) == ["t2", "t3", "v2"]);

    let p = TestServer::start_with(&[("DLREPO_TAG_CLEANUP_PERIOD", "1")]);
    seed_policy(&p);
    wait_until("the periodic cleanup", || tags(&p) == ["t2", "t3", "v2"]);
}

#[test]
fn orphans_go_only_after_their_lifetime() {
    let s = TestServer::start_with(&[("DLREPO_ORPHAN_BLOB_LIFETIME", "60")]);
    s.upload_format("/branches/b/t/j/f/", &[("a", b"orphan soon")]);
    let h = sha256_hex(b"orphan soon");
    let blob = s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]));
    assert_eq!(s.delete("/branches/b/t/j/").status, 200);
    // The delete triggers a collection, but the blob is younger than its lifetime.
    std::thread::sleep(Duration::from_millis(500));
    assert!(blob.exists());
    assert_eq!(nlink(&blob), 1);
    // Once old enough, the next collection (after any delete) takes it.
    age(&blob, 120);
    s.upload_format("/branches/c/t/j/f/", &[("x", b"x")]);
    assert_eq!(s.delete("/branches/c/").status, 200);
    wait_until("the orphan to go", || !blob.exists());
}

#[test]
fn an_upload_inside_the_collectors_window_keeps_its_blob() {
    // The collector (a separate `arbor gc` process) pauses between its last check of an old
    // orphan and its unlink; an upload of the same content lands right in that pause. The
    // upload must wait for the collector and end with its file linked to a blob.
    // The server's own collection after the delete keeps the default lifetime: with 1 s, a
    // loaded machine let it take the blob before the test could age it.
    let s = TestServer::start();
    let data = b"contended content";
    s.put_file("/branches/old/t/j/f/a", data);
    assert_eq!(s.delete("/branches/old/").status, 200);
    let h = sha256_hex(data);
    let blob = s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]));
    age(&blob, 3600);
    let hooks = tempfile::tempdir().unwrap();
    let config = write_test_hooks(hooks.path(), "gc_pause_ms = 800");
    let gc = std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
        .arg("gc")
        .arg("--config")
        .arg(&config)
        .env("DLREPO_ROOT_DIR", s.root.path())
        .env("DLREPO_ORPHAN_BLOB_LIFETIME", "1")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = s.put_file("/branches/new/t/j/f/a", data);
    assert_eq!(r.status, 201, "{}", r.text());
    let status = gc.wait_with_output().unwrap().status;
    assert!(status.success());
    use std::os::unix::fs::MetadataExt;
    let b = std::fs::metadata(&blob).expect("the blob exists after the race");
    let f = std::fs::metadata(s.path("branches/new/t/j/f/a")).unwrap();
    assert_eq!(
        (f.dev(), f.ino()),
        (b.dev(), b.ino()),
        "the upload is not a link of its blob"
    );
    assert_eq!(b.nlink(), 2);
}

#[test]
fn collection_never_takes_a_blob_an_upload_is_linking() {
    // Old orphans whose content is uploaded again while `arbor gc` runs in a loop with a
    // lifetime of 1 s: every upload must succeed and end as a link of its blob. The server's
    // own collection after the delete keeps the default lifetime, for the reason above.
    let s = TestServer::start();
    let contents: Vec<Vec<u8>> = (0..40)
        .map(|i| format!("content {i}").into_bytes())
        .collect();
    for (i, c) in contents.iter().enumerate() {
        assert_eq!(
            s.put_file(&format!("/branches/old/t/j/f/{i}"), c).status,
            201
        );
    }
    assert_eq!(s.delete("/branches/old/").status, 200);
    let blob = |c: &[u8]| {
        let h = sha256_hex(c);
        s.path(&format!(".blobs/sha256/{}/{h}", &h[..2]))
    };
    for c in &contents {
        age(&blob(c), 3600);
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                arbor(&s, &["gc"], &[("DLREPO_ORPHAN_BLOB_LIFETIME", "1")]);
            }
        });
        for round in 0..3 {
            for (i, c) in contents.iter().enumerate() {
                let r = s.put_file(&format!("/branches/new/t{round}/j/f/{i}"), c);
                assert_eq!(r.status, 201, "{}", r.text());
                // Link mode too: HEAD then PUT with X-Dlrepo-Link.
                let d = digest_of(c);
                let r = s.request(
                    "PUT",
                    &format!("/branches/new/l{round}/j/f/{i}"),
                    &[("Digest", &d), ("X-Dlrepo-Link", &d)],
                    Some(b""),
                );
                assert_eq!(r.status, 201, "{}", r.text());
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    use std::os::unix::fs::MetadataExt;
    for (i, c) in contents.iter().enumerate() {
        let b = std::fs::metadata(blob(c)).expect("the blob survived");
        for tag in ["t0", "t1", "t2", "l0", "l1", "l2"] {
            let f = std::fs::metadata(s.path(&format!("branches/new/{tag}/j/f/{i}"))).unwrap();
            assert_eq!(
                (f.dev(), f.ino()),
                (b.dev(), b.ino()),
                "{tag}/{i} is not a link of its blob"
            );
        }
        assert_eq!(b.nlink(), 7);
    }
}

#[test]
fn cleanups_racing_on_one_root_delete_each_tag_once_and_all_succeed() {
    // Several processes sharing a root may run their cleanup at the same moment: a tag or a
    // stale upload another one deleted first is not an error, and none is reported twice.
    let root = tempfile::tempdir().unwrap();
    let branch = root.path().join("branches/main");
    // Every job is linked to one product version, which the runs then unlink together.
    let version = root.path().join("products/p/v/b/1");
    std::fs::create_dir_all(&version).unwrap();
    std::fs::File::create(version.join(".stamp")).unwrap();
    std::os::unix::fs::symlink("../../../../../branches/main/t000/job/f", version.join("f"))
        .unwrap();
    for i in 0..300u64 {
        let tag = branch.join(format!("t{i:03}"));
        std::fs::create_dir_all(tag.join("job/f")).unwrap();
        std::os::unix::fs::symlink("../../../../products/p/v/b/1", tag.join("job/.product"))
            .unwrap();
        std::fs::File::create(tag.join(".stamp")).unwrap();
        age(&tag.join(".stamp"), 10_000 - i);
    }
    std::fs::write(branch.join(".cleanup_policy"), r#"{"max_daily_tags": 1}"#).unwrap();
    let uploads = root.path().join(".uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    for i in 0..300 {
        let stale = uploads.join(format!("{i:032x}"));
        std::fs::write(&stale, b"left by a crash").unwrap();
        age(&stale, 3600);
    }
    let runs: Vec<_> = (0..4)
        .map(|_| {
            std::process::Command::new(env!("CARGO_BIN_EXE_arbor"))
                .arg("gc")
                .env("DLREPO_ROOT_DIR", root.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let (mut deleted, mut stale) = (Vec::new(), 0);
    for run in runs {
        let out = run.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        deleted.extend(
            stdout
                .lines()
                .filter_map(|l| l.strip_prefix("deleted tag "))
                .map(str::to_owned),
        );
        let summary = stdout.lines().last().unwrap_or_default();
        let count = summary
            .split_once(" orphan blobs and ")
            .and_then(|(_, rest)| rest.split_once(' '))
            .and_then(|(n, _)| n.parse::<u32>().ok());
        stale += count.unwrap_or_else(|| panic!("no summary: {stdout}"));
    }
    assert_eq!(stale, 300);
    assert_eq!(uploads_left(root.path()), Vec::<String>::new());
    deleted.sort();
    let want: Vec<String> = (0..299).map(|i| format!("main/t{i:03}")).collect();
    assert_eq!(deleted, want);
    let left: Vec<_> = std::fs::read_dir(&branch)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(left, ["t299"]);
    // t000 provided the version's only format: the whole product tree went with it.
    assert!(!root.path().join("products/p").exists());
}

#[test]
fn requests_during_a_run_merge_into_one_follow_up() {
    // One old orphan makes a run pause (`gc_pause_ms`) before unlinking it; the
    // SIGUSR1s sent meanwhile must give exactly one more run, not one each.
    let root = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("arbor.log");
    let hex = sha256_hex(b"orphan");
    let orphan = root
        .path()
        .join(format!(".blobs/sha256/{}/{hex}", &hex[..2]));
    std::fs::create_dir_all(orphan.parent().unwrap()).unwrap();
    std::fs::write(&orphan, b"orphan").unwrap();
    age(&orphan, 3600);
    let env = [
        ("DLREPO_LOG_LEVEL", "INFO"),
        ("DLREPO_LOG_OUTPUT", "console"),
    ];
    let config = write_test_hooks(logs.path(), "gc_pause_ms = 1500");
    let (mut child, _) = spawn_logged_configured(root.path(), &env, Some(&config), &log);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let usr1 = || nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGUSR1).unwrap();
    let runs = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("cleanup done"))
            .count()
    };
    usr1();
    // The first run pauses holding the exclusive lock on .blobs/ (a file of .locks/ named
    // after the directory's inode number): wait until it does.
    let blobs = root.path().join(".blobs");
    wait_until("the first run to pause", || {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&blobs).unwrap().ino();
        let lock = root.path().join(format!(".locks/{ino:016x}"));
        let Ok(file) = std::fs::File::open(lock) else {
            return false;
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock).is_err()
    });
    for _ in 0..3 {
        usr1();
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until("the first run and its follow-up", || runs() >= 2);
    assert!(!orphan.exists());
    // Give a wrongly queued third run the time to show up.
    std::thread::sleep(Duration::from_millis(700));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(runs(), 2, "{}", std::fs::read_to_string(&log).unwrap());
}

#[test]
fn a_full_cleanup_recomputes_user_quotas_from_the_disk() {
    let s = TestServer::start();
    s.upload_format("/~bob/branches/b/t/j/f/", &[("a", b"hello")]);
    let usage = s.path("users/bob/.disk_usage");
    // Drifted, as after files were removed by hand.
    std::fs::write(&usage, "999999").unwrap();
    // Every file of the user's tree counts, `.disk_usage` itself included (spec/LAYOUT.md §6.4).
    let on_disk = recount(s.root.path(), "bob");
    assert!(on_disk > 5 + 6, "{on_disk}");
    // An orphans-only pass (after a delete elsewhere) leaves quotas alone ...
    s.upload_format("/branches/x/t/j/f/", &[("x", b"x")]);
    assert_eq!(s.delete("/branches/x/").status, 200);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_to_string(&usage).unwrap(), "999999");
    // ... a full one recomputes them.
    let out = arbor(&s, &["gc"], &[]);
    assert!(out.contains("deleted 0 orphan blobs"), "{out}");
    // The new count holds its own length, not the drifted file's: a recount agrees.
    let now = recount(s.root.path(), "bob");
    assert_eq!(
        now,
        on_disk - "999999".len() as u64 + now.to_string().len() as u64
    );
    assert_eq!(std::fs::read_to_string(&usage).unwrap(), now.to_string());
}
