//! Group commit of artifact links into a format. Every link rewrites the format's whole
//! `.digests`, so concurrent uploads into one format would each parse and write it in turn.
//! Instead, links to the same format queue up; the first thread to arrive becomes the leader,
//! and applies all queued links under one `flock` with a single `.digests` rewrite, while the
//! others wait for their own result. Ordering is kept: links are applied in arrival order, so
//! the file on disk and its `.digests` entry always agree.

use super::digests::Digests;
use super::durable::DirSyncs;
use super::files::{self, At, DirLock, Replace, create_flag, exists, remove_dirs, remove_flag};
use super::quota::{Usage, file_len};
use super::{Repo, StoreError};
use crate::model::{Digest, FormatRef, RelPath, Scope};
use crate::pyjson;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use tokio::sync::oneshot;

/// Link `blob` to `{format}/{rel}` and record `digest` for it.
pub(crate) struct LinkRequest {
    pub rel: RelPath,
    pub blob: PathBuf,
    pub digest: Digest,
}

/// Where a link's own result goes: a channel, so that a caller on the runtime awaits it
/// without holding a thread of the blocking pool, and a caller on a thread of its own waits
/// on it there. `hold` (the blob lock of the upload that queued the link) is released once the
/// link is applied, so the orphan collector cannot take the blob while the link waits.
struct Reply {
    tx: oneshot::Sender<Result<(), StoreError>>,
    hold: Option<DirLock>,
}

impl Reply {
    fn set(self, r: Result<(), StoreError>) {
        // A caller that went away (its request dropped) no longer wants the result.
        let _ = self.tx.send(r);
        drop(self.hold);
    }
}

/// A link queued by [`Repo::queue_link`]: its result, once its batch is applied.
pub(crate) struct Linked(oneshot::Receiver<Result<(), StoreError>>);

impl Linked {
    /// Waits on the runtime, holding no thread.
    pub(crate) async fn wait(self) -> Result<(), StoreError> {
        self.0.await.unwrap_or_else(|_| Err(abandoned()))
    }

    /// Waits on the calling thread (never one of the runtime's workers).
    pub(crate) fn wait_blocking(self) -> Result<(), StoreError> {
        self.0.blocking_recv().unwrap_or_else(|_| Err(abandoned()))
    }
}

/// A batch that ended without answering (its leader panicked).
fn abandoned() -> StoreError {
    StoreError::Io(std::io::Error::other("the group commit stopped"))
}

/// A batch applied, each link with its result, and the directories to flush before any of
/// them is answered.
struct Landed {
    replies: Vec<(Reply, Result<(), StoreError>)>,
    dirs: DirSyncs,
}

impl Landed {
    /// Flushes the batch's directories, so that its names are on disk before any of its
    /// uploads is acknowledged, then answers each link.
    fn finish(self, fdir: &Path) {
        let synced = self
            .dirs
            .sync()
            .map_err(|e| StoreError::at("sync", fdir, e));
        for (reply, r) in self.replies {
            let r = match (&synced, r) {
                (Err(e), Ok(())) => Err(replicate(e)),
                (_, r) => r,
            };
            reply.set(r);
        }
    }
}

#[derive(Default)]
struct Pending {
    ops: Vec<(LinkRequest, Reply)>,
    leader: bool,
}

/// Identity of a `.digests` file as last written: any rewrite (ours go through rename, so a
/// new inode) or in-place edit changes it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(path).ok()?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Some(FileId {
        dev: m.dev(),
        ino: m.ino(),
        size: m.len(),
        mtime_ns: ns(m.mtime(), m.mtime_nsec()),
        ctime_ns: ns(m.ctime(), m.ctime_nsec()),
    })
}

/// Parsed `.digests` of recently written formats, so a burst of uploads into one big format
/// does not re-parse it for every batch. Checked against the file's identity before use.
const CACHED_FORMATS: usize = 32;

/// A parsed `.digests`, the identity of the file it was written as, and its text.
type CachedDigests = (FileId, Digests, String);

/// Links waiting to be applied, per format directory.
#[derive(Default)]
pub(crate) struct LinkQueue {
    formats: Mutex<HashMap<PathBuf, Pending>>,
    digests: Mutex<HashMap<PathBuf, CachedDigests>>,
}

impl LinkQueue {
    /// The format's `.digests`, from the cache when the file has not changed since.
    ///
    /// The identity alone is not proof: another process's rewrite can get the same inode
    /// number back (the rename frees it, the next create takes it) with the same size, and
    /// on kernels before 6.13 the same times within a timer tick. So the file is read and
    /// compared with what was written: a read and a compare instead of a parse.
    fn load(&self, fdir: &Path, path: &Path) -> Result<Digests, StoreError> {
        let cached = self
            .digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(fdir);
        if let (Some((id, digests, text)), Some(now)) = (cached, file_id(path))
            && id == now
            && files::retry_stale(|| fs::read(path)).is_ok_and(|bytes| bytes == text.as_bytes())
        {
            return Ok(digests);
        }
        files::read_json_map_to_update(path).map(Digests::new)
    }

