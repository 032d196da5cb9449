//! Many files at once: `-J` workers share one queue and one connection pool; the first
//! failure stops the others from starting new files. Uploads of one file are in `upload.rs`.
//!
//! Download of one file: into `DIR/.arbor-partial/`, checked against the `Digest` the
//! server sends, renamed into place only when it matches. What an interrupted run, or a
//! connection lost mid-file, left there is continued with `Range`; the digest check is
//! what makes that safe.
// The client reads and writes the user's own files, never the repository tree.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use super::ClientError;
use super::progress::{Item, Progress};
use super::remote::{Body, Remote};
use crate::model::{Algo, Digest, Hasher};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How many times a download continues after losing its connection mid-file.
const RESUMES: u32 = 4;

/// Runs `work` on every item with at most `jobs` at a time; the first error is returned
/// once the running ones are done.
pub fn in_parallel<T: Sync>(
    items: &[T],
    jobs: usize,
    work: impl Fn(&T) -> Result<(), ClientError> + Sync,
) -> Result<(), ClientError> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<ClientError>> = Mutex::new(None);
    let stopped = || failed.lock().map(|f| f.is_some()).unwrap_or(true);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while !stopped() {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        break;
                    };
                    if let Err(e) = work(item) {
                        if let Ok(mut f) = failed.lock() {
                            f.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Whether a file name from the server is safe to write under the target directory: a
/// relative path without `.`/`..` segments or empty ones.
pub fn safe_rel(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && !seg.contains('\0'))
}

/// Where unfinished downloads live under the target directory: a name no listed file may
/// take (see [`check_names`]), so a download never writes over another file's bytes.
pub const PARTIAL_DIR: &str = ".arbor-partial";

/// Refuses a listing the target directory cannot hold as it is: names under
/// [`PARTIAL_DIR`], a name twice, or a name that is another's directory.
pub fn check_names<'a>(rels: impl IntoIterator<Item = &'a str>) -> Result<(), ClientError> {
    let mut all = std::collections::HashSet::new();
    for rel in rels {
        if !all.insert(rel) {
            return Err(ClientError::Local(format!(
                "the server listed {rel:?} twice"
            )));
        }
    }
    for rel in &all {
        let conflict = rel.split('/').next() == Some(PARTIAL_DIR)
            || rel.match_indices('/').any(|(i, _)| all.contains(&rel[..i]));
        if conflict {
            return Err(ClientError::Local(format!(
                "the server listed {rel:?}, which cannot be a file in the target directory"
            )));
        }
    }
    Ok(())
}

/// Removes the directory of unfinished downloads once none is left in it.
pub fn tidy(target: &Path) {
    let _ = fs::remove_dir(target.join(PARTIAL_DIR));
}

/// Downloads `url` to `target/name` (`name` checked by [`safe_rel`] and [`check_names`]),
/// verified against the server's `Digest`. The bytes go to `target/.arbor-partial/`, under
/// a name made from `name`, locked while in use: a second run continues them, a second
/// process at the same time is refused.
pub fn download_one(
    remote: &Remote,
    url: &str,
    target: &Path,
    name: &str,
    progress: &Progress,
) -> Result<(), ClientError> {
    let dest = target.join(name);
    let dest = dest.as_path();
    let local = |e: io::Error| ClientError::Local(format!("{}: {e}", dest.display()));
    let partial = target.join(PARTIAL_DIR);
    for dir in [dest.parent(), Some(partial.as_path())]
        .into_iter()
        .flatten()
    {
        fs::create_dir_all(dir).map_err(local)?;
    }
    check_partial_dir(&partial)?;
    let part = partial.join(hex::encode(Sha256::digest(name.as_bytes())));
    let mut file =
        open_partial(&part).map_err(|e| ClientError::Local(format!("{}: {e}", part.display())))?;
    file.try_lock()
        .map_err(|_| ClientError::Local(format!("{name}: another download is writing it")))?;
    let item = progress.start(name, 0);
    let mut fresh = false;
    loop {
        match fetch(remote, url, &mut file, &item, progress)? {
            Fetched::Verified(size) => {
                fs::rename(&part, dest).map_err(local)?;
                item.done(size, "");
                return Ok(());
            }
            Fetched::Unchecked(size) => {
                // Kept, as dlrepo-cli keeps it (spec/CLI.md), but not in silence: a proxy
                // that drops the header would otherwise turn every check off unseen.
                fs::rename(&part, dest).map_err(local)?;
                item.warn("the server sent no Digest: kept without a check");
                item.done(size, " (unchecked)");
                return Ok(());
            }
            // Bytes from an earlier run that belonged to other content: once from zero.
            Fetched::Mismatch(_) if !fresh => {
                file.set_len(0).map_err(local)?;
                item.at(0);
                fresh = true;
            }
            Fetched::Mismatch(digest) => {
                let _ = fs::remove_file(&part);
                return Err(ClientError::Local(format!(
                    "{name}: downloaded data does not match digest: {digest}"
                )));
            }
        }
    }
}

