//! Small file primitives shared by the storage modules: flags, stamps, atomic writes,
//! JSON dot-files and advisory locks that also hold between processes sharing one root.
//!
//! Everything a request keeps in `.uploads/` while it works (temp files, scratch
//! directories) is *leased*: its creator holds a `flock` on it (a directory: on its lock
//! file in `.locks/`, which every host sees) until it is done, and the orphan collector
//! removes only entries whose lease it can take (see [`Claim`]). So no lifetime setting,
//! however short, lets the collector take a file from under a request.

use super::StoreError;
pub(crate) use super::locks::DirLock;
pub(crate) use super::stale::{create_dirs, make_dirs, remove_dirs, retry_stale};
use crate::pyjson;
use serde_json::{Map, Value};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Adds what was being done, and where, to an I/O error (see [`StoreError::at`]).
pub(crate) trait At<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T, StoreError>;
}

impl<T> At<T> for io::Result<T> {
    fn at(self, op: &'static str, path: &Path) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::at(op, path, e))
    }
}

pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    // getrandom only fails when the OS has no entropy source at all.
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    hex::encode(bytes)
}

/// mtime as Python's `os.stat().st_mtime` computes it, so timestamps print identically.
pub(crate) fn mtime_of(meta: &fs::Metadata) -> f64 {
    use std::os::unix::fs::MetadataExt;
    meta.mtime() as f64 + meta.mtime_nsec() as f64 * 1e-9
}

/// The `.stamp` mtime, or `None` when there is no stamp (JSON then shows the integer 0).
pub(crate) fn stamp_time(dir: &Path) -> Option<f64> {
    fs::metadata(dir.join(".stamp")).ok().map(|m| mtime_of(&m))
}

/// Timestamp as JSON: a float, or the integer 0 when missing (spec/API.md Q39).
pub(crate) fn timestamp_json(t: Option<f64>) -> Value {
    t.and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or_else(|| Value::from(0))
}

pub(crate) fn sort_time(t: Option<f64>) -> f64 {
    t.unwrap_or(0.0)
}

pub(crate) fn exists(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Creates an empty file unless one exists; never changes an existing file's mtime.
pub(crate) fn create_flag(path: &Path) -> io::Result<()> {
    super::stale::create_file_shared(path, 0o666).map(drop)
}

pub(crate) fn remove_flag(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

pub(crate) fn set_flag(path: &Path, on: bool) -> io::Result<()> {
    if on {
        create_flag(path)
    } else {
        remove_flag(path)
    }
}

/// A JSON object dot-file. Missing or unparseable reads as empty, as dlrepo does.
pub(crate) fn read_json_map(path: &Path) -> Map<String, Value> {
    read_json_map_to_update(path).unwrap_or_default()
}

/// [`read_json_map`] for a read-modify-write: a missing file (or one that is not a JSON
/// object) is an empty map, as there, but a file that cannot be read is an error. Taking it
/// for empty would rewrite it with the new entries only, losing the others.
pub(crate) fn read_json_map_to_update(path: &Path) -> Result<Map<String, Value>, StoreError> {
    let bytes = match retry_stale(|| fs::read(path)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Map::new()),
        Err(e) => return Err(StoreError::at("read", path, e)),
    };
    Ok(match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    })
}

/// Replaces `path` atomically: the new content is written and fsynced under `.uploads/`
/// (same filesystem) and renamed over the target, so readers and a crash see either the old
/// or the new file, and a stray temp file is left where the orphan GC collects it.
pub(crate) fn write_atomic(uploads: &Path, path: &Path, data: &[u8]) -> Result<(), StoreError> {
    let tmp = TempFile::create(uploads)?;
    tmp.fill(data).at("write", path)?;
    tmp.persist(path)
}

pub(crate) fn write_json_sorted(
    uploads: &Path,
    path: &Path,
    map: &Map<String, Value>,
) -> Result<(), StoreError> {
    let text = pyjson::object_to_string_sorted(map);
    write_atomic(uploads, path, text.as_bytes())
}

/// A file under `.uploads/` named by 16 random bytes, created with O_EXCL and mode 0600,
/// removed on drop unless persisted.
pub(crate) struct TempFile {
    pub path: PathBuf,
    pub file: File,
    keep: bool,
}

