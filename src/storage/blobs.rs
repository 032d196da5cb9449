//! The content store: uploads stream into `.uploads/` while they are hashed, become blobs in
//! `.blobs/{algo}/{xx}/{hex}` (never replaced once there), and are hard-linked into formats
//! (spec/API.md §5.1, spec/LAYOUT.md §3.1 and §7). Also opens files for download.

use super::commit::{LinkRequest, Linked, new_entry_len};
use super::durable::DirSyncs;
use super::files::{self, At, DirLock, TempFile, exists};
use super::pool::LARGE_BATCH;
use super::quota::file_len;
use super::{Repo, StoreError};
use crate::model::{Digest, FormatRef, RelPath};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The refusal of a write into a locked job (spec/API.md §5.1).
const LOCKED: &str = "Cannot upload files in locked jobs";

/// A body fully received into `.uploads/` whose content matched the announced digest.
pub struct Upload {
    digest: Digest,
    tmp: TempFile,
}

impl Upload {
    /// What the content hashed to: the client's digest, or its sha256 when it sent none.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

/// A request body's failure: a client that stalled past `DLREPO_CLIENT_TIMEOUT` (the HTTP
/// layer reports it as `TimedOut`), or one that broke off.
pub(crate) fn body_error(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::TimedOut {
        StoreError::ClientTimeout
    } else {
        StoreError::Interrupted(e.to_string())
    }
}

impl Repo {
    /// Streams `body` to a new `.uploads/` file while hashing it (one pass over the data),
    /// flushes it to disk and checks it against `expected`; without one, the content is named by its
    /// sha256 (spec/API.md Q21). On any failure, or if this future is dropped because the
    /// client went away, the temp file is removed.
    ///
    /// No thread waits on the client: bytes gather here, on the runtime, and every
    /// `DLREPO_CHUNK_SIZE` of them (more for a large body, see [`pump`]) is written and hashed
    /// by two short blocking tasks at once while the next one arrives. A client that stalls
    /// costs a buffer, never a thread.
    pub async fn receive<S>(
        self: &Arc<Self>,
        expected: Option<&Digest>,
        mut body: S,
    ) -> Result<Upload, StoreError>
    where
        S: Stream<Item = io::Result<Bytes>> + Unpin,
    {
        let uploads = self.uploads_dir();
        // The guard stays with this future: however it ends (an error, the client gone, the
        // server stopping and dropping it), the temp file goes with it.
        let tmp = tokio::task::spawn_blocking(move || TempFile::create(&uploads)).await??;
        let sink = (
            Arc::new(tmp.file.try_clone()?),
            Some(Digest::hasher_for(expected)),
        );
        let no_limit = |_| Ok::<(), StoreError>(());
        let ((file, hasher), _) = pump(&mut body, sink, self.chunk_size, no_limit).await?;
        let hasher = hasher.ok_or(StoreError::Interrupted("no hasher".into()))?;
        // The data and the length that reads it back (`fdatasync`); the times can wait.
        tokio::task::spawn_blocking(move || file.sync_data()).await??;
        let digest = Digest::settle(expected, hasher).map_err(StoreError::DigestMismatch)?;
        Ok(Upload { digest, tmp })
    }

    /// The same as [`Repo::receive`] for a body already in memory (small uploads): checked
    /// before anything is written, so a wrong digest never touches the disk.
    pub fn stage_bytes(&self, digest: &Digest, data: &[u8]) -> Result<Upload, StoreError> {
        self.stage(Some(digest), data)
    }

    /// [`Repo::stage_bytes`] with or without an expected digest, as [`Repo::receive`].
    pub fn stage(&self, expected: Option<&Digest>, data: &[u8]) -> Result<Upload, StoreError> {
        let mut hasher = Digest::hasher_for(expected);
        hasher.update(data);
        let digest = Digest::settle(expected, hasher).map_err(StoreError::DigestMismatch)?;
        let tmp = TempFile::create(&self.uploads_dir())?;
        (&tmp.file).write_all(data).at("write", &tmp.path)?;
        tmp.file.sync_data().at("write", &tmp.path)?;
        Ok(Upload { digest, tmp })
    }