/// The directory of unfinished downloads must be the user's own, not a link somewhere
/// else: in a directory others may write to (a shared `/tmp` path, a directory another user
/// prepared), one planted there would have the download write wherever it leads.
fn check_partial_dir(dir: &Path) -> Result<(), ClientError> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = fs::symlink_metadata(dir)
        .map_err(|e| ClientError::Local(format!("{}: {e}", dir.display())))?;
    let mine = meta.uid() == nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || !mine {
        return Err(ClientError::Local(format!(
            "{}: not a directory of this user's (a link, or someone else's): remove it",
            dir.display()
        )));
    }
    Ok(())
}

/// Opens (or makes) an unfinished download: never through a symlink, never a FIFO or a
/// device, which someone else may have put there in its place.
fn open_partial(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::other("not a regular file: remove it"));
    }
    Ok(file)
}

enum Fetched {
    /// Complete, and its digest matches: its size.
    Verified(u64),
    /// Complete, with no digest to check it against: its size.
    Unchecked(u64),
    /// Complete, but not the content the server's digest names.
    Mismatch(String),
}

/// Gets the rest of `url` into `file`, continuing after lost connections, hashing what it
/// writes as it writes it (one pass over the bytes). Bytes already in the file are only
/// continued when the server says where its answer starts (`Content-Range`) and names the
/// content (`Digest`), so that the whole can be checked; otherwise it starts over.
fn fetch(
    remote: &Remote,
    url: &str,
    file: &mut File,
    item: &Item,
    progress: &Progress,
) -> Result<Fetched, ClientError> {
    let local = |e: io::Error| ClientError::Local(format!("{url}: {e}"));
    let (mut attempt, mut sized, mut ranges) = (0, false, true);
    // The hash of the file's first `hashed` bytes, once an answer said which algorithm.
    let (mut hasher, mut hashed): (Option<Hasher>, u64) = (None, 0);
    loop {
        let have = file.metadata().map_err(local)?.len();
        let range = format!("bytes={have}-");
        let ask = ranges && have > 0;
        let headers: &[(&str, &str)] = if ask { &[("Range", &range)] } else { &[] };
        let reply = match remote.send("GET", url, headers, Body::None) {
            // Already whole: the server has nothing after it. Check it from the start.
            Err(ClientError::Remote { status: 416, .. }) if ask => {
                file.set_len(0).map_err(local)?;
                continue;
            }
            other => other?,
        };
        // Anything but the whole file or the range asked for is no file's content (a
        // server's 201, 204 or an unasked-for 206 would be kept as the file).
        if !(reply.status == 200 || (ask && reply.status == 206)) {
            return Err(ClientError::Local(format!(
                "{url}: the server answered {} instead of the file",
                reply.status
            )));
        }
        if reply.headers.get("digest").is_some() && reply.header("digest").is_none() {
            return Err(ClientError::Local(format!(
                "{url}: a Digest that is not text"
            )));
        }
        let expected =
            match reply.header("digest") {
                Some(d) => Some(Digest::parse(Some(d)).map_err(|e| {
                    ClientError::Local(format!("{url}: unsupported Digest {:?}", e.0))
                })?),
                None => None,
            };
        let append = ask && reply.status == 206;
        if append && (expected.is_none() || range_start(&reply) != Some(have)) {
            // Nothing to check the whole against, or not the bytes asked for: start over.
            file.set_len(0).map_err(local)?;
            ranges = false;
            continue;
        }
        if !sized {
            let length: Option<u64> = reply.header("content-length").and_then(|v| v.parse().ok());
            if let Some(whole) = length.map(|l| if append { l + have } else { l }) {
                progress.expect(0, whole);
                item.set_size(whole);
                sized = true;
            }
        }
        let algo = expected.as_ref().map_or(Algo::Sha256, Digest::algo);
        if !append {
            file.set_len(0).map_err(local)?;
            (hasher, hashed) = (Some(algo.hasher()), 0);
        } else if hashed != have || hasher.is_none() {
            // Bytes from an earlier run: they count too.
            (hasher, hashed) = (Some(hash_prefix(file, algo).map_err(local)?), have);
        }
        let mut h = hasher.take().unwrap_or_else(|| algo.hasher());
        file.seek(SeekFrom::Start(hashed)).map_err(local)?;
        item.at(hashed);
        let (written, ended) = copy_hashing(&mut reply.body.into_reader(), file, &mut h, item);
        hashed += written;
        match ended {
            Ok(()) => {
                file.sync_all().map_err(local)?;
                return Ok(match expected {
                    Some(d) if h.finish_hex() != d.hex() => Fetched::Mismatch(d.to_string()),
                    Some(_) => Fetched::Verified(hashed),
                    None => Fetched::Unchecked(hashed),
                });
            }
            Err(e) if attempt < RESUMES => {
                hasher = Some(h);
                tracing::debug!("{url}: {e}; continuing");
                attempt += 1;
                std::thread::sleep(crate::net::backoff(attempt));
            }
            Err(e) => return Err(ClientError::Local(format!("{url}: {e}"))),
        }
    }
}

