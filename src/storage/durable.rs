//! Directory entries made durable before a write is acknowledged. `fsync` of a file flushes
//! its content, not the names that point at it: a `link(2)`, `rename(2)` or `mkdir(2)`
//! reaches the disk when its directory is flushed. A group commit gathers the directories
//! its batch changed and flushes each once (on a journalling filesystem the first flush
//! commits the journal and the others find nothing left to do).

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Directories to flush, each once.
#[derive(Default)]
pub(crate) struct DirSyncs(BTreeSet<PathBuf>);

impl DirSyncs {
    /// `dir`'s own entries changed.
    pub(crate) fn dir(&mut self, dir: &Path) {
        if !self.0.contains(dir) {
            self.0.insert(dir.to_path_buf());
        }
    }

    /// An entry named `path` was made, replaced or removed.
    pub(crate) fn entry(&mut self, path: &Path) {
        if let Some(parent) = path.parent() {
            self.dir(parent);
        }
    }

    /// `path` and every directory up to `root` (excluded) were perhaps made or changed:
    /// a push may have made its branch, tag and job.
    pub(crate) fn up_to(&mut self, path: &Path, root: &Path) {
        for d in path
            .ancestors()
            .take_while(|d| d.starts_with(root) && *d != root)
        {
            self.entry(d);
        }
    }

    /// `dir` and every directory below it were made (links not followed).
    pub(crate) fn tree(&mut self, dir: &Path) {
        self.dir(dir);
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.tree(&entry.path());
            }
        }
    }

    /// Flushes every directory. When the first flush had to wait for the disk, the others
    /// run all at once, so that the filesystem commits them together (one journal commit,
    /// the device's cache flushes merged) rather than one after the other; when it did not
    /// (tmpfs, or nothing left to write), the others follow on this thread, since a
    /// thread costs more than such a flush. The first failure is returned.
    pub(crate) fn sync(self) -> io::Result<()> {
        #[cfg(test)]
        tests::SYNCED.with(|s| s.borrow_mut().extend(self.0.iter().cloned()));
        let mut dirs = self.0.into_iter();
        let Some(first) = dirs.next() else {
            return Ok(());
        };
        let rest: Vec<PathBuf> = dirs.collect();
        let began = Instant::now();
        let result = sync_dir(&first);
        if began.elapsed() < WAITED || rest.len() < 2 {
            return rest.iter().fold(result, |r, dir| r.and(sync_dir(dir)));
        }
        std::thread::scope(|scope| {
            let others: Vec<_> = rest
                .iter()
                .map(|dir| scope.spawn(move || sync_dir(dir)))
                .collect();
            others.into_iter().fold(result, |r, other| {
                r.and(
                    other
                        .join()
                        .unwrap_or_else(|_| Err(io::Error::other("sync panicked"))),
                )
            })
        })
    }
}

/// A flush that took this long waited for the disk.
const WAITED: Duration = Duration::from_micros(200);

/// `fsync(2)` of a directory.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir) {
        Ok(f) => f.sync_all(),
        // Removed since (a delete that came right after the write): nothing of it is left
        // to flush, and the write did land. Its removal is the delete's to make durable.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::cell::RefCell;
    use std::path::PathBuf;

    thread_local! {
        /// Every directory flushed by [`super::DirSyncs::sync`] called on this thread: what
        /// tests check.
        pub(crate) static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    /// Takes the list of directories this thread flushed so far.
    pub(crate) fn take_synced() -> Vec<PathBuf> {
        SYNCED.with(|s| std::mem::take(&mut *s.borrow_mut()))
    }

    #[test]
    fn each_directory_is_flushed_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let a = tmp.path().join("a");
        std::fs::create_dir(&a).expect("a");
        take_synced();
        let mut s = super::DirSyncs::default();
        s.entry(&a.join("x"));
        s.entry(&a.join("y"));
        s.dir(tmp.path());
        s.sync().expect("synced");
        let mut want = vec![tmp.path().to_path_buf(), a];
        want.sort();
        assert_eq!(take_synced(), want);
    }

    /// A write's directory deleted right after it landed (a job delete racing an upload)
    /// leaves nothing to flush: the write is still acknowledged, not a 500.
    #[test]
    fn a_directory_gone_since_is_nothing_to_flush() {
        let tmp = tempfile::tempdir().expect("tmp");
        let mut s = super::DirSyncs::default();
        s.dir(&tmp.path().join("deleted"));
        s.dir(tmp.path());
        assert!(s.sync().is_ok());
        assert!(super::sync_dir(&tmp.path().join("x/y")).is_ok());
        let file = tmp.path().join("f");
        std::fs::write(&file, b"").expect("f");
        assert!(
            super::sync_dir(&file.join("below")).is_err(),
            "ENOTDIR is a failure"
        );
    }
}