    /// Makes the file at `path`, whose content hashes to `digest`, a hard link of its blob:
    /// the file becomes the blob when there is none yet, else the blob replaces it
    /// (atomically, through a link made in `scratch`, a leased directory on the same
    /// filesystem). For files that appear outside uploads: what a post-process command
    /// leaves (spec/API.md §7) and what `fsck --repair` re-links. Holds the blob lock, so
    /// the collector cannot take the blob between the check and the link.
    pub(crate) fn link_to_blob(
        &self,
        path: &Path,
        digest: &Digest,
        scratch: &Path,
    ) -> Result<(), StoreError> {
        let _guard = self.blob_guard()?;
        let blob = self.blob_path(digest);
        if !exists(&blob) {
            if let Some(dir) = blob.parent() {
                files::create_dirs(dir).at("create", dir)?;
            }
            // `false`: another writer stored the same content meanwhile; link onto theirs.
            if super::stale::link_shared(path, &blob).at("link", path)? {
                // spec/LAYOUT.md §8: blobs are 0644, whatever mode the file had.
                fs::set_permissions(&blob, fs::Permissions::from_mode(0o644)).at("chmod", &blob)?;
                return Ok(());
            }
        }
        let staging = scratch.join(format!(".{}.link", files::random_hex()));
        fs::hard_link(&blob, &staging).at("link", &blob)?;
        if let Err(e) = fs::rename(&staging, path) {
            let _ = fs::remove_file(&staging);
            return Err(StoreError::at("rename", path, e));
        }
        Ok(())
    }

    /// Stores a verified upload as a blob and links it to `{format}/{rel}`, holding the
    /// blob lock from start to end so the orphan collector can never take the blob between
    /// the two steps, however long they take.
    pub fn store_and_link(
        &self,
        up: Upload,
        f: &FormatRef,
        rel: &RelPath,
    ) -> Result<(), StoreError> {
        self.store_and_queue(up, f, rel)?.wait_blocking()
    }

    /// [`Repo::store_and_link`] up to queueing the link: the caller awaits its commit
    /// (see [`Repo::queue_link`]); the blob lock goes with the link until it is applied.
    pub(crate) fn store_and_queue(
        &self,
        up: Upload,
        f: &FormatRef,
        rel: &RelPath,
    ) -> Result<Linked, StoreError> {
        // Refused before the blob is stored, so a refusal leaves nothing behind.
        check_container_name(f, rel, &up.digest)?;
        self.check_room(f, rel, &up.digest, up.tmp.file.metadata()?.len())?;
        // Shared with other uploads, exclusive with the orphan collector (see gc.rs).
        let guard = self.blob_guard()?;
        // `link` refuses to replace, so a concurrent upload of the same content (from any
        // process) keeps the first blob and every hard link to it intact.
        let digest = self.store_blob_unguarded(up)?;
        self.queue_artifact(f, rel, &digest, guard)
    }

    pub(crate) fn store_blob_unguarded(&self, up: Upload) -> Result<Digest, StoreError> {
        let blob = self.blob_path(&up.digest);
        if let Some(dir) = blob.parent() {
            make_durable_dirs(dir)?;
        }
        files::store_as_blob(&up.tmp.path, &blob)?;
        Ok(up.digest)
    }

    /// Refuses, before anything is stored or created, a link that cannot fit in its user's
    /// quota: the file less the one it replaces, plus a new `.digests` entry when the name
    /// is new. Linking charges it again, exactly, under the user's lock; only a race with
    /// another write of the same user can still refuse it there.
    fn check_room(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        d: &Digest,
        size: u64,
    ) -> Result<(), StoreError> {
        let FormatRef::Job { job, .. } = f else {
            return Ok(());
        };
        let Some(room) = self.room(&job.tag.branch.scope) else {
            return Ok(());
        };
        let target = self.format_dir(f).join(rel.as_str());
        let entry = if exists(&target) {
            0
        } else {
            new_entry_len(rel.as_str(), &d.to_string())
        };
        room.check(0, (size + entry).saturating_sub(file_len(&target)))
    }

