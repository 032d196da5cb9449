//! Directory locks that hold between tasks, processes and hosts sharing one root over a
//! network filesystem, and the upkeep of the lock files behind them.
//!
//! A directory's `flock` is not taken on the directory itself but on a regular file named
//! after the directory's inode number, in the root's `.locks/`: FUSE filesystems such as
//! GlusterFS keep a directory's `flock` on the host that took it, while they share a
//! regular file's with every mount. The inode number (not the device, which differs between
//! two mounts of one volume) names the same directory on every host of one root, and the
//! directory is held open while its lock is taken, so its number cannot go to another
//! directory meanwhile.
//!
//! Lock files of directories that are gone are pruned by `arbor gc` ([`prune`]). That is
//! safe because of two rules: the pruner unlinks a file only while it holds its `flock`
//! (taken without waiting: a file in use is kept), and every locker, once its `flock` is
//! granted, checks that the file it locked is still the one at that path (same inode, still
//! linked) and starts again otherwise. So two lockers never hold two different files of one
//! name.
//!
//! A directory's first lock makes its lock file, which takes an inode: on a full disk it
//! comes from a few spare files made beforehand ([`keep_spares`]), renamed into place, so
//! that deleting a job that was never locked before still works there.

use super::stale::{retry_raced_create, retry_stale};
use super::{Repo, StoreError};
use crate::model::TagRef;
use nix::fcntl::{Flock, FlockArg};
use std::collections::HashSet;
use std::fs::Metadata;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How many spare lock files `.locks/` keeps for a full disk.
const SPARES: usize = 8;

/// A `flock` standing for a directory, released on drop. It serialises read-modify-write
/// cycles on dot-files (e.g. `.digests`) between tasks, between processes, and between
/// hosts sharing the root (see the module doc).
pub(crate) struct DirLock {
    _lock: Flock<File>,
    path: PathBuf,
}

/// What a lock file stands for: the directory's dot-file writes, a tag's publishing, or
/// the lease of a private directory of `.uploads/`.
#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    Writes,
    Publishing,
    Lease,
}

impl DirLock {
    pub fn acquire(locks: &Path, dir: &Path) -> Result<DirLock, StoreError> {
        DirLock::take(locks, dir, FlockArg::LockExclusive, Purpose::Writes)
    }

    /// A shared lock: many holders at once, none while an exclusive lock is held.
    pub fn shared(locks: &Path, dir: &Path) -> Result<DirLock, StoreError> {
        DirLock::take(locks, dir, FlockArg::LockShared, Purpose::Writes)
    }

    /// The lease of a new private directory of `.uploads/` (`files::TempDir`), held by its
    /// creator: a lock file, not the directory's own `flock`, so that the collector of
    /// another host sees it too ([`try_lease`]).
    pub fn lease(locks: &Path, dir: &Path) -> Result<DirLock, StoreError> {
        DirLock::take(locks, dir, FlockArg::LockExclusive, Purpose::Lease)
    }

    /// Unlinks the lock file, then lets go (a lease whose directory is gone). Safe while
    /// others wait on it: each finds the file it gets unlinked and starts again.
    pub fn remove(self) {
        let _ = fs::remove_file(&self.path);
    }

    fn take(
        locks: &Path,
        dir: &Path,
        how: FlockArg,
        purpose: Purpose,
    ) -> Result<DirLock, StoreError> {
        loop {
            let held = retry_stale(|| File::open(dir)).map_err(super::not_found_if_missing)?;
            let before = held.metadata().map_err(at("stat", dir))?;
            let path = lock_path(locks, before.ino(), purpose);
            let file = lock_file(locks, &path, purpose != Purpose::Lease)?;
            let lock =
                Flock::lock(file, how).map_err(|(_, e)| StoreError::at("lock", dir, e.into()))?;
            // Pruned while this waited: the file locked is no longer the one of that name.
            if !still_linked(&lock, &path)? {
                continue;
            }
            // While this waited, the directory may have been swapped for its post-processed
            // self, or moved away to be deleted: lock what the path names now, or nothing.
            let now = retry_stale(|| fs::metadata(dir)).map_err(super::not_found_if_missing)?;
            if same_inode(&now, &before) {
                return Ok(DirLock { _lock: lock, path });
            }
        }
    }
}

impl Repo {
    /// Claims a tag for one publish or un-publish run, waiting while a run of this or any
    /// other process or host sharing the root holds it; released on drop. The lock file is
    /// the tag directory's own, kept apart from its dot-file lock (`{inode}.publish`), as a
    /// run writes the tag's files while it holds the claim. `NotFound` when the tag is gone.
    pub(crate) fn claim_publishing(&self, t: &TagRef) -> Result<DirLock, StoreError> {
        let tdir = self.tag_dir(t);
        DirLock::take(
            &self.locks_dir(),
            &tdir,
            FlockArg::LockExclusive,
            Purpose::Publishing,
        )
    }
}

fn at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |e| StoreError::at(op, path, e)
}

