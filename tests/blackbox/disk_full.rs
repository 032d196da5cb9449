//! A full disk is an ordinary error (issue 12 item 4): every write refused with `ENOSPC`
//! answers 507 and leaves the tree as it was, files and digests alike. The data root sits
//! on a small tmpfs, filled up once the test content is in place; mounting one needs root
//! (CI runs as root), and the tests say so loudly and pass otherwise.
// Black-box tests check what the server left on disk, so they read the tree directly.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use crate::common;

use common::{Client as _, TestServer, digest_of, fsck, snapshot};
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of its own, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let skip = |why: String| {
            eprintln!(
                "\n*** SKIPPED: {why}. This test needs root to mount a small tmpfs (CI runs \
                 as root); run it with sudo to check the full-disk behaviour. ***\n"
            );
            None
        };
        // Owned by the effective user: 0 is root.
        if std::fs::metadata("/proc/self").map_or(true, |m| m.uid() != 0) {
            return skip("not running as root".into());
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => skip(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => skip(format!("cannot run mount: {e}")),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem to the last page; removing the returned file makes room again.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        for size in [1 << 20, 4096, 1] {
            let chunk = vec![0xAA; size];
            while f.write_all(&chunk).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Every file every format lists holds the bytes of its digest.
fn digests_hold(root: &Path) {
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.unwrap();
        if entry.file_name() != ".digests" {
            continue;
        }
        let fdir = entry.path().parent().unwrap();
        let digests: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
        for (rel, d) in digests {
            let bytes = std::fs::read(fdir.join(&rel)).unwrap();
            assert_eq!(
                digest_of(&bytes),
                d.as_str().unwrap(),
                "{}/{rel}",
                fdir.display()
            );
        }
    }
}

/// A write to try on the full disk.
type Attempt<'a> = Box<dyn Fn() -> common::Res + 'a>;

const OLD: &[u8] = b"the old content\n";
const NEW: &[u8] = b"the new content, longer than the old\n";

#[test]
fn a_full_disk_refuses_every_write_with_507_and_changes_nothing() {
    let Some(fs) = Tmpfs::mount("8m") else {
        return;
    };
    let root = tempfile::tempdir_in(fs.path()).unwrap();
    let srv = TestServer::start_in(root, &[("DLREPO_CHUNK_SIZE", "65536")]);
    srv.upload_format(
        "/branches/b/t/j/f/",
        &[("a.txt", OLD), ("elsewhere.txt", NEW)],
    );
    srv.upload_format("/~u/branches/b/t/j/f/", &[("a.txt", OLD), ("b.txt", NEW)]);
    let r = srv.send_json("PATCH", "/branches/b/t/j/", &json!({"job": {"k": "v"}}));
    assert_eq!(r.status, 200, "{}", r.text());
    // A registry session started while there was room.
    let r = srv.request("POST", "/v2/b/img/blobs/uploads/", &[], Some(b""));
    assert_eq!(r.status, 202, "{}", r.text());
    let session = r.header("location").unwrap().to_owned();

    let filler = fs.fill();
    let before = snapshot(srv.root.path());
    let (old, new) = (digest_of(OLD), digest_of(NEW));
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 253) as u8).collect();
    let big_digest = digest_of(&big);
    let link = |path: &str, d: &str| {
        srv.request(
            "PUT",
            path,
            &[("Digest", d), ("X-Dlrepo-Link", d)],
            Some(b""),
        )
    };
    let attempts: Vec<(&str, Attempt)> = vec![
        (
            "a new file",
            Box::new(|| srv.put_file("/branches/b/t/j/f/new.txt", NEW)),
        ),
        (
            "an overwrite",
            Box::new(|| srv.put_file("/branches/b/t/j/f/a.txt", NEW)),
        ),
        (
            "an overwrite in link mode",
            Box::new(|| link("/branches/b/t/j/f/a.txt", &new)),
        ),
        (
            "a streamed upload",
            Box::new(|| {
                srv.request(
                    "PUT",
                    "/branches/b/t/j/f/big.bin",
                    &[("Digest", &big_digest)],
                    Some(&big),
                )
            }),
        ),
        (
            "a user's overwrite in link mode",
            Box::new(|| link("/~u/branches/b/t/j/f/a.txt", &new)),
        ),
        (
            "a new format in link mode",
            Box::new(|| link("/branches/b/t/j/g/a.txt", &old)),
        ),
        (
            "job metadata",
            Box::new(|| srv.send_json("PATCH", "/branches/b/t/j/", &json!({"job": {"k": "w"}}))),
        ),
    ];
    for (what, attempt) in &attempts {
        let r = attempt();
        assert_eq!(
            (r.status, r.text().as_str()),
            (507, "507: Insufficient Storage"),
            "{what}"
        );
        assert_eq!(snapshot(srv.root.path()), before, "{what} changed the tree");
        digests_hold(srv.root.path());
        let r = srv.get("/branches/b/t/j/f/a.txt");
        assert_eq!(
            (r.body.as_slice(), r.header("digest")),
            (OLD, Some(old.as_str())),
            "{what}"
        );
    }
    // A registry chunk: the OCI error envelope, and the session stays where it was.
    let r = srv.request("PATCH", &session, &[], Some(&big));
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["code"], "UNKNOWN", "{}", r.text());
    assert_eq!(
        snapshot(srv.root.path()),
        before,
        "a registry chunk changed the tree"
    );
    let r = srv.request("GET", &session, &[], None);
    assert_eq!(
        r.header("range"),
        Some("0-0"),
        "the session kept part of the chunk"
    );

    // With room again, the same writes go through.
    std::fs::remove_file(filler).unwrap();
    let r = link("/branches/b/t/j/f/a.txt", &new);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = srv.get("/branches/b/t/j/f/a.txt");
    assert_eq!(
        (r.body.as_slice(), r.header("digest")),
        (NEW, Some(new.as_str()))
    );
    let r = srv.request("PATCH", &session, &[], Some(&big));
    assert_eq!(r.status, 202, "{}", r.text());
    digests_hold(srv.root.path());
    let (ok, out) = fsck(srv.root.path(), false);
    assert!(ok, "{out}");
}