/// Where a 206 answer starts, from its `Content-Range: bytes START-END/TOTAL`.
fn range_start(reply: &super::remote::Reply) -> Option<u64> {
    let range = reply.header("content-range")?.strip_prefix("bytes ")?;
    range.split('-').next()?.trim().parse().ok()
}

/// Copies `from` to `to`, hashing and counting; how much was written, and how it ended.
/// This thread receives and writes, a second hashes what was written: on two cores shared
/// with the server, the hash takes the core that receiving and writing leave free, so a
/// download costs about what an unchecked one does.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut File,
    hasher: &mut Hasher,
    item: &Item,
) -> (u64, io::Result<()>) {
    use std::sync::mpsc::sync_channel;
    const BUF: usize = 1 << 20;
    const BUFS: usize = 8;
    let (written_tx, written_rx) = sync_channel::<(Vec<u8>, usize)>(BUFS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(BUFS);
    for _ in 0..BUFS {
        let _ = empty_tx.send(vec![0u8; BUF]);
    }
    std::thread::scope(|scope| {
        scope.spawn(move || {
            for (buf, n) in written_rx {
                hasher.update(&buf[..n]);
                // The receiver may be gone already (it stopped on an error): nothing to do.
                let _ = empty_tx.send(buf);
            }
        });
        let mut written = 0u64;
        let ended = loop {
            // The hashing thread holds every buffer only while it works through them.
            let Ok(mut buf) = empty_rx.recv() else {
                break Ok(());
            };
            let (n, failed) = fill(from, &mut buf);
            if n > 0 {
                if let Err(e) = to.write_all(&buf[..n]) {
                    break Err(e);
                }
                written += n as u64;
                item.add(n as u64);
                if written_tx.send((buf, n)).is_err() {
                    break Ok(());
                }
            }
            match failed {
                Some(e) => break Err(e),
                None if n == 0 => break Ok(()),
                None => {}
            }
        };
        // Dropping the sender ends the hashing thread once it has hashed every written
        // byte; the scope waits for it before the caller reads the hash.
        drop(written_tx);
        (written, ended)
    })
}

/// Reads into `buf` until it is full or the stream ends: how much it holds, and the error
/// that stopped it early (what arrived before an error is kept).
fn fill(from: &mut impl Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match from.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The hash state after the bytes of `file` (read from its start).
pub(super) fn hash_prefix(file: &mut File, algo: Algo) -> io::Result<Hasher> {
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = algo.hasher();
    // No larger than the file: zeroing 256 KiB for each 4 KiB file was a third of the
    // client's CPU in an upload of many small files.
    let len = file.metadata()?.len().clamp(1, 256 << 10);
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(256 << 10)];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(hasher);
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_cannot_leave_the_target() {
        for bad in ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/."] {
            assert!(!safe_rel(bad), "{bad}");
        }
        for good in ["a", "a/b.txt", "..a", "a..b/c"] {
            assert!(safe_rel(good), "{good}");
        }
    }

    #[test]
    fn listings_the_target_cannot_hold_are_refused() {
        assert!(check_names(["a", "b/c", "b/d", ".arbor-partialx"]).is_ok());
        for bad in [
            &["a", "a/b"][..],
            &["x/a", "x/a/b/c"],
            &[".arbor-partial/x"],
        ] {
            assert!(check_names(bad.iter().copied()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_first_failure_stops_new_work() {
        let done = AtomicUsize::new(0);
        let items: Vec<usize> = (0..100).collect();
        let r = in_parallel(&items, 4, |i| {
            done.fetch_add(1, Ordering::SeqCst);
            if *i == 3 {
                return Err(ClientError::Local("boom".into()));
            }
            // Instant items let the other three workers take all 96 left while the failing
            // one was descheduled before it recorded its error (seen once in CI): with 5 ms
            // each, that would take a stall of 160 ms.
            std::thread::sleep(std::time::Duration::from_millis(5));
            Ok(())
        });
        assert!(matches!(r, Err(ClientError::Local(m)) if m == "boom"));
        assert!(done.load(Ordering::SeqCst) < 100);
        assert!(in_parallel(&items, 4, |_| Ok(())).is_ok());
    }
}
