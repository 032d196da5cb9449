//! Uploads and downloads of many files at once: `-J` workers share one queue and one
//! connection pool; the first failure stops the others from starting new files.
//!
//! Upload of one file (spec/CLI.md §3): hash it, `HEAD` with its `Digest`; when the server
//! has that content, a `PUT` with `X-Dlrepo-Link` and no body, else a `PUT` of the bytes.
//! With `--resume`, a file the server already holds with the same digest is skipped.
//!
//! Download of one file: into `NAME.part` next to it, checked against the `Digest` the
//! server sends, renamed into place only when it matches. A `.part` left by an interrupted
//! run, or by a connection lost mid-file, is continued with `Range`; the digest check is
//! what makes that safe.
// The client reads and writes the user's own files, never the repository tree.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use super::ClientError;
use super::progress::{Item, Progress};
use super::remote::{Body, Remote};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Files from this size on are offered by digest (`HEAD`, then a link) before their bytes.
const ASK_FIRST: u64 = 64 << 10;

/// How many times a download continues after losing its connection mid-file.
const RESUMES: u32 = 4;

/// A local file to send, and its path under the format.
pub struct Upload {
    pub local: PathBuf,
    pub rel: String,
    pub size: u64,
}

/// The files named on the command line: a file as its base name, a directory walked
/// recursively with the paths below it (spec/CLI.md §2). Fails before any request when a
/// path does not exist, as dlrepo-cli's argument check does.
pub fn collect(paths: &[PathBuf]) -> Result<Vec<Upload>, ClientError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|_| {
            ClientError::Usage(format!("{:?}: No such file or directory", path.display()))
        })?;
        if meta.is_file() {
            out.push(Upload {
                rel: utf8(path.file_name().map(Path::new).unwrap_or(path))?,
                local: path.clone(),
                size: meta.len(),
            });
            continue;
        }
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry.map_err(|e| ClientError::Local(e.to_string()))?;
            // Like os.walk: files and links to files, not the inside of linked directories.
            let Ok(meta) = fs::metadata(entry.path()) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let rel = entry.path().strip_prefix(path).unwrap_or(entry.path());
            out.push(Upload {
                rel: utf8(rel)?,
                local: entry.path().to_owned(),
                size: meta.len(),
            });
        }
    }
    Ok(out)
}

fn utf8(path: &Path) -> Result<String, ClientError> {
    let parts: Option<Vec<&str>> = path.iter().map(|p| p.to_str()).collect();
    parts
        .map(|p| p.join("/"))
        .ok_or_else(|| ClientError::Local(format!("{}: not a UTF-8 name", path.display())))
}

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

/// `sha256:<hex>` of a local file.
fn file_digest(path: &Path) -> io::Result<String> {
    let hasher = hash_prefix(path)?;
    Ok(format!("sha256:{}", hex::encode(hasher.finalize())))
}