    /// Drops every cached map: called when this process deletes trees or rewrites
    /// `.digests` outside the link path, so that a reused inode number can never match.
    pub(crate) fn forget_all(&self) {
        self.digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn keep(&self, fdir: &Path, path: &Path, digests: Digests, text: String) {
        let Some(id) = file_id(path) else { return };
        let mut cache = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_FORMATS {
            cache.clear();
        }
        cache.insert(fdir.to_path_buf(), (id, digests, text));
    }
}

/// A batch's links as staged so far, and what they will change.
struct Staging {
    tx: Replace,
    /// The user's count, locked, when the format is in a user repository.
    usage: Option<Usage>,
    digests: Digests,
    /// The length `.digests` will have with the links staged so far.
    listed: u64,
    /// Directories made for the links, removed again if the batch does not land.
    made: Vec<PathBuf>,
}

impl Repo {
    /// Applies `req` to the format at `fdir` (created by the caller), possibly together with
    /// other threads' links, and returns this link's own result.
    #[cfg(test)]
    pub(crate) fn commit_link(
        &self,
        f: &FormatRef,
        fdir: &Path,
        req: LinkRequest,
    ) -> Result<(), StoreError> {
        self.queue_link(f, fdir, req, None).wait_blocking()
    }

    /// Queues `req` for the format at `fdir`. The first caller to find no batch running
    /// becomes the leader: it applies batch after batch, the links queued meanwhile
    /// included, until the queue is empty, and returns with its own result ready. Any
    /// other caller returns at once, and its thread is free while it waits on [`Linked`].
    /// `hold` is released once the link is applied.
    pub(crate) fn queue_link(
        &self,
        f: &FormatRef,
        fdir: &Path,
        req: LinkRequest,
        hold: Option<DirLock>,
    ) -> Linked {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut map = self
                .links
                .formats
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let pending = map.entry(fdir.to_path_buf()).or_default();
            pending.ops.push((req, Reply { tx, hold }));
            !std::mem::replace(&mut pending.leader, true)
        };
        if lead {
            while let Some(batch) = self.next_batch(fdir) {
                let landed = self.apply_batch(f, fdir, batch);
                // With nothing queued behind it, the next upload to come leads its own
                // batch while this one's directories flush.
                let last = self.release_if_idle(fdir);
                landed.finish(fdir);
                if last {
                    break;
                }
            }
        }
        Linked(rx)
    }

    /// The links queued for `fdir`; `None` (and the leader gone) when there are none.
    fn next_batch(&self, fdir: &Path) -> Option<Vec<(LinkRequest, Reply)>> {
        let mut map = self
            .links
            .formats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(fdir) {
            Some(p) if !p.ops.is_empty() => Some(std::mem::take(&mut p.ops)),
            _ => {
                map.remove(fdir);
                None
            }
        }
    }

    /// Ends the leader's turn when nothing is queued for `fdir`.
    fn release_if_idle(&self, fdir: &Path) -> bool {
        let mut map = self
            .links
            .formats
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let idle = map.get(fdir).is_none_or(|p| p.ops.is_empty());
        if idle {
            map.remove(fdir);
        }
        idle
    }

    fn apply_batch(&self, f: &FormatRef, fdir: &Path, batch: Vec<(LinkRequest, Reply)>) -> Landed {
        let (requests, replies): (Vec<LinkRequest>, Vec<Reply>) = batch.into_iter().unzip();
        let refs: Vec<&LinkRequest> = requests.iter().collect();
        match self.link_batch(f, fdir, &refs) {
            Ok((results, dirs)) => Landed {
                replies: replies.into_iter().zip(results).collect(),
                dirs,
            },
            Err(e) => Landed {
                replies: replies
                    .into_iter()
                    .map(|reply| (reply, Err(replicate(&e))))
                    .collect(),
                dirs: DirSyncs::default(),
            },
        }
    }