impl TempFile {
    /// A new, leased temp file (see the module doc).
    pub fn create(uploads: &Path) -> Result<TempFile, StoreError> {
        loop {
            let path = uploads.join(random_hex());
            let opened = OpenOptions::new()
                .write(true)
                .read(true)
                .create_new(true)
                .mode(0o600)
                .open(&path);
            match opened {
                Ok(file) => {
                    let tmp = TempFile {
                        path,
                        file,
                        keep: false,
                    };
                    if lease(&tmp.file).at("lock", &tmp.path)? {
                        return Ok(tmp);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    create_dirs(uploads).at("create", uploads)?;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::at("create", &path, e)),
            }
        }
    }

    /// Writes `data` as the whole content of a dot-file to be, and fsyncs it. Temp files
    /// are private (0600); the dot-file gets the usual umask-derived mode.
    pub fn fill(&self, data: &[u8]) -> io::Result<()> {
        self.file
            .set_permissions(fs::Permissions::from_mode(0o666 & !umask()))?;
        (&self.file).write_all(data)?;
        self.file.sync_data()
    }

    /// Renames the file to `dest`, replacing what is there.
    pub fn persist(mut self, dest: &Path) -> Result<(), StoreError> {
        fs::rename(&self.path, dest).at("rename", dest)?;
        self.keep = true;
        Ok(())
    }
}

/// Locks a new entry of `.uploads/` for its creator. `false` when the collector removed
/// it between its creation and the lock (it holds the lease while it removes): the
/// creator then makes another one.
fn lease(file: &File) -> io::Result<bool> {
    file.lock()?;
    Ok(file.metadata()?.nlink() > 0)
}

/// A private directory under `.uploads/`, named `{32 hex}.{kind}`, leased like a
/// [`TempFile`] and removed with everything in it when dropped. Multi-step work (staged
/// links, a format being post-processed, a tree being deleted) happens in one. Its lease is
/// a lock file in `.locks/` (see `DirLock::lease`), not a `flock` on the directory, which
/// network filesystems such as GlusterFS keep from the other hosts' collectors.
pub(crate) struct TempDir {
    pub path: PathBuf,
    lease: Option<DirLock>,
}

/// The root's `.locks/`, beside its `.uploads/`.
fn locks_beside(uploads: &Path) -> PathBuf {
    uploads.parent().unwrap_or(Path::new("/")).join(".locks")
}

impl TempDir {
    pub fn create(uploads: &Path, kind: &str) -> Result<TempDir, StoreError> {
        loop {
            let path = uploads.join(format!("{}.{kind}", random_hex()));
            match fs::create_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    create_dirs(uploads).at("create", uploads)?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(StoreError::at("create", &path, e)),
            }
            match DirLock::lease(&locks_beside(uploads), &path) {
                Ok(lease) => {
                    return Ok(TempDir {
                        path,
                        lease: Some(lease),
                    });
                }
                // Collected between its creation and the lease (see `lease`).
                Err(StoreError::NotFound) => continue,
                Err(e) => {
                    let _ = fs::remove_dir(&path);
                    return Err(e);
                }
            }
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        if let Some(lease) = self.lease.take() {
            lease.remove();
        }
    }
}

/// The lease of an entry of `.uploads/`, taken by the collector (or fsck) to remove it:
/// no request is using the entry while this is held.
pub(crate) struct Claim(
    #[allow(dead_code)] Option<File>,
    #[allow(dead_code)] Option<nix::fcntl::Flock<File>>,
);

impl Claim {
    /// `None` while a request holds the entry. An entry that cannot be opened (a symlink,
    /// or gone already) has no lease to take and is claimed as is.
    pub fn take(path: &Path) -> Option<Claim> {
        let opened = OpenOptions::new()
            .read(true)
            // Never follow a link out of `.uploads/`, nor wait on a FIFO.
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(path);
        let Ok(file) = opened else {
            return Some(Claim(None, None));
        };
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            // A `TempDir`: its lease is a lock file (`entry` is in `.uploads/`).
            let uploads = path.parent().unwrap_or(Path::new("/"));
            let lease = super::locks::try_lease(&locks_beside(uploads), &file)?;
            return Some(Claim(Some(file), lease));
        }
        match file.try_lock() {
            Ok(()) => Some(Claim(Some(file), None)),
            Err(_) => None,
        }
    }
}

