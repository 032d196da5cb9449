//! Network filesystems: a path looked up on one host while another renames over it can name
//! the replaced file for an instant (`ESTALE`); looking it up again finds the new one. And a
//! name other hosts are creating at the same moment can be refused as existing (`EEXIST`)
//! while a lookup of it fails, for a moment or for good: the tree's directories and flag
//! files are made here, believing `EEXIST` only once the name shows.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How many times an operation that failed with `ESTALE` is tried again.
const STALE_RETRIES: u32 = 5;

/// Runs `op`, and again after a short pause (1, 2, 4, 8, 16 ms) while it fails with `ESTALE`.
/// On a network filesystem, a path looked up on one host while another renames over it can
/// name the replaced file for an instant (GlusterFS: about one open in 2,000 under such a
/// race); looking it up again finds the new one. Anything else fails at once.
pub(crate) fn retry_stale<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    #[cfg(test)]
    let mut fake = fake::stale_first();
    let stale = |e: &io::Error| e.raw_os_error() == Some(nix::libc::ESTALE);
    retry_while(stale, STALE_RETRIES, || {
        #[cfg(test)]
        if std::mem::take(&mut fake) {
            return Err(io::Error::from_raw_os_error(nix::libc::ESTALE));
        }
        op()
    })
}

/// Runs `op`, and again while it fails with an error `transient` accepts, at most `retries`
/// more times, after a [`pause`] each.
fn retry_while<T>(
    transient: impl Fn(&io::Error) -> bool,
    retries: u32,
    mut op: impl FnMut() -> io::Result<T>,
) -> io::Result<T> {
    let mut attempt = 0;
    loop {
        match op() {
            Err(e) if transient(&e) && attempt < retries => {
                pause(attempt);
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The wait before the retry after `attempt` earlier ones: 1, 2, 4 ... ms.
fn pause(attempt: u32) {
    std::thread::sleep(Duration::from_millis(1 << attempt));
}

/// How many times a name reported as existing is looked up again, 1, 2, 4 ... 128 ms apart
/// (about a quarter of a second in all).
const RACE_RETRIES: u32 = 8;

/// `mkdir` of `dir` in a tree other hosts may be writing: `Ok(true)` when this call made
/// it, `Ok(false)` when another writer had (or has just) made it.
///
/// On GlusterFS, a `mkdir` racing other hosts' `mkdir`s of the same name can fail with
/// `EEXIST` while a lookup of the name fails, for a moment or for good: tests/scaleout/run
/// saw both hosts refused, and the parent still without the name a quarter of a second
/// later (eight clients putting one file each into a new branch through two hosts, about
/// one round in 40). `create_dir_all` takes that for a file in the way. Here `EEXIST` is
/// believed once the name shows as a directory; until then the `mkdir` is tried again, 1,
/// 2, 4 ... 128 ms apart.
pub(crate) fn create_dir_shared(dir: &Path) -> io::Result<bool> {
    create_with(
        || fs::create_dir(dir),
        || fs::metadata(dir).map(|m| m.is_dir()),
    )
}

/// Creates the empty file `path` (`O_EXCL`), as [`create_dir_shared`] makes a directory:
/// `Ok(false)` when it was there already, believed once it shows.
pub(crate) fn create_file_shared(path: &Path, mode: u32) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut create = fs::OpenOptions::new();
    create.write(true).create_new(true).mode(mode);
    create_with(
        || create.open(path).map(drop),
        || fs::symlink_metadata(path).map(|_| true),
    )
}

/// `link(2)` of `target` as `name`, as [`create_dir_shared`] makes a directory: `Ok(false)`
/// when a file was at `name` already, believed once it shows.
pub(crate) fn link_shared(target: &Path, name: &Path) -> io::Result<bool> {
    create_with(
        || fs::hard_link(target, name),
        || fs::symlink_metadata(name).map(|_| true),
    )
}

/// Runs `make` (a `mkdir`, an `O_EXCL` create or a `link`) and, while it fails with
/// `EEXIST`, asks `shows` whether the name is there as it should be (`Ok(false)`: something
/// else is in the way); tries `make` again while the name does not show.
fn create_with(
    mut make: impl FnMut() -> io::Result<()>,
    mut shows: impl FnMut() -> io::Result<bool>,
) -> io::Result<bool> {
    let mut attempt = 0;
    loop {
        let refused = match make() {
            Ok(()) => return Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => e,
            Err(e) => return Err(e),
        };
        match shows() {
            Ok(true) => return Ok(false),
            Err(seen) if missing(&seen) && attempt < RACE_RETRIES => {
                pause(attempt);
                attempt += 1;
            }
            // Something else is in the way, or the name never showed.
            _ => return Err(refused),
        }
    }
}

/// `create_dir_all`, returning the directories it made (outermost first), so that a write
/// that fails afterwards can take them away again. A directory another writer (or host)
/// made meanwhile is theirs (see [`create_dir_shared`] for how a network filesystem can say
/// so).
pub(crate) fn make_dirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(parent) => at = parent,
            None => break,
        }
    }
    let mut made = Vec::new();
    for d in missing.into_iter().rev() {
        match create_dir_shared(&d) {
            Ok(true) => made.push(d),
            // Another writer made it meanwhile: theirs to keep.
            Ok(false) => {}
            Err(e) => {
                remove_dirs(&made);
                return Err(e);
            }
        }
    }
    Ok(made)
}