#[test]
fn post_processing_on_a_full_disk_keeps_the_format_as_it_was() {
    let Some(fs) = Tmpfs::mount("4m") else {
        return;
    };
    let hooks = tempfile::tempdir().unwrap();
    let hook = hooks.path().join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\necho processed >> a.txt\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = tempfile::tempdir_in(fs.path()).unwrap();
    let srv = TestServer::start_in(root, &[("DLREPO_POST_PROCESS_CMD", hook.to_str().unwrap())]);
    assert_eq!(srv.put_file("/branches/b/t/j/f/a.txt", OLD).status, 201);
    let filler = fs.fill();
    let before = snapshot(srv.root.path());
    let r = srv.request("PATCH", "/branches/b/t/j/f/", &[], None);
    assert_eq!(
        (r.status, r.text().as_str()),
        (507, "507: Insufficient Storage")
    );
    assert_eq!(snapshot(srv.root.path()), before);
    digests_hold(srv.root.path());
    std::fs::remove_file(filler).unwrap();
    let r = srv.request("PATCH", "/branches/b/t/j/f/", &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = srv.get("/branches/b/t/j/f/a.txt");
    assert_eq!(r.body, [OLD, b"processed\n"].concat());
    digests_hold(srv.root.path());
}

/// Deletes work on a full disk, even of a job no write ever locked (a tree taken over from
/// dlrepo, say): its lock file, made at its first lock, comes from the spares `.locks/`
/// keeps. Here the filesystem has no inode left.
#[test]
fn a_job_never_locked_before_is_deleted_when_no_inode_is_left() {
    let Some(fs) = Tmpfs::mount("8m,nr_inodes=200") else {
        return;
    };
    let root = tempfile::tempdir_in(fs.path()).unwrap();
    // As dlrepo left it: a job with a format and a file, which arbor never locked.
    let old = root.path().join("branches/b/t/old/f");
    std::fs::create_dir_all(&old).unwrap();
    std::fs::write(old.join("x"), OLD).unwrap();
    let srv = TestServer::start_in(root, &[]);
    assert_eq!(srv.put_file("/branches/b/t/j/f/a.txt", OLD).status, 201);
    // Every inode taken.
    let filler = fs.path().join("inodes");
    std::fs::create_dir(&filler).unwrap();
    let mut n = 0;
    while std::fs::write(filler.join(n.to_string()), b"").is_ok() {
        n += 1;
    }
    assert_eq!(srv.put_file("/branches/b/t/j/f/new.txt", NEW).status, 507);
    assert_eq!(spares(&srv), 8);
    let r = srv.delete("/branches/b/t/old/");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!root_has(&srv, "branches/b/t/old"));
    assert_eq!(spares(&srv), 7, "the job's lock file was a spare");
    assert_eq!(srv.get("/branches/b/t/j/f/a.txt").body, OLD);
}

fn spares(srv: &TestServer) -> usize {
    let locks = std::fs::read_dir(srv.root.path().join(".locks")).unwrap();
    locks
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("spare.")
        })
        .count()
}

fn root_has(srv: &TestServer, rel: &str) -> bool {
    srv.root.path().join(rel).exists()
}
