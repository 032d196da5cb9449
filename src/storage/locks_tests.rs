// The tests lay out directories and lock files by hand.
#![allow(clippy::disallowed_methods)]

use super::*;
use std::sync::mpsc;
use std::time::Duration;

/// A root with one directory `d`, and its `.locks/`.
fn root() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("d");
    fs::create_dir(&dir).expect("dir");
    let locks = tmp.path().join(".locks");
    (tmp, dir, locks)
}

fn lock_of(locks: &Path, dir: &Path) -> PathBuf {
    let ino = fs::metadata(dir).expect("dir").ino();
    lock_path(locks, ino, Purpose::Writes)
}

/// Whether some process holds the lock file at `path` (a lock taken without waiting fails).
fn held(path: &Path) -> bool {
    let file = File::open(path).expect("the lock file");
    Flock::lock(file, FlockArg::LockExclusiveNonblock).is_err()
}

#[test]
fn a_lock_file_of_a_directory_that_is_gone_is_pruned_and_a_live_one_kept() {
    let (tmp, dir, locks) = root();
    let gone = tmp.path().join("gone");
    fs::create_dir(&gone).expect("dir");
    drop(DirLock::acquire(&locks, &dir).expect("lock"));
    drop(DirLock::acquire(&locks, &gone).expect("lock"));
    let (live, dead) = (lock_of(&locks, &dir), lock_of(&locks, &gone));
    fs::remove_dir(&gone).expect("rmdir");
    // A spare is never taken for a stale lock file.
    keep_spares(&locks);

    assert_eq!(prune(tmp.path(), &locks, true).expect("dry run"), 1);
    assert!(dead.exists(), "a dry run removes nothing");
    assert_eq!(prune(tmp.path(), &locks, false).expect("prune"), 1);
    assert!(!dead.exists());
    assert!(live.exists());
    assert!(spare_path(&locks, SPARES - 1).exists());
}

#[test]
fn a_held_lock_file_is_kept_however_stale() {
    let (tmp, dir, locks) = root();
    let held = DirLock::acquire(&locks, &dir).expect("lock");
    let path = lock_of(&locks, &dir);
    // The directory went while its lock is held (a delete in progress).
    fs::remove_dir(&dir).expect("rmdir");
    assert_eq!(prune(tmp.path(), &locks, false).expect("prune"), 0);
    assert!(path.exists());
    drop(held);
    assert_eq!(prune(tmp.path(), &locks, false).expect("prune"), 1);
}

/// The race pruning must survive: a locker opened the lock file and waits for its `flock`
/// while a pruner (which holds it) unlinks it. Granted the unlinked file, the locker must
/// not take it for the lock, or it and a new locker (making a new file of that name) would
/// both hold the directory: it starts again on the new file.
#[test]
fn a_waiting_locker_whose_file_is_pruned_locks_the_new_file() {
    let (_tmp, dir, locks) = root();
    drop(DirLock::acquire(&locks, &dir).expect("lock"));
    let path = lock_of(&locks, &dir);
    let pruner = Flock::lock(File::open(&path).expect("open"), FlockArg::LockExclusive)
        .expect("the pruner's lock");
    let (tx, rx) = mpsc::channel();
    let (done, finish) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let (locks, dir) = (&locks, &dir);
        s.spawn(move || {
            let locked = DirLock::acquire(locks, dir).expect("lock");
            tx.send(()).expect("the test waits");
            let _ = finish.recv();
            drop(locked);
        });
        // The locker has opened the old file and waits on it.
        std::thread::sleep(Duration::from_millis(200));
        assert!(rx.try_recv().is_err(), "the pruner holds the file");
        fs::remove_file(&path).expect("unlink");
        drop(pruner);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the locker gets the lock");
        assert!(path.exists(), "the locker made a new lock file");
        assert!(
            held(&path),
            "and holds that one, where the next locker looks"
        );
        done.send(()).expect("the locker waits");
    });
    assert!(!held(&path));
}

#[test]
fn on_a_full_disk_a_first_lock_takes_a_spare() {
    let (_tmp, dir, locks) = root();
    keep_spares(&locks);
    let path = lock_of(&locks, &dir);
    assert!(use_spare(&locks, &path));
    assert!(path.exists());
    assert!(!spare_path(&locks, 0).exists(), "the first spare went");
    // Never over an existing file: the next spare stays where it is.
    assert!(use_spare(&locks, &path));
    assert!(spare_path(&locks, 1).exists());
    drop(DirLock::acquire(&locks, &dir).expect("lock"));
    keep_spares(&locks);
    assert!(
        spare_path(&locks, 0).exists(),
        "made again when there is room"
    );
}

#[test]
fn a_publishing_claim_is_a_lock_of_its_own() {
    let (_tmp, dir, locks) = root();
    let claim =
        DirLock::take(&locks, &dir, FlockArg::LockExclusive, Purpose::Publishing).expect("claim");
    let ino = fs::metadata(&dir).expect("dir").ino();
    assert!(held(&lock_path(&locks, ino, Purpose::Publishing)));
    // The run writes the tag's files under the tag's other lock meanwhile.
    drop(DirLock::acquire(&locks, &dir).expect("the tag's dot-file lock"));
    drop(claim);
    assert!(!held(&lock_path(&locks, ino, Purpose::Publishing)));
}

#[test]
fn lock_file_names_are_read_back() {
    assert_eq!(lock_file_ino("00000000000000ff"), Some(255));
    assert_eq!(lock_file_ino("00000000000000ff.publish"), Some(255));
    assert_eq!(lock_file_ino("spare.0"), None);
    assert_eq!(lock_file_ino("ff"), None);
}
