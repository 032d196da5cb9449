//! Upload of one file (spec/CLI.md §3): hash it, `HEAD` with its `Digest`; when the server
//! has that content, a `PUT` with `X-Dlrepo-Link` and no body, else a `PUT` of the bytes.
//! With `--resume`, a file the server already holds with the same digest is skipped.
//!
//! A large file going to an arbor server is sent while it is hashed instead: a `PUT` without
//! a `Digest` (which arbor takes, and answers with the digest it stored) while a second
//! thread hashes the file. The two digests must agree, or the file is sent again the usual
//! way, with its `Digest` for the server to check. When the hash is done before the bytes
//! and the server already holds that content, the `PUT` is cut short and the file linked.
// The client reads the user's own files, never the repository tree.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use super::ClientError;
use super::progress::{Item, Progress};
use super::remote::{Body, Remote, Reply};
use super::transfer::hash_prefix;
use crate::model::Algo;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Files from this size on are offered by digest (`HEAD`, then a link) before their bytes.
const ASK_FIRST: u64 = 64 << 10;

/// Files from this size on are sent to an arbor server while they are hashed: hashing first
/// would cost as long as a quarter to half of sending them over a fast network.
const HASH_WHILE_SENDING: u64 = 8 << 20;

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

/// `sha256:<hex>` of a local file.
fn file_digest(path: &Path) -> io::Result<String> {
    let hasher = hash_prefix(&mut File::open(path)?, Algo::Sha256)?;
    Ok(format!("sha256:{}", hasher.finish_hex()))
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
    let item = progress.start(&file.rel, file.size);
    if !resume && file.size >= HASH_WHILE_SENDING && takes_bytes_alone(remote, url)? {
        match send_while_hashing(remote, url, file, &item).map_err(|e| e.or_local(local))? {
            Sent::Done(note) => {
                item.done(file.size, note);
                return Ok(());
            }
            Sent::Changed(theirs, ours) => eprintln!(
                "warning: {}: the server stored {theirs}, but the file read {ours}: it \
                 changed while it was sent, or was damaged on the way; sending it again \
                 with its digest",
                file.rel
            ),
        }
    }
    let digest = file_digest(&file.local).map_err(local)?;
    if resume {
        let present = match remote.send("HEAD", url, &[], Body::None) {
            Ok(reply) => reply.header("digest") == Some(digest.as_str()),
            Err(ClientError::Remote { status: 404, .. }) => false,
            Err(e) => return Err(e),
        };
        if present {
            item.at(file.size);
            item.done(file.size, " (unchanged)");
            return Ok(());
        }
    }
    // Asking first costs a round trip; below this size the bytes cost less than the
    // question, and the server stores the content once either way.
    if file.size >= ASK_FIRST && holds(remote, url, &digest)? {
        link(remote, url, &digest)?;
        item.at(file.size);
        item.done(file.size, " (deduplicated)");
        return Ok(());
    }
    let open = || -> io::Result<(Box<dyn Read + Send>, u64)> {
        let f = File::open(&file.local)?;
        // A new attempt sends the file from its start again.
        item.at(0);
        Ok((Box::new(item.reader(f)), file.size))
    };
    remote
        .send("PUT", url, &[("Digest", &digest)], Body::File(&open))?
        .finish();
    item.done(file.size, "");
    Ok(())
}

/// Whether the server takes a `PUT` without a `Digest`: whether it is arbor. Asked with a
/// `HEAD` of `url` when no request has told yet.
fn takes_bytes_alone(remote: &Remote, url: &str) -> Result<bool, ClientError> {
    if let Some(known) = remote.is_arbor() {
        return Ok(known);
    }
    match remote.send("HEAD", url, &[], Body::None) {
        Ok(_) | Err(ClientError::Remote { .. }) => Ok(remote.is_arbor() == Some(true)),
        Err(e) => Err(e),
    }
}

/// Whether the server holds the content `digest` names (so that `url` can link to it).
fn holds(remote: &Remote, url: &str, digest: &str) -> Result<bool, ClientError> {
    match remote.send("HEAD", url, &[("Digest", digest)], Body::None) {
        Ok(_) => Ok(true),
        Err(ClientError::Remote { status: 404, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Makes `url` a link to the content `digest` names, which the server holds.
fn link(remote: &Remote, url: &str, digest: &str) -> Result<(), ClientError> {
    let link = [("Digest", digest), ("X-Dlrepo-Link", digest)];
    remote
        .send("PUT", url, &link, Body::Empty)
        .map(Reply::finish)
}

/// How [`send_while_hashing`] ended.
enum Sent {
    /// Uploaded or linked; the note for the log line.
    Done(&'static str),
    /// The server stored other bytes than the file's (its digest, the file's).
    Changed(String, String),
}

/// Why [`send_while_hashing`] failed.
enum Failed {
    Local(io::Error),
    Client(ClientError),
}

impl Failed {
    fn or_local(self, local: impl Fn(io::Error) -> ClientError) -> ClientError {
        match self {
            Failed::Local(e) => local(e),
            Failed::Client(e) => e,
        }
    }
}

/// Sends `file` without a `Digest` while another thread hashes it; that thread then asks
/// whether the server holds the content already, and if so stops the sending for a link.
fn send_while_hashing(
    remote: &Remote,
    url: &str,
    file: &Upload,
    item: &Item,
) -> Result<Sent, Failed> {
    let held = Arc::new(AtomicBool::new(false));
    let sent = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| -> Result<String, Failed> {
            let digest = file_digest(&file.local).map_err(Failed::Local)?;
            // Once the bytes are there, the server holds them of course: nothing to ask.
            if !sent.load(Ordering::SeqCst) && holds(remote, url, &digest).unwrap_or(false) {
                held.store(true, Ordering::SeqCst);
            }
            Ok(digest)
        });
        let open = || -> io::Result<(Box<dyn Read + Send>, u64)> {
            let f = File::open(&file.local)?;
            item.at(0);
            let reader = Stoppable {
                inner: item.reader(f),
                stop: held.clone(),
            };
            Ok((Box::new(reader), file.size))
        };
        let put = remote.send("PUT", url, &[], Body::File(&open));
        sent.store(true, Ordering::SeqCst);
        let ours = hashing
            .join()
            .map_err(|_| Failed::Local(io::Error::other("the hashing thread panicked")))??;
        let theirs = match put {
            Ok(reply) => {
                let theirs = reply.header("digest").unwrap_or_default().to_owned();
                reply.finish();
                theirs
            }
            Err(_) if held.load(Ordering::SeqCst) => {
                link(remote, url, &ours).map_err(Failed::Client)?;
                item.at(file.size);
                return Ok(Sent::Done(" (deduplicated)"));
            }
            Err(e) => return Err(Failed::Client(e)),
        };
        match theirs == ours {
            true => Ok(Sent::Done("")),
            false => Ok(Sent::Changed(theirs, ours)),
        }
    })
}

/// A reader that fails once `stop` is set, which ends the request it feeds.
struct Stoppable<R> {
    inner: R,
    stop: Arc<AtomicBool>,
}

impl<R: Read> Read for Stoppable<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::SeqCst) {
            // InvalidData: not a failure a new attempt could cure (net::is_transient).
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the server holds this content already",
            ));
        }
        self.inner.read(buf)
    }
}