/// `fs::create_dir_all` for the tree, which other hosts may be writing at the same time
/// (see [`make_dirs`]).
pub(crate) fn create_dirs(dir: &Path) -> io::Result<()> {
    make_dirs(dir).map(drop)
}

/// Removes directories [`make_dirs`] made, innermost first, as long as they are empty.
pub(crate) fn remove_dirs(made: &[PathBuf]) {
    for d in made.iter().rev() {
        let _ = fs::remove_dir(d);
    }
}

/// Runs `op`, an `open` with `O_CREAT` but without `O_EXCL`, again while it fails with
/// `EEXIST`: on a network filesystem the file can be made by another host between the
/// kernel's lookup and its create, and the create then fails where a local one would have
/// opened the file (GlusterFS, tests/scaleout/run: lock files taken by both hosts at once).
/// The next attempt opens what the other host made.
pub(crate) fn retry_raced_create<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let raced = |e: &io::Error| e.kind() == io::ErrorKind::AlreadyExists;
    retry_while(raced, RACE_RETRIES, || retry_stale(&mut op))
}

fn missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(nix::libc::ESTALE)
}

/// Tests of the paths that retry: [`fake::stale_once_each`] makes every operation run
/// through [`retry_stale`] on this thread fail with `ESTALE` once before it is tried for real.
#[cfg(test)]
pub(crate) mod fake {
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// Whether this operation is to fail once first (and counts it).
    pub(super) fn stale_first() -> bool {
        COUNT.with(|c| match c.get() {
            Some(n) => {
                c.set(Some(n + 1));
                true
            }
            None => false,
        })
    }

    /// Runs `f` with every retried operation failing once first; returns its result and how
    /// many operations were retried.
    pub(crate) fn stale_once_each<T>(f: impl FnOnce() -> T) -> (T, u32) {
        COUNT.with(|c| c.set(Some(0)));
        let out = f();
        let n = COUNT.with(|c| c.take()).unwrap_or(0);
        (out, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_handles_are_looked_up_again_a_few_times_only() {
        let stale = || io::Error::from_raw_os_error(nix::libc::ESTALE);
        let mut calls = 0;
        let r = retry_stale(|| {
            calls += 1;
            if calls < 3 { Err(stale()) } else { Ok(calls) }
        });
        assert_eq!(r.ok(), Some(3));
        calls = 0;
        let r: io::Result<()> = retry_stale(|| {
            calls += 1;
            Err(stale())
        });
        assert!(r.is_err());
        assert_eq!(calls, STALE_RETRIES + 1);
        calls = 0;
        let r: io::Result<()> = retry_stale(|| {
            calls += 1;
            Err(io::Error::from_raw_os_error(nix::libc::EIO))
        });
        assert!(r.is_err());
        assert_eq!(calls, 1, "other errors are not retried");
    }

    fn exists() -> io::Error {
        io::Error::from_raw_os_error(nix::libc::EEXIST)
    }

    #[test]
    fn a_refused_mkdir_is_believed_once_the_directory_shows() {
        let gone = || io::Error::from_raw_os_error(nix::libc::ENOENT);
        // Refused while the name does not show, then made by this call.
        let (mut mkdirs, mut lookups) = (0, 0);
        let r = create_with(
            || {
                mkdirs += 1;
                if mkdirs < 3 { Err(exists()) } else { Ok(()) }
            },
            || {
                lookups += 1;
                Err(gone())
            },
        );
        assert_eq!((r.ok(), mkdirs, lookups), (Some(true), 3, 2));
        // Refused, and another writer's directory shows on the second look.
        let mut lookups = 0;
        let r = create_with(
            || Err(exists()),
            || {
                lookups += 1;
                if lookups < 2 { Err(gone()) } else { Ok(true) }
            },
        );
        assert_eq!(r.ok(), Some(false));
        // Refused for good: the mkdir's own error, after the retries.
        let mut mkdirs = 0;
        let r = create_with(
            || {
                mkdirs += 1;
                Err(exists())
            },
            || Err(gone()),
        );
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::AlreadyExists));
        assert_eq!(mkdirs, RACE_RETRIES + 1);
        // Something else in the way, or another failure: at once.
        let r = create_with(|| Err(exists()), || Ok(false));
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::AlreadyExists));
        let r = create_with(|| Err(gone()), || Ok(true));
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
    }

    #[test]
    fn the_trees_mkdir_p_makes_what_is_missing_and_keeps_what_is_there() {
        let tmp = tempfile::tempdir().expect("tmp");
        let deep = tmp.path().join("a/b/c");
        let made = make_dirs(&deep).expect("made");
        assert_eq!(
            made,
            vec![tmp.path().join("a"), tmp.path().join("a/b"), deep.clone()]
        );
        assert_eq!(create_dir_shared(&deep).ok(), Some(false));
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").expect("write");
        let e = create_dirs(&file.join("sub")).expect_err("a file");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(create_dir_shared(&file).is_err());
    }

    #[test]
    fn a_create_that_lost_a_race_opens_what_the_winner_made() {
        let mut calls = 0;
        let r = retry_raced_create(|| {
            calls += 1;
            if calls < 3 { Err(exists()) } else { Ok(calls) }
        });
        assert_eq!(r.ok(), Some(3));
        calls = 0;
        let r: io::Result<()> = retry_raced_create(|| {
            calls += 1;
            Err(exists())
        });
        assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::AlreadyExists));
        assert_eq!(calls, RACE_RETRIES + 1);
    }
}