    /// Links `requests` into the format at `fdir` under the job's shared lock and the
    /// format's lock, with one `.digests` rewrite: each link's own result, or the error that
    /// failed them all.
    // Left whole: the locks it takes and the undo (`unflag`) on each way out are one story,
    // and split apart the reader would have to carry it between functions.
    fn link_batch(
        &self,
        f: &FormatRef,
        fdir: &Path,
        requests: &[&LinkRequest],
    ) -> Result<(Vec<Result<(), StoreError>>, DirSyncs), StoreError> {
        let FormatRef::Job { job, .. } = f else {
            return Err(StoreError::bad("Uploading products is not supported"));
        };
        // Shared with other commits and post-processing, exclusive with locking the job:
        // a job is never locked while one of its formats takes files (see `lock_job`).
        let _job = DirLock::shared(&self.locks_dir(), &self.job_dir(job))?;
        // A lock that landed while the bodies streamed refuses them now.
        self.check_committable(f)?;
        // Made under the job's lock, so locking never meets a format without `.digests`;
        // and taken away again if nothing lands in it, for the same reason.
        let new_format = files::make_dirs(fdir).at("create", fdir)?;
        let _lock = DirLock::acquire(&self.locks_dir(), fdir)?;
        let dirty = fdir.join(".dirty");
        let was_dirty = exists(&dirty);
        // spec/API.md §5.1 step 7: a write that changed nothing puts the flag back.
        let unflag = |made: &[PathBuf]| {
            remove_dirs(made);
            if !was_dirty {
                let _ = remove_flag(&dirty);
            }
            remove_dirs(&new_format);
        };
        let digests_path = fdir.join(".digests");
        let mut st = match self.start_staging(fdir, &dirty, &digests_path, &job.tag.branch.scope) {
            Ok(st) => st,
            Err(e) => {
                unflag(&[]);
                return Err(e);
            }
        };
        let mut results: Vec<_> = requests
            .iter()
            .map(|req| self.stage_one(&mut st, fdir, req))
            .collect();
        if !results.iter().any(Result::is_ok) {
            unflag(&st.made);
            return Ok((results, DirSyncs::default()));
        }
        // The links, the new `.digests` and the user's new count go in together or not
        // at all: an overwrite on a full disk keeps the old file AND its old digest.
        let Staging {
            tx,
            mut usage,
            digests,
            listed,
            made,
        } = st;
        let text = digests.text();
        if let Err(e) = commit_staged(tx, usage.as_mut(), listed, &digests_path, &text) {
            unflag(&made);
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(replicate(&e));
            }
            return Ok((results, DirSyncs::default()));
        }
        self.links.keep(fdir, &digests_path, digests, text);
        let landed = requests.iter().zip(&results).filter(|(_, r)| r.is_ok());
        let dirs = self.changed_dirs(f, fdir, landed.map(|(req, _)| *req), &made, &new_format);
        Ok((results, dirs))
    }

    /// The directories whose entries a landed batch changed: each link's own directory and
    /// its blob's, `fdir` (`.digests`, `.dirty`), the parent of every directory made, and the
    /// user's (`.disk_usage`). A batch that made the format also flushes every directory up
    /// to the root, for the branch, tag and job directories [`Repo::ensure_job`] may have
    /// just made.
    fn changed_dirs<'a>(
        &self,
        f: &FormatRef,
        fdir: &Path,
        landed: impl Iterator<Item = &'a LinkRequest>,
        made: &[PathBuf],
        new_format: &[PathBuf],
    ) -> DirSyncs {
        let mut dirs = DirSyncs::default();
        dirs.dir(fdir);
        for req in landed {
            dirs.entry(&fdir.join(req.rel.as_str()));
            dirs.entry(&req.blob);
        }
        for d in made {
            dirs.entry(d);
        }
        if !new_format.is_empty() {
            dirs.up_to(fdir, &self.root);
        }
        if let FormatRef::Job { job, .. } = f
            && let scope @ Scope::User(_) = &job.tag.branch.scope
        {
            dirs.dir(&self.scope_dir(scope));
        }
        dirs
    }

    /// Flags the format dirty and opens what its links are staged in.
    fn start_staging(
        &self,
        fdir: &Path,
        dirty: &Path,
        digests_path: &Path,
        scope: &Scope,
    ) -> Result<Staging, StoreError> {
        create_flag(dirty).map_err(|e| StoreError::at("create", dirty, e))?;
        let tx = Replace::new(&self.uploads_dir())?;
        let digests = self.links.load(fdir, digests_path)?;
        let usage = self.usage(scope)?;
        Ok(Staging {
            tx,
            usage,
            digests,
            listed: file_len(digests_path),
            made: Vec::new(),
        })
    }

    /// Stages one link of the batch, charged to its user, and lists its digest.
    fn stage_one(
        &self,
        st: &mut Staging,
        fdir: &Path,
        req: &LinkRequest,
    ) -> Result<(), StoreError> {
        let rel = req.rel.as_str();
        let digest = req.digest.to_string();
        let mut charged = None;
        if let Some(usage) = st.usage.as_mut() {
            // Each link is charged for its file and for the entry it adds to `.digests`
            // (spec/API.md Q40), from the file's length now as this server writes it.
            // spec/LAYOUT.md §6.4: a replaced file gives its bytes back first.
            let old = file_len(&fdir.join(rel)) + st.listed;
            let grown = digests_len_with(st.digests.map(), st.listed, rel, &digest);
            let new = fs::metadata(&req.blob)
                .map_err(|e| StoreError::at("stat", &req.blob, e))?
                .len()
                + grown;
            usage.charge(old, new)?;
            charged = Some((old, new, grown));
        }
        let staged = self.stage_link(&mut st.tx, &mut st.made, fdir, &req.rel, &req.blob);
        match (&staged, charged, st.usage.as_mut()) {
            (Ok(()), Some((_, _, grown)), _) => st.listed = grown,
            // Nothing will change on disk: nothing to count.
            (Err(_), Some((old, new, _)), Some(u)) => u.adjust(new, old),
            _ => {}
        }
        if staged.is_ok() {
            st.digests.insert(rel, digest.into());
        }
        staged
    }

    /// Stages `{fdir}/{rel}` becoming a hard link of the blob, making its parent
    /// directories (listed in `made`, for undoing).
    fn stage_link(
        &self,
        tx: &mut Replace,
        made: &mut Vec<PathBuf>,
        fdir: &Path,
        rel: &RelPath,
        blob: &Path,
    ) -> Result<(), StoreError> {
        let target = fdir.join(rel.as_str());
        let conflict = || StoreError::bad(format!("{rel}: a directory is in the way"));
        let mut dirs = Vec::new();
        // The format directory itself was made by the batch: no `mkdir` for files at its top.
        if let Some(parent) = target.parent().filter(|p| *p != fdir) {
            dirs = files::make_dirs(parent).map_err(|e| match e.raw_os_error() {
                // A file where a directory of the path should be.
                Some(nix::libc::EEXIST | nix::libc::ENOTDIR) => conflict(),
                _ => StoreError::at("create", parent, e),
            })?;
        }
        let staged = if target.is_dir() {
            Err(conflict())
        } else {
            tx.link(blob, &target)
        };
        match staged {
            Ok(()) => made.extend(dirs),
            Err(_) => remove_dirs(&dirs),
        }
        staged
    }
}