    /// Refusals that do not depend on the body, checked before reading it.
    pub fn check_upload_target(&self, f: &FormatRef, rel: &RelPath) -> Result<(), StoreError> {
        if self.frozen(f)? {
            return Err(StoreError::bad(LOCKED));
        }
        // Every name fits (RelPath) but the whole path may not: refuse before any directory
        // of it is made.
        let target = self.format_dir(f).join(rel.as_str());
        if target.as_os_str().len() >= nix::libc::PATH_MAX as usize {
            return Err(io::Error::from_raw_os_error(nix::libc::ENAMETOOLONG).into());
        }
        Ok(())
    }

    /// The same check when the files are about to be linked, under the job's lock. A
    /// request that passed [`Repo::check_upload_target`] and meets a lock here lost a race with
    /// it: 409, so that a client can tell it from uploading into a job locked long ago.
    pub(crate) fn check_committable(&self, f: &FormatRef) -> Result<(), StoreError> {
        if self.frozen(f)? {
            return Err(StoreError::Conflict(format!(
                "{LOCKED}: the job was locked while this upload was in progress"
            )));
        }
        Ok(())
    }

    /// Whether a job lock covers the format (internal formats stay writable).
    pub(crate) fn frozen(&self, f: &FormatRef) -> Result<bool, StoreError> {
        if f.is_product() {
            return Err(StoreError::bad("Uploading products is not supported"));
        }
        Ok(self.frozen_format(&self.format_dir(f)))
    }

    /// [`Repo::frozen`] of the format directory `fdir` (a job's, resolved).
    pub(crate) fn frozen_format(&self, fdir: &Path) -> bool {
        let internal = fdir
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| self.is_internal_format(n));
        !internal && fdir.parent().is_some_and(|j| exists(&j.join(".locked")))
    }

    /// Hard-links an existing blob to `{format}/{rel}` and records it in `.digests`, creating
    /// the branch, tag, job and format as needed. The format is marked dirty; on failure the
    /// flag is put back as it was.
    pub fn link_artifact(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        d: &Digest,
    ) -> Result<(), StoreError> {
        // Held until the link exists, so the orphan collector cannot take the blob meanwhile.
        let guard = self.blob_guard()?;
        self.queue_artifact(f, rel, d, guard)?.wait_blocking()
    }

    /// Queues the link of blob `d` to `{format}/{rel}`; `guard` (the blob lock) is released
    /// once it is applied.
    fn queue_artifact(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        d: &Digest,
        guard: DirLock,
    ) -> Result<Linked, StoreError> {
        let FormatRef::Job { job, .. } = f else {
            return Err(StoreError::bad("Uploading products is not supported"));
        };
        let blob = self.blob_path(d);
        if !exists(&blob) {
            return Err(StoreError::NotFound);
        }
        files::touch(&blob)?;
        self.check_room(f, rel, d, fs::metadata(&blob)?.len())?;
        self.ensure_job(job)?;
        let fdir = self.format_dir(f);
        let req = LinkRequest {
            rel: rel.clone(),
            blob,
            digest: d.clone(),
        };
        Ok(self.queue_link(f, &fdir, req, Some(guard)))
    }
}

/// Makes `dir` and its missing parents, each flushed into its parent's entries: the blob's
/// own entry is flushed with the link that uses it (see `commit.rs`), but a new
/// `.blobs/{algo}/{xx}/` would be lost with it without this. One `stat` when `dir` exists.
fn make_durable_dirs(dir: &Path) -> Result<(), StoreError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut dirs = DirSyncs::default();
    for made in files::make_dirs(dir).at("create", dir)? {
        dirs.entry(&made);
    }
    dirs.sync().at("sync", dir)
}

/// `path` opened for reading, and its facts.
fn open_with_meta(path: &Path) -> Result<(File, fs::Metadata), StoreError> {
    // A download racing a rename on another host may look up a stale handle: again.
    let file = files::retry_stale(|| File::open(path)).map_err(super::not_found_if_missing)?;
    let meta = files::retry_stale(|| file.metadata())?;
    Ok((file, meta))
}