/// Two names of one file.
fn same_inode(a: &Metadata, b: &Metadata) -> bool {
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

fn lock_path(locks: &Path, ino: u64, purpose: Purpose) -> PathBuf {
    match purpose {
        Purpose::Writes => locks.join(format!("{ino:016x}")),
        Purpose::Publishing => locks.join(format!("{ino:016x}.publish")),
        Purpose::Lease => locks.join(format!("{ino:016x}.lease")),
    }
}

/// Takes, without waiting, the lease of `dir`, an open directory of `.uploads/`: `None`
/// while its creator holds it; `Some(None)` when it has none (made by a process that
/// crashed before its lease, or that was removed already).
pub(crate) fn try_lease(locks: &Path, dir: &File) -> Option<Option<Flock<File>>> {
    let Ok(meta) = dir.metadata() else {
        return Some(None);
    };
    let Ok(file) = File::open(lock_path(locks, meta.ino(), Purpose::Lease)) else {
        return Some(None);
    };
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Some(Some(lock)),
        Err(_) => None,
    }
}

/// The inode number a lock file stands for; `None` for anything else in `.locks/` (spares).
fn lock_file_ino(name: &str) -> Option<u64> {
    let hex = [".publish", ".lease"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name);
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Whether the locked file is still the one at `path`: a pruner unlinks a file only while it
/// holds the lock, so a file found unlinked (or replaced) once locked must be opened anew.
fn still_linked(lock: &Flock<File>, path: &Path) -> Result<bool, StoreError> {
    let held = lock.metadata().map_err(at("stat", path))?;
    if held.nlink() == 0 {
        return Ok(false);
    }
    match retry_stale(|| fs::metadata(path)) {
        Ok(now) => Ok(same_inode(&now, &held)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::at("stat", path, e)),
    }
}

/// Opens the lock file at `path`, making it when missing (with `spare`, from a spare on a
/// full disk: leases never take one, as what they lease took space already).
fn lock_file(locks: &Path, path: &Path, spare: bool) -> Result<File, StoreError> {
    let open = |create: bool| {
        retry_raced_create(|| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(create)
                .truncate(false)
                .mode(0o644)
                .open(path)
        })
    };
    match open(true) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            super::stale::create_dirs(locks).map_err(at("create", locks))?;
            open(true).map_err(at("open", path))
        }
        Err(e) if spare && is_full(&e) => {
            if !use_spare(locks, path) {
                return Err(StoreError::at("create", path, e));
            }
            open(false).map_err(at("open", path))
        }
        Err(e) => Err(StoreError::at("open", path, e)),
    }
}

fn is_full(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOSPC | nix::libc::EDQUOT)
    )
}

fn spare_path(locks: &Path, i: usize) -> PathBuf {
    locks.join(format!("spare.{i}"))
}

/// Puts a spare lock file in place at `path`: `true` when `path` exists afterwards (this
/// spare, or another locker's file that got there first).
fn use_spare(locks: &Path, path: &Path) -> bool {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    for i in 0..SPARES {
        let spare = spare_path(locks, i);
        // Never over a file another locker made meanwhile: it may be locked already.
        match renameat2(
            AT_FDCWD,
            &spare,
            AT_FDCWD,
            path,
            RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => return true,
            Err(nix::errno::Errno::ENOENT) => continue,
            // No RENAME_NOREPLACE here: a new link fails on an existing name all the same.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => {
                match fs::hard_link(&spare, path) {
                    Ok(()) => {
                        let _ = fs::remove_file(&spare);
                        return true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return true,
                    Err(_) => continue,
                }
            }
            Err(_) => continue,
        }
    }
    false
}

/// Makes the spare lock files that are missing (see the module doc). Best effort: on a full
/// disk there is nothing to be done, and the next start or `arbor gc` tries again.
pub(crate) fn keep_spares(locks: &Path) {
    if super::stale::create_dirs(locks).is_err() {
        return;
    }
    for i in 0..SPARES {
        if super::stale::create_file_shared(&spare_path(locks, i), 0o644).is_err() {
            return;
        }
    }
}

/// Removes the lock files in `locks` whose directory is no longer in the tree at `root`,
/// keeping any that some process holds (see the module doc); with `dry_run`, only counts
/// them. Returns how many went.
pub(crate) fn prune(root: &Path, locks: &Path, dry_run: bool) -> Result<u64, StoreError> {
    let Ok(entries) = fs::read_dir(locks) else {
        return Ok(0);
    };
    let mut live = HashSet::new();
    live.insert(fs::metadata(root).map_err(at("stat", root))?.ino());
    directory_inodes(root, &mut live);
    let mut pruned = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(ino) = name.to_str().and_then(lock_file_ino) else {
            continue;
        };
        if live.contains(&ino) {
            continue;
        }
        if dry_run || prune_one(&entry.path())? {
            pruned += 1;
        }
    }
    keep_spares(locks);
    Ok(pruned)
}

/// The inode numbers of every directory below `dir` (links not followed).
fn directory_inodes(dir: &Path, live: &mut HashSet<u64>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        // The number `DirLock` reads from the open directory: stat, not readdir's d_ino.
        if let Ok(m) = entry.metadata() {
            live.insert(m.ino());
            directory_inodes(&entry.path(), live);
        }
    }
}

/// Unlinks one lock file unless a process holds it; `false` when it was kept (or gone).
fn prune_one(path: &Path) -> Result<bool, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::at("open", path, e)),
    };
    let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) else {
        return Ok(false);
    };
    // Another pruner may have unlinked it meanwhile, and a locker made a new one.
    if !still_linked(&lock, path)? {
        return Ok(false);
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(StoreError::at("remove", path, e)),
    }
}

#[cfg(test)]
#[path = "locks_tests.rs"]
mod tests;