/// Several files replaced together, or none of them. Everything that takes space (new
/// content, links, directory entries) is made first, in a leased scratch directory, along
/// with a link to each file about to be replaced; then renames put the new files in place,
/// and if one fails the replaced files are renamed back. So a full disk, or any other
/// error, leaves every target as it was. (A crash between two of the final renames can
/// still leave some done: they are microseconds apart, and `arbor fsck` reports it.)
pub(crate) struct Replace {
    scratch: TempDir,
    steps: Vec<Step>,
}

struct Step {
    staged: PathBuf,
    target: PathBuf,
    /// A link to what `target` was, to put back on failure; `None` when it did not exist.
    old: Option<PathBuf>,
}

impl Replace {
    pub fn new(uploads: &Path) -> Result<Replace, StoreError> {
        Ok(Replace {
            scratch: TempDir::create(uploads, "replace")?,
            steps: Vec::new(),
        })
    }

    fn staging_name(&self) -> PathBuf {
        self.scratch.path.join(self.steps.len().to_string())
    }

    fn push(&mut self, staged: PathBuf, target: &Path) -> Result<(), StoreError> {
        let old = staged.with_extension("old");
        let old = match fs::hard_link(target, &old) {
            Ok(()) => Some(old),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(StoreError::at("link", target, e)),
        };
        self.steps.push(Step {
            staged,
            target: target.to_path_buf(),
            old,
        });
        Ok(())
    }

    /// `target` is to become a hard link of `src`.
    pub fn link(&mut self, src: &Path, target: &Path) -> Result<(), StoreError> {
        let staged = self.staging_name();
        fs::hard_link(src, &staged).at("link", src)?;
        self.push(staged, target)
    }

    /// `target` is to hold `data` (a dot-file: fsynced, umask-derived mode).
    pub fn write(&mut self, target: &Path, data: &[u8]) -> Result<(), StoreError> {
        let staged = self.staging_name();
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666 & !umask())
            .open(&staged)
            .at("create", &staged)?;
        (&file).write_all(data).at("write", target)?;
        file.sync_data().at("write", target)?;
        self.push(staged, target)
    }

    /// Puts every staged file in place, in the order they were staged; all or nothing.
    pub fn commit(self) -> Result<(), StoreError> {
        for (done, step) in self.steps.iter().enumerate() {
            if let Err(e) = fs::rename(&step.staged, &step.target) {
                for undo in self.steps[..done].iter().rev() {
                    let _ = match &undo.old {
                        Some(old) => fs::rename(old, &undo.target),
                        None => fs::remove_file(&undo.target),
                    };
                }
                return Err(StoreError::at("rename", &step.target, e));
            }
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Makes `src`, a private file whose content hashes to the blob's digest, the blob at
/// `blob`, unless that content is stored already: then the stored blob is kept (and
/// touched, so the collector sees it in use). A blob is never replaced, so every link to
/// it stays intact (spec/LAYOUT.md §3.1); blobs are 0644 (§8). The caller holds the blob
/// guard.
pub(crate) fn store_as_blob(src: &Path, blob: &Path) -> Result<(), StoreError> {
    fs::set_permissions(src, fs::Permissions::from_mode(0o644)).at("chmod", src)?;
    if let Some(dir) = blob.parent() {
        create_dirs(dir).at("create", dir)?;
    }
    if !super::stale::link_shared(src, blob).at("link", src)? {
        touch(blob).at("touch", blob)?;
    }
    Ok(())
}

/// Sets the mtime to now: lookups of a blob keep it away from the orphan GC (LAYOUT.md §3.1).
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    use nix::sys::stat::{UtimensatFlags, utimensat};
    use nix::sys::time::TimeSpec;
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &TimeSpec::UTIME_NOW,
        &TimeSpec::UTIME_NOW,
        UtimensatFlags::FollowSymlink,
    )
    .map_err(io::Error::from)
}