/// A file of a `container` format is named for its content (spec/LAYOUT.md §3.5), and the
/// registry serves it by that name. The file API writes there for publishers only, by their
/// `User-Agent`, which any client can send: the name is checked against the content, so
/// that no manifest or layer is served under a digest its bytes do not have.
pub(crate) fn check_container_name(
    f: &FormatRef,
    rel: &RelPath,
    d: &Digest,
) -> Result<(), StoreError> {
    if f.name().as_str() != "container" {
        return Ok(());
    }
    let named = super::registry::container_layout::rel_of(d);
    if ["blobs", "manifests"].iter().any(|kind| {
        rel.as_str()
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix('/'))
            == Some(&named)
    }) {
        return Ok(());
    }
    Err(StoreError::bad(format!(
        "A container file is named for its content: blobs/{named} or manifests/{named}"
    )))
}

/// Gives the core away after every [`Turns::EVERY`] bytes of a batch's work. The bulk
/// threads run at a lower priority, yet a 4 MiB batch's hash kept a woken request thread
/// waiting for the core: with 4 uploads running, 4 KiB GETs had a p99 of 13 ms, and with a
/// `sched_yield` per MiB 6.2-6.4 ms (9.3-9.8 with the old 256 KiB batches and no yield),
/// for no measurable cost to a lone upload (bench/README.md, "Large upload batches").
#[derive(Default)]
struct Turns {
    since: usize,
}

impl Turns {
    const EVERY: usize = 1 << 20;

    fn after(&mut self, bytes: usize) {
        self.since += bytes;
        if self.since >= Turns::EVERY {
            std::thread::yield_now();
            self.since = 0;
        }
    }
}

/// One batch of an upload being written and hashed, by two blocking tasks at once (the
/// bytes are shared, not copied). Uploads go from batch to batch this way so that no
/// thread ever waits for the client.
pub(crate) struct Flush {
    write: tokio::task::JoinHandle<io::Result<Arc<File>>>,
    hash: Option<tokio::task::JoinHandle<crate::model::Hasher>>,
    batch: Arc<Vec<u8>>,
}

impl Flush {
    /// Starts once the write class has room (see `pool.rs`); the wait holds no thread.
    pub(crate) async fn start(
        file: Arc<File>,
        hasher: Option<crate::model::Hasher>,
        batch: Vec<u8>,
    ) -> Flush {
        let slots = super::pool::write_slots(1 + u32::from(hasher.is_some())).await;
        // Both tasks hold the slots; they are given back when the last one ends.
        let slots = Arc::new(slots);
        let held = Arc::clone(&slots);
        let batch = Arc::new(batch);
        let data = Arc::clone(&batch);
        let write = super::pool::spawn_bulk(move || {
            let _slots = held;
            let mut turns = Turns::default();
            for piece in data.chunks(Turns::EVERY) {
                (&*file).write_all(piece)?;
                turns.after(piece.len());
            }
            Ok(file)
        });
        let hash = hasher.map(|mut hasher| {
            let data = Arc::clone(&batch);
            super::pool::spawn_bulk(move || {
                let _slots = slots;
                let mut turns = Turns::default();
                for piece in data.chunks(Turns::EVERY) {
                    hasher.update(piece);
                    turns.after(piece.len());
                }
                hasher
            })
        });
        Flush { write, hash, batch }
    }

    /// The sink once the batch is written and hashed, and the batch's buffer to fill again
    /// (emptied; `None` if something still held it).
    pub(crate) async fn wait(self) -> Result<(Sink, Option<Vec<u8>>), StoreError> {
        let file = self.write.await??;
        let hasher = match self.hash {
            Some(h) => Some(h.await?),
            None => None,
        };
        let spare = Arc::try_unwrap(self.batch).ok().map(|mut b| {
            b.clear();
            b
        });
        Ok(((file, hasher), spare))
    }
}

/// How far a batch may pass its step without growing: the chunk that fills it comes whole,
/// and hyper's chunks are at most its read buffer (about 400 KiB). A larger chunk only
/// makes the buffer grow.
const CHUNK_SLACK: usize = 512 << 10;

/// Where a streamed body goes: the file, and the hasher when it is hashed on the way.
pub(crate) type Sink = (Arc<File>, Option<crate::model::Hasher>);