/// Writes `.digests` as `text` and the user's new count, and lands every link staged in
/// `tx` with them, in one step. `listed` is the length `.digests` was projected to have.
fn commit_staged(
    mut tx: Replace,
    usage: Option<&mut Usage>,
    listed: u64,
    digests_path: &Path,
    text: &str,
) -> Result<(), StoreError> {
    tx.write(digests_path, text.as_bytes())?;
    if let Some(u) = usage {
        // The real length settles any difference from the projection (a file written in
        // another style than ours, say).
        u.adjust(listed, text.len() as u64);
        u.stage(&mut tx)?;
    }
    tx.commit()
}

/// The length of a `.digests` file of `len` bytes holding `map` once `key` maps to `value`,
/// as [`pyjson::object_to_string_sorted`] writes it: `{"k": "v", "k2": "v2"}`.
pub(crate) fn digests_len_with(map: &Map<String, Value>, len: u64, key: &str, value: &str) -> u64 {
    let value_len = json_str_len(value);
    match map.get(key) {
        Some(old) => len
            .saturating_sub(pyjson::to_string(old).len() as u64)
            .saturating_add(value_len),
        // `{` and `}` around the first entry take what `, ` takes before any other.
        None if map.is_empty() => new_entry_len(key, value),
        None => len + new_entry_len(key, value),
    }
}

/// What adding an entry to a non-empty `.digests` adds: `, "key": "value"`. An upper bound
/// for any `.digests` change one link makes.
pub(crate) fn new_entry_len(key: &str, value: &str) -> u64 {
    2 + json_str_len(key) + 2 + json_str_len(value)
}

fn json_str_len(s: &str) -> u64 {
    pyjson::to_string(&Value::String(s.to_owned())).len() as u64
}

/// The same failure for every link of a failed batch.
fn replicate(e: &StoreError) -> StoreError {
    match e {
        StoreError::NotFound => StoreError::NotFound,
        StoreError::Refused(why) => StoreError::Refused(why.clone()),
        StoreError::Conflict(why) => StoreError::Conflict(why.clone()),
        StoreError::NoSpace(why) => StoreError::NoSpace(why.clone()),
        // The errno decides the answer (ENAMETOOLONG is a 400, say): keep it.
        StoreError::Io(io) => StoreError::Io(same_io(io)),
        StoreError::Fs { op, path, source } => StoreError::Fs {
            op,
            path: path.clone(),
            source: same_io(source),
        },
        other => StoreError::Io(std::io::Error::other(other.to_string())),
    }
}

fn same_io(io: &std::io::Error) -> std::io::Error {
    match io.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(io.kind(), io.to_string()),
    }
}

#[cfg(test)]
mod tests;