/// The process umask, read once (reading it means setting it, so never do that twice).
pub(crate) fn umask() -> u32 {
    static MASK: OnceLock<u32> = OnceLock::new();
    *MASK.get_or_init(|| {
        use nix::sys::stat::{Mode, umask};
        let old = umask(Mode::from_bits_truncate(0o022));
        umask(old);
        old.bits()
    })
}

/// Hashes a whole file with `algo`. The read buffer is kept per thread: fsck hashes every
/// blob in the tree, and zeroing a fresh 1 MiB buffer for each one cost more than hashing
/// the small ones.
pub(crate) fn hash_file(algo: crate::model::Algo, path: &Path) -> io::Result<String> {
    use std::io::Read;
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 1 << 20]);
    }
    let mut f = File::open(path)?;
    let mut h = algo.hasher();
    BUF.with_borrow_mut(|buf| {
        loop {
            let n = f.read(buf)?;
            if n == 0 {
                return Ok(h.finish_hex());
            }
            h.update(&buf[..n]);
        }
    })
}

/// Bytes in the regular files under `dir`, every link counted in full (spec/LAYOUT.md §6.4).
pub(crate) fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Two names of one file (hard links).
pub(crate) fn same_inode(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

/// Swaps two paths in one step (`renameat2(RENAME_EXCHANGE)`): readers see one or the
/// other, never neither. `Ok(false)` where the filesystem cannot (NFS, say); the caller then
/// falls back on two renames.
pub(crate) fn rename_exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `a` and `b` are the same file (links followed); `false` when either is missing.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => same_inode(&x, &y),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_to_update_is_empty_only_when_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        assert!(read_json_map_to_update(&path).unwrap().is_empty());
        fs::write(&path, b"not json").unwrap();
        assert!(read_json_map_to_update(&path).unwrap().is_empty());
        fs::write(&path, br#"{"a": "b"}"#).unwrap();
        assert_eq!(read_json_map_to_update(&path).unwrap().len(), 1);
        // Unreadable (here: a directory) is an error, where read_json_map says empty.
        let unreadable = dir.path().join("d");
        fs::create_dir(&unreadable).unwrap();
        assert!(read_json_map_to_update(&unreadable).is_err());
        assert!(read_json_map(&unreadable).is_empty());
    }

    #[test]
    fn a_scratch_directory_is_leased_through_a_lock_file() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let uploads = tmp.path().join(".uploads");
        let leases = || {
            fs::read_dir(tmp.path().join(".locks"))
                .map(|d| d.flatten().count())
                .unwrap_or(0)
        };
        let dir = TempDir::create(&uploads, "x").expect("a scratch dir");
        // Not the directory's own flock, which GlusterFS keeps from the other hosts...
        let own = File::open(&dir.path).expect("open");
        assert!(own.try_lock().is_ok());
        drop(own);
        // ...but a lock file, which every collector sees.
        assert!(Claim::take(&dir.path).is_none());
        assert_eq!(leases(), 1);
        let path = dir.path.clone();
        drop(dir);
        assert!(!path.exists());
        assert_eq!(leases(), 0, "the lease file goes with the directory");
        // One with no lease (its creator crashed before it) is claimed.
        fs::create_dir(&path).expect("a leftover");
        assert!(Claim::take(&path).is_some());
    }

    #[test]
    fn a_stored_blob_is_never_replaced() {
        let tmp = tempfile::tempdir().expect("a temp dir");
        let (first, second) = (tmp.path().join("a"), tmp.path().join("b"));
        fs::write(&first, b"same").expect("written");
        fs::write(&second, b"same").expect("written");
        fs::set_permissions(&first, fs::Permissions::from_mode(0o600)).expect("chmod");
        let blob = tmp.path().join(".blobs/sha256/ab/abcd");

        store_as_blob(&first, &blob).expect("stored");
        let stored = fs::metadata(&blob).expect("the blob");
        assert!(same_inode(&stored, &fs::metadata(&first).expect("first")));
        assert_eq!(stored.permissions().mode() & 0o777, 0o644);

        store_as_blob(&second, &blob).expect("kept");
        let kept = fs::metadata(&blob).expect("the blob");
        assert!(same_inode(&kept, &stored), "the first blob stays");
        assert!(!same_inode(&kept, &fs::metadata(&second).expect("second")));
    }
}