/// Streams `body` into `sink`, one [`Flush`] per `chunk_size` bytes while the next batch
/// arrives, so that no thread waits for the client. Once the body has passed one
/// [`LARGE_BATCH`](super::pool::LARGE_BATCH), batches grow to that size while the shared
/// budget has room (`pool::large_batches`). `admit(total)` sees the byte count
/// each time a chunk arrives, before it is kept, and may refuse it. Returns the sink and
/// the byte count. On an error no write is left running: the caller may cut the file
/// back at once.
///
/// Each chunk is copied into one of two buffers that take turns (one filling, one being
/// written and hashed) and then dropped. Keeping the chunks instead kept the HTTP layer's
/// read buffers alive, so that every read needed a fresh one: a 1 GiB upload then spent an
/// eighth of the server's CPU faulting in and zeroing new pages, more than the copy costs.
pub(crate) async fn pump<S, E>(
    body: &mut S,
    sink: Sink,
    chunk_size: usize,
    mut admit: impl FnMut(u64) -> Result<(), E>,
) -> Result<(Sink, u64), E>
where
    S: Stream<Item = io::Result<Bytes>> + Unpin,
    E: From<StoreError>,
{
    let lost = || E::from(StoreError::Interrupted("upload writer lost".into()));
    let mut sink = Some(sink);
    let mut in_flight: Option<Flush> = None;
    let (mut step, mut large) = (chunk_size, None);
    let (mut batch, mut spare) = (Vec::new(), None::<Vec<u8>>);
    let mut taken = 0u64;
    let streamed: Result<(), E> = async {
        loop {
            let next = body.next().await.transpose().map_err(body_error)?;
            let end = next.is_none();
            if let Some(chunk) = next {
                taken += chunk.len() as u64;
                admit(taken)?;
                // A buffer made for a smaller step (or none yet) grows once, not by
                // doubling as it fills.
                batch.reserve_exact((step + CHUNK_SLACK).saturating_sub(batch.len()));
                batch.extend_from_slice(&chunk);
            }
            if batch.len() >= step || (end && !batch.is_empty()) {
                if let Some(flush) = in_flight.take() {
                    let (written, buffer) = flush.wait().await?;
                    sink = Some(written);
                    spare = buffer;
                }
                let (file, hasher) = sink.take().ok_or_else(lost)?;
                let next_batch = spare.take().unwrap_or_default();
                let full = std::mem::replace(&mut batch, next_batch);
                in_flight = Some(Flush::start(file, hasher, full).await);
                if large.is_none() && step < LARGE_BATCH && taken >= LARGE_BATCH as u64 {
                    large = super::pool::large_batches();
                    if large.is_some() {
                        step = LARGE_BATCH;
                    }
                }
            }
            if end {
                return Ok(());
            }
        }
    }
    .await;
    if let Some(flush) = in_flight.take() {
        let written = flush.wait().await;
        streamed?;
        sink = Some(written?.0);
    } else {
        streamed?;
    }
    Ok((sink.ok_or_else(lost)?, taken))
}

/// An inclusive byte range of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// The largest chunk a streamed file body grows to (unless `DLREPO_CHUNK_SIZE` is larger)
/// outside the shared budget of large steps: four hops to the blocking pool per MiB at the
/// default 256 KiB cost 4 clients downloading over loopback a fifth of their rate
/// (bench/README.md, "Downloads to this host").
const STREAM_CHUNK_MAX: usize = 1 << 20;

/// The chunk a long download grows to next, while the budget of large steps has room
/// (`pool::large_batches`): one client downloading 1 GiB over loopback went from 0.72–0.99
/// of nginx's rate with 1 MiB chunks to 0.79–1.13 with 4 MiB ones, in alternating rounds
/// (bench/README.md, "4 MiB chunks for long downloads").
const STREAM_CHUNK_LARGE: usize = LARGE_BATCH;

/// An open file ready to be sent: the HTTP layer reads its facts and streams it without
/// ever learning a filesystem path.
pub struct BlobReader {
    file: File,
    len: u64,
    modified: SystemTime,
    digest: Option<String>,
    resolved: PathBuf,
    /// The whole content, read with the opening ([`BlobReader::preload`]).
    content: Option<Bytes>,
}

impl BlobReader {
    pub(crate) fn open(
        repo: &Repo,
        path: &Path,
        digest: Option<String>,
    ) -> Result<BlobReader, StoreError> {
        let (file, meta) = open_with_meta(path)?;
        BlobReader::opened(repo, path, file, &meta, digest)
    }

