//! Post-processing on a real repository.

use super::*;
use crate::config::{Config, TestHooks};
use crate::model::Scope;
use crate::storage::fixture::{self, TestRepo};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[test]
fn a_commit_waits_for_the_swap_to_end_not_only_for_the_old_trees_lock() {
    let dir = tempfile::tempdir().expect("tmp");
    let cmd = dir.path().join("noop");
    fs::write(&cmd, "#!/bin/sh\n").expect("write");
    fs::set_permissions(&cmd, fs::Permissions::from_mode(0o755)).expect("chmod");
    let repo = TestRepo::with(Config {
        post_process_cmd: Some(cmd),
        testing: TestHooks {
            pause: Some(("post-process-swapped".into(), Duration::from_millis(800))),
            gc_pause: None,
        },
        ..Config::default()
    });
    let job = fixture::job(Scope::Root, "b", "t", "j");
    let f = fixture::format(&job, "f");
    let fdir = repo.format_dir(&f);
    fs::create_dir_all(&fdir).expect("mkdir");
    let old = fs::metadata(&fdir).expect("stat").ino();
    std::thread::scope(|scope| {
        scope.spawn(|| repo.finalize_format(&f).expect("post-processed"));
        // Swapped: the path names the new tree; the swap then pauses for 800 ms (the test
        // hook) before it ends, with the old tree's lock held.
        while fs::metadata(&fdir).map(|m| m.ino()).unwrap_or(old) == old {
            std::thread::sleep(Duration::from_millis(1));
        }
        let swapped = Instant::now();
        let _lock = DirLock::acquire(&repo.locks_dir(), &fdir).expect("lock");
        // Not a timing test: a lock taken mid-swap comes at once; a slow machine only
        // makes the wait longer.
        let waited = swapped.elapsed();
        assert!(
            waited >= Duration::from_millis(700),
            "locked mid-swap, after {waited:?}"
        );
    });
}