/// Uploads one file to `url` (a full URL).
pub fn upload_one(
    remote: &Remote,
    url: &str,
    file: &Upload,
    resume: bool,
    progress: &Progress,
) -> Result<(), ClientError> {
    let local = |e: io::Error| ClientError::Local(format!("{}: {e}", file.local.display()));
    let digest = file_digest(&file.local).map_err(local)?;
    let item = progress.start(&file.rel, file.size);
    if resume {
        let present = match remote.send("HEAD", url, &[], Body::None) {
            Ok(reply) => reply.header("digest") == Some(digest.as_str()),
            Err(ClientError::Remote { status: 404, .. }) => false,
            Err(e) => return Err(e),
        };
        if present {
            item.add(file.size);
            item.done(file.size, " (unchanged)");
            return Ok(());
        }
    }
    let with_digest = [("Digest", digest.as_str())];
    // Asking first costs a round trip; below this size the bytes cost less than the
    // question, and the server stores the content once either way.
    let ask = file.size >= ASK_FIRST;
    let head = match ask {
        true => remote.send("HEAD", url, &with_digest, Body::None),
        false => Err(ClientError::Remote {
            status: 404,
            message: String::new(),
        }),
    };
    match head {
        Ok(_) => {
            let link = [
                ("Digest", digest.as_str()),
                ("X-Dlrepo-Link", digest.as_str()),
            ];
            remote.send("PUT", url, &link, Body::Empty)?;
            item.add(file.size);
            item.done(file.size, " (deduplicated)");
            return Ok(());
        }
        Err(ClientError::Remote { status: 404, .. }) => {}
        Err(e) => return Err(e),
    }
    let open = || -> io::Result<(Box<dyn Read + Send>, u64)> {
        let f = File::open(&file.local)?;
        // A new attempt sends the file from its start again.
        item.at(0);
        Ok((Box::new(item.reader(f)), file.size))
    };
    remote.send("PUT", url, &with_digest, Body::File(&open))?;
    item.done(file.size, "");
    Ok(())
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

/// Downloads `url` to `target/name` (`name` checked by [`safe_rel`]), verified against
/// the server's `Digest`.
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
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(local)?;
    }
    let mut part = dest.as_os_str().to_owned();
    part.push(".part");
    let part = PathBuf::from(part);
    let item = progress.start(name, 0);
    let mut fresh = false;
    loop {
        match fetch(remote, url, &part, &item, progress)? {
            Fetched::Verified(size) => {
                fs::rename(&part, dest).map_err(local)?;
                item.done(size, "");
                return Ok(());
            }
            // A `.part` from an earlier run that belonged to other content: once from zero.
            Fetched::Mismatch(_) if !fresh => {
                fs::remove_file(&part).map_err(local)?;
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

enum Fetched {
    /// Complete, and its digest matches (or the server sent none): its size.
    Verified(u64),
    /// Complete, but not the content the server's digest names.
    Mismatch(String),
}

/// Gets the rest of `url` into `part`, continuing after lost connections, hashing what
/// it writes as it writes it (one pass over the bytes).
fn fetch(
    remote: &Remote,
    url: &str,
    part: &Path,
    item: &Item,
    progress: &Progress,
) -> Result<Fetched, ClientError> {
    let local = |e: io::Error| ClientError::Local(format!("{}: {e}", part.display()));
    let mut attempt = 0;
    let mut sized = false;
    // The hash of the part's first `hashed` bytes.
    let (mut hasher, mut hashed) = (Sha256::new(), 0u64);
    loop {
        let have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let range = format!("bytes={have}-");
        let headers: &[(&str, &str)] = if have > 0 { &[("Range", &range)] } else { &[] };
        let reply = match remote.send("GET", url, headers, Body::None) {
            // The `.part` is already whole: the server has nothing after it.
            Err(ClientError::Remote { status: 416, .. }) if have > 0 => {
                fs::remove_file(part).map_err(local)?;
                continue;
            }
            other => other?,
        };
        let append = reply.status == 206;
        if !sized {
            let length: Option<u64> = reply.header("content-length").and_then(|v| v.parse().ok());
            if let Some(whole) = length.map(|l| if append { l + have } else { l }) {
                progress.expect(0, whole);
                item.set_size(whole);
                sized = true;
            }
        }
        let digest = reply.header("digest").map(str::to_owned);
        if !append {
            (hasher, hashed) = (Sha256::new(), 0);
        } else if hashed != have {
            // A part from an earlier run: its bytes count too.
            (hasher, hashed) = (hash_prefix(part).map_err(local)?, have);
        }
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(part)
            .map_err(local)?;
        item.at(hashed);
        let (written, ended) =
            copy_hashing(&mut reply.body.into_reader(), &mut file, &mut hasher, item);
        hashed += written;
        match ended {
            Ok(()) => {
                file.sync_all().map_err(local)?;
                return judge(url, digest, hasher, hashed);
            }
            Err(e) if attempt < RESUMES => {
                tracing::debug!("{url}: {e}; continuing");
                attempt += 1;
                std::thread::sleep(crate::net::backoff(attempt));
            }
            Err(e) => return Err(ClientError::Local(format!("{url}: {e}"))),
        }
    }
}

/// A whole file's hash against the `Digest` the server sent (none: nothing to check).
fn judge(
    url: &str,
    digest: Option<String>,
    hasher: Sha256,
    size: u64,
) -> Result<Fetched, ClientError> {
    let got = format!("sha256:{}", hex::encode(hasher.finalize()));
    Ok(match digest {
        Some(d) if !d.starts_with("sha256:") => {
            return Err(ClientError::Local(format!(
                "{url}: unsupported digest algorithm in {d:?}"
            )));
        }
        Some(d) if d != got => Fetched::Mismatch(d),
        _ => Fetched::Verified(size),
    })
}

/// Copies `from` to `to`, hashing and counting; how much was written, and how it ended.
/// Receiving and hashing overlap: this thread reads while a second one writes and hashes
/// what was read before, so a download costs the slower of the two, not their sum.
fn copy_hashing(
    from: &mut impl Read,
    to: &mut File,
    hasher: &mut Sha256,
    item: &Item,
) -> (u64, io::Result<()>) {
    use std::sync::mpsc::sync_channel;
    const BUF: usize = 1 << 20;
    const BUFS: usize = 4;
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(BUFS);
    let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(BUFS);
    for _ in 0..BUFS {
        let _ = empty_tx.send(vec![0u8; BUF]);
    }
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            let mut written = 0u64;
            for (buf, n) in full_rx {
                if let Err(e) = to.write_all(&buf[..n]) {
                    return (written, Err(e));
                }
                hasher.update(&buf[..n]);
                written += n as u64;
                // The reader may be gone already (it stopped on an error): nothing to do.
                let _ = empty_tx.send(buf);
            }
            (written, Ok(()))
        });
        let read = loop {
            // No buffer back: the writer stopped, and says why.
            let Ok(mut buf) = empty_rx.recv() else {
                break Ok(());
            };
            let (n, failed) = fill(from, &mut buf);
            if n > 0 {
                item.add(n as u64);
                if full_tx.send((buf, n)).is_err() {
                    break Ok(());
                }
            }
            match failed {
                Some(e) => break Err(e),
                None if n == 0 => break Ok(()),
                None => {}
            }
        };
        drop(full_tx);
        let (written, wrote) = writer
            .join()
            .unwrap_or_else(|_| (0, Err(io::Error::other("the writer thread panicked"))));
        (written, wrote.and(read))
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

/// The hash state after a file's bytes.
fn hash_prefix(path: &Path) -> io::Result<Sha256> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 << 10];
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
    fn the_first_failure_stops_new_work() {
        let done = AtomicUsize::new(0);
        let items: Vec<usize> = (0..100).collect();
        let r = in_parallel(&items, 4, |i| {
            done.fetch_add(1, Ordering::SeqCst);
            if *i == 3 {
                Err(ClientError::Local("boom".into()))
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(ClientError::Local(m)) if m == "boom"));
        assert!(done.load(Ordering::SeqCst) < 100);
        assert!(in_parallel(&items, 4, |_| Ok(())).is_ok());
    }
}