    /// [`BlobReader::open`] of a file opened already, `meta` being its.
    fn opened(
        repo: &Repo,
        path: &Path,
        file: File,
        meta: &fs::Metadata,
        digest: Option<String>,
    ) -> Result<BlobReader, StoreError> {
        let resolved = if repo.x_sendfile {
            files::retry_stale(|| fs::canonicalize(path))?
        } else {
            PathBuf::new()
        };
        Ok(BlobReader {
            file,
            len: meta.len(),
            modified: meta.modified()?,
            digest,
            resolved,
            content: None,
        })
    }

    /// Reads the whole file now when it holds at most `max` bytes, so that sending it needs
    /// no further trip to the blocking pool: a small download then costs one trip, where
    /// opening and then streaming it cost two.
    pub fn preload(mut self, max: u64) -> io::Result<BlobReader> {
        use std::io::Read;
        if self.len > max || self.content.is_some() {
            return Ok(self);
        }
        let mut buf = Vec::with_capacity(usize::try_from(self.len).unwrap_or(0));
        (&self.file).take(self.len).read_to_end(&mut buf)?;
        if buf.len() as u64 != self.len {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
        }
        self.content = Some(Bytes::from(buf));
        Ok(self)
    }

    /// The content, if [`BlobReader::preload`] read it.
    pub fn content(&self) -> Option<&Bytes> {
        self.content.as_ref()
    }

    /// The file at `rel` of a format, `path` being where it is, under the digest `listed`
    /// (the format's `.digests`) gives it, if any. A listed file's `modified` is the
    /// format's timestamp (see [`super::digests::format_time`]): the file's own mtime is
    /// its blob's, which moves whenever the same content is uploaded or asked for by
    /// digest anywhere. An unlisted file keeps its own, the only validator it has.
    ///
    /// A file that is not the blob of its listed digest (overwritten by a commit that has
    /// not renamed `.digests` yet, or never did) is settled first (`settle.rs`), so the
    /// digest given with the bytes is always theirs.
    pub(crate) fn open_listed(
        repo: &Repo,
        fdir: &Path,
        listed: &super::digests::Listed,
        rel: &str,
    ) -> Result<BlobReader, StoreError> {
        let path = fdir.join(rel);
        let digest = listed.digest(rel).map(str::to_owned);
        let is_listed = digest.is_some();
        let (file, meta) = open_with_meta(&path)?;
        let mut file = match &digest {
            Some(d) if !repo.is_blob_of(d, &meta) => {
                let settled = repo.settle(fdir, rel)?;
                BlobReader::opened(repo, &path, settled.file, &settled.meta, settled.digest)?
            }
            _ => BlobReader::opened(repo, &path, file, &meta, digest)?,
        };
        if is_listed {
            let t = listed.time();
            // Finite and non-negative here: Duration would panic on anything else.
            let secs = if t.is_finite() {
                t.clamp(0.0, 1e12)
            } else {
                0.0
            };
            file.modified = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(secs);
        }
        Ok(file)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn modified(&self) -> SystemTime {
        self.modified
    }

    /// The same file, answered under `digest` as the client spelled it (the registry echoes
    /// the URL's digest, spec/CONTAINER.md §3.7).
    pub fn with_digest(mut self, digest: String) -> BlobReader {
        self.digest = Some(digest);
        self
    }

    /// The digest recorded for this file, as stored in `.digests`.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Absolute path with symlinks resolved, for `X-Accel-Redirect`-style headers.
    pub fn accel_path(&self) -> String {
        self.resolved.to_string_lossy().into_owned()
    }

    /// The file (or a range of it) as a job for the connection's `sendfile(2)` writer.
    pub fn into_send_job(self, range: Option<ByteRange>) -> io::Result<crate::zerocopy::SendJob> {
        let (start, len) = match range {
            Some(r) => (r.start, r.end + 1 - r.start),
            None => (0, self.len),
        };
        // Sequential access: the kernel reads ahead further, so sendfile rarely waits on disk.
        let _ = nix::fcntl::posix_fadvise(
            &self.file,
            i64::try_from(start).unwrap_or(0),
            i64::try_from(len).unwrap_or(0),
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
        );
        crate::zerocopy::SendJob::new(self.file, start, len)
    }

    /// The file's bytes (or a range of them) as a stream. Each chunk is read by a short
    /// blocking task when the response asks for it, so memory stays at one chunk and a
    /// client that stops reading holds no thread. Chunks start at `chunk_size` and double
    /// up to [`STREAM_CHUNK_MAX`], so a large file costs fewer hops to the pool; past that,
    /// to [`STREAM_CHUNK_LARGE`] when the shared budget of large steps has room, held until
    /// the stream ends.
    pub fn into_stream(
        self,
        range: Option<ByteRange>,
        chunk_size: usize,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        use std::io::{Read, Seek, SeekFrom};
        let (start, len) = match range {
            Some(r) => (r.start, r.end + 1 - r.start),
            None => (0, self.len),
        };
        let file = Arc::new(self.file);
        let state = Chunks {
            file,
            at: start,
            left: len,
            chunk: chunk_size,
            most: chunk_size.max(STREAM_CHUNK_MAX),
            large: None,
        };
        futures_util::stream::try_unfold(state, move |mut c| async move {
            if c.left == 0 {
                return Ok(None);
            }
            let (at, left, chunk) = (c.at, c.left, c.chunk);
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(chunk);
            let reader = Arc::clone(&c.file);
            let slot = super::pool::read_slot().await;
            let buf = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                // Read into spare capacity: zeroing the buffer first cost 7 % of the server's
                // CPU in a download. The stream is the file's only reader, one chunk at a time.
                let mut buf = Vec::with_capacity(want);
                (&*reader).seek(SeekFrom::Start(at))?;
                (&*reader).take(want as u64).read_to_end(&mut buf)?;
                if buf.is_empty() {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "file shrank"));
                }
                Ok(buf)
            })
            .await
            .map_err(io::Error::other)??;
            let n = buf.len() as u64;
            (c.at, c.left) = (at + n, left - n);
            // Worth a share of the budget only while a large chunk is left to send.
            if chunk >= c.most
                && c.most < STREAM_CHUNK_LARGE
                && c.large.is_none()
                && c.left >= STREAM_CHUNK_LARGE as u64
            {
                c.large = super::pool::large_batches();
                if c.large.is_some() {
                    c.most = STREAM_CHUNK_LARGE;
                }
            }
            c.chunk = chunk.saturating_mul(2).min(c.most);
            Ok(Some((Bytes::from(buf), c)))
        })
    }
}

/// Where a streamed file body is: what is left to read, the next chunk's size, the largest
/// it may grow to, and the share of the large-step budget that lets it grow past
/// [`STREAM_CHUNK_MAX`].
struct Chunks {
    file: Arc<File>,
    at: u64,
    left: u64,
    chunk: usize,
    most: usize,
    large: Option<tokio::sync::SemaphorePermit<'static>>,
}

#[cfg(test)]
mod tests {
    use crate::model::{RelPath, Scope};
    use crate::storage::fixture::{self, TestRepo};
    use crate::storage::{Artifact, Visibility, stale::fake};

    /// On a network filesystem, a download racing a rename on another host may meet
    /// `ESTALE` at any lookup of the file: each is tried again.
    #[test]
    fn a_download_looks_up_a_stale_handle_again() {
        let repo = TestRepo::new();
        let f = fixture::format(&fixture::job(Scope::Root, "b", "t", "j"), "f");
        let rel = RelPath::parse("x").expect("path");
        let (_, digest) = repo.blob(b"data");
        repo.link_artifact(&f, &rel, &digest).expect("link");
        let (artifact, retried) =
            fake::stale_once_each(|| repo.open_artifact(&f, &rel, &Visibility::everything()));
        let Ok(Artifact::File(file)) = artifact else {
            panic!("not opened: {:?}", artifact.err());
        };
        assert_eq!(file.len(), 4);
        assert_eq!(file.digest(), Some(digest.to_string().as_str()));
        // The file's stat, `.digests`, the open, its fstat, its blob's stat, the format's
        // time.
        assert_eq!(retried, 6);
    }

    /// The tests that take shares of the process-wide budget of large steps, one at a time.
    static BUDGET: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// A batch's buffer comes back from its flush, emptied, to be filled again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flushed_batch_gives_its_buffer_back() {
        use super::Flush;
        use crate::model::Algo;
        let file = std::sync::Arc::new(tempfile::tempfile().expect("temp file"));
        let mut batch = Vec::with_capacity(1 << 20);
        batch.extend_from_slice(b"some bytes");
        let flush = Flush::start(file, Some(Algo::Sha256.hasher()), batch).await;
        let ((file, hasher), spare) = flush.wait().await.expect("flushed");
        let spare = spare.expect("the buffer back");
        assert!(spare.is_empty() && spare.capacity() >= 1 << 20);
        assert_eq!(file.metadata().expect("stat").len(), 10);
        assert!(hasher.is_some());
    }

    /// A body past one large batch is written and hashed whole across the change of step.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_body_is_written_and_hashed_across_growing_batches() {
        let _budget = BUDGET.lock().await;
        use super::{LARGE_BATCH, pump};
        use crate::model::Algo;
        use sha2::Digest as _;
        let data: Vec<u8> = (0..(2 * LARGE_BATCH + 12_345) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let chunks: Vec<std::io::Result<bytes::Bytes>> = data
            .chunks(65_536)
            .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
            .collect();
        let file = tempfile::tempfile().expect("temp file");
        let sink = (std::sync::Arc::new(file), Some(Algo::Sha256.hasher()));
        let mut body = futures_util::stream::iter(chunks);
        let no_limit = |_| Ok::<(), super::StoreError>(());
        let ((file, hasher), taken) = pump(&mut body, sink, 256 << 10, no_limit)
            .await
            .expect("pumped");
        assert_eq!(taken, data.len() as u64);
        let want = hex::encode(sha2::Sha256::digest(&data));
        assert_eq!(hasher.expect("a hasher").finish_hex(), want);
        use std::io::{Read, Seek};
        let mut written = Vec::new();
        (&*file).rewind().expect("rewind");
        (&*file).read_to_end(&mut written).expect("read back");
        assert!(written == data, "the file differs from the body");
    }

    /// The sizes of the chunks a download of `data` is sent in, checking their bytes.
    async fn chunk_sizes(data: &[u8]) -> Vec<usize> {
        use futures_util::StreamExt as _;
        use std::io::Write as _;
        let mut file = tempfile::tempfile().expect("temp file");
        file.write_all(data).expect("written");
        let reader = super::BlobReader {
            file,
            len: data.len() as u64,
            modified: std::time::SystemTime::UNIX_EPOCH,
            digest: None,
            resolved: std::path::PathBuf::new(),
            content: None,
        };
        let mut stream = std::pin::pin!(reader.into_stream(None, 256 << 10));
        let (mut sizes, mut sent) = (Vec::new(), Vec::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.expect("read");
            sizes.push(chunk.len());
            sent.extend_from_slice(&chunk);
        }
        assert!(sent == data, "the bytes sent are the file's");
        sizes
    }

    /// A long download grows its chunks to 4 MiB while the budget of large steps has room,
    /// stays at 1 MiB when it has none, and gives its share back when it ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_download_grows_its_chunks_within_the_budget() {
        use super::super::pool::large_batches;
        const MIB: usize = 1 << 20;
        let _budget = BUDGET.lock().await;
        let data: Vec<u8> = (0..(13 * MIB + 7) as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let sizes = chunk_sizes(&data).await;
        assert_eq!(
            sizes[..6],
            [MIB / 4, MIB / 2, MIB, 2 * MIB, 4 * MIB, 4 * MIB],
            "{sizes:?}"
        );
        // With the budget taken (by others; here, by the test), chunks stop at 1 MiB.
        let mut taken = Vec::new();
        while let Some(share) = large_batches() {
            taken.push(share);
        }
        let sizes = chunk_sizes(&data).await;
        assert!(sizes.iter().all(|&n| n <= MIB), "{sizes:?}");
        drop(taken.pop());
        let sizes = chunk_sizes(&data).await;
        assert!(sizes.contains(&(4 * MIB)), "{sizes:?}");
        // ... and the download gave its share back when it ended.
        assert!(large_batches().is_some(), "the share came back");
    }
}
