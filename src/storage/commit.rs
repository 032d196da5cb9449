//! Group commit of artifact links into a format. Every link rewrites the format's whole
//! `.digests`, so concurrent uploads into one format would each parse and write it in turn.
//! Instead, links to the same format queue up; the first thread to arrive becomes the leader,
//! and applies all queued links under one `flock` with a single `.digests` rewrite, while the
//! others wait for their own result. Ordering is kept: links are applied in arrival order, so
//! the file on disk and its `.digests` entry always agree.

use super::files::{
    self, At, DirLock, Replace, create_flag, exists, read_json_map, remove_dirs, remove_flag,
};
use super::quota::file_len;
use super::{Repo, StoreError};
use crate::model::{Digest, FormatRef, RelPath};
use crate::pyjson;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// Link `blob` to `{format}/{rel}` and record `digest` for it.
pub(crate) struct LinkRequest {
    pub rel: RelPath,
    pub blob: PathBuf,
    pub digest: Digest,
}

#[derive(Default)]
struct Slot {
    result: Mutex<Option<Result<(), StoreError>>>,
    ready: Condvar,
}

impl Slot {
    fn set(&self, r: Result<(), StoreError>) {
        *self.result.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<(), StoreError> {
        let mut guard = self.result.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(r) = guard.take() {
                return r;
            }
            guard = self
                .ready
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[derive(Default)]
struct Pending {
    ops: Vec<(LinkRequest, Arc<Slot>)>,
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

/// A parsed `.digests` and the identity of the file it was parsed from.
type CachedDigests = (FileId, Map<String, Value>);

/// Links waiting to be applied, per format directory.
#[derive(Default)]
pub(crate) struct LinkQueue {
    formats: Mutex<HashMap<PathBuf, Pending>>,
    digests: Mutex<HashMap<PathBuf, CachedDigests>>,
}

impl LinkQueue {
    /// The format's `.digests`, from the cache when the file has not changed since.
    fn load(&self, fdir: &Path, path: &Path) -> Map<String, Value> {
        let cached = self
            .digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(fdir);
        match (cached, file_id(path)) {
            (Some((id, map)), Some(now)) if id == now => map,
            _ => read_json_map(path),
        }
    }

    /// Drops every cached map: called when this process deletes trees or rewrites
    /// `.digests` outside the link path, so that a reused inode number can never match.
    pub(crate) fn forget_all(&self) {
        self.digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn keep(&self, fdir: &Path, path: &Path, map: Map<String, Value>) {
        let Some(id) = file_id(path) else { return };
        let mut cache = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= CACHED_FORMATS {
            cache.clear();
        }
        cache.insert(fdir.to_path_buf(), (id, map));
    }
}

impl Repo {
    /// Applies `req` to the format at `fdir` (created by the caller), possibly together with
    /// other threads' links, and returns this link's own result.
    pub(crate) fn commit_link(
        &self,
        f: &FormatRef,
        fdir: &Path,
        req: LinkRequest,
    ) -> Result<(), StoreError> {
        let slot = Arc::new(Slot::default());
        let lead = {
            let mut map = self
                .links
                .formats
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let pending = map.entry(fdir.to_path_buf()).or_default();
            pending.ops.push((req, Arc::clone(&slot)));
            !std::mem::replace(&mut pending.leader, true)
        };
        if lead {
            loop {
                let batch = {
                    let mut map = self
                        .links
                        .formats
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    match map.get_mut(fdir) {
                        Some(p) if !p.ops.is_empty() => std::mem::take(&mut p.ops),
                        _ => {
                            map.remove(fdir);
                            break;
                        }
                    }
                };
                self.apply_batch(f, fdir, batch);
            }
        }
        slot.wait()
    }

    fn apply_batch(&self, f: &FormatRef, fdir: &Path, batch: Vec<(LinkRequest, Arc<Slot>)>) {
        let outcome = (|| -> Result<Vec<Result<(), StoreError>>, StoreError> {
            let FormatRef::Job { job, .. } = f else {
                return Err(StoreError::bad("Uploading products is not supported"));
            };
            // Shared with other commits and post-processing, exclusive with locking the job:
            // a job is never locked while one of its formats takes files (see `lock_job`).
            let _job = DirLock::shared(&self.job_dir(job))?;
            // A lock that landed while the bodies streamed refuses them now.
            self.check_committable(f)?;
            // Made under the job's lock, so locking never meets a format without `.digests`;
            // and taken away again if nothing lands in it, for the same reason.
            let new_format = files::make_dirs(fdir).at("create", fdir)?;
            let _lock = DirLock::acquire(fdir)?;
            let dirty = fdir.join(".dirty");
            let was_dirty = exists(&dirty);
            // spec/API.md §5.1 step 7: a write that changed nothing puts the flag back.
            let unflag = || {
                if !was_dirty {
                    let _ = remove_flag(&dirty);
                }
                remove_dirs(&new_format);
            };
            if let Err(e) = create_flag(&dirty) {
                unflag();
                return Err(StoreError::at("create", &dirty, e));
            }
            let mut tx = match Replace::new(&self.uploads_dir()) {
                Ok(tx) => tx,
                Err(e) => {
                    unflag();
                    return Err(e);
                }
            };
            let digests_path = fdir.join(".digests");
            let mut digests = self.links.load(fdir, &digests_path);
            let mut usage = match self.usage(&job.tag.branch.scope) {
                Ok(u) => u,
                Err(e) => {
                    unflag();
                    return Err(e);
                }
            };
            // Each link is charged for its file and for the entry it adds to `.digests`
            // (spec/API.md Q40), from the file's length now as this server writes it.
            let on_disk = file_len(&digests_path);
            let mut listed = on_disk;
            let mut made = Vec::new();
            let mut results = Vec::with_capacity(batch.len());
            for (req, _) in &batch {
                let rel = req.rel.as_str();
                let digest = req.digest.to_string();
                let mut charged = None;
                if let Some(usage) = usage.as_mut() {
                    // spec/LAYOUT.md §6.4: a replaced file gives its bytes back first.
                    let old = file_len(&fdir.join(rel)) + listed;
                    let grown = digests_len_with(&digests, listed, rel, &digest);
                    let new = match fs::metadata(&req.blob) {
                        Ok(m) => m.len() + grown,
                        Err(e) => {
                            results.push(Err(StoreError::at("stat", &req.blob, e)));
                            continue;
                        }
                    };
                    if let Err(e) = usage.charge(old, new) {
                        results.push(Err(e));
                        continue;
                    }
                    charged = Some((old, new, grown));
                }
                let staged = self.stage_link(&mut tx, &mut made, fdir, &req.rel, &req.blob);
                match (&staged, charged, usage.as_mut()) {
                    (Ok(()), Some((_, _, grown)), _) => listed = grown,
                    // Nothing will change on disk: nothing to count.
                    (Err(_), Some((old, new, _)), Some(u)) => u.adjust(new, old),
                    _ => {}
                }
                if staged.is_ok() {
                    digests.insert(rel.to_owned(), digest.into());
                }
                results.push(staged);
            }
            if !results.iter().any(Result::is_ok) {
                remove_dirs(&made);
                unflag();
                return Ok(results);
            }
            // The links, the new `.digests` and the user's new count go in together or not
            // at all: an overwrite on a full disk keeps the old file AND its old digest.
            let text = pyjson::object_to_string_sorted(&digests);
            let committed = (|| {
                tx.write(&digests_path, text.as_bytes())?;
                if let Some(u) = usage.as_mut() {
                    // The real length settles any difference from the projection (a file
                    // written in another style than ours, say).
                    u.adjust(listed, text.len() as u64);
                    u.stage(&mut tx)?;
                }
                tx.commit()
            })();
            if let Err(e) = committed {
                remove_dirs(&made);
                unflag();
                for r in results.iter_mut().filter(|r| r.is_ok()) {
                    *r = Err(replicate(&e));
                }
                return Ok(results);
            }
            self.links.keep(fdir, &digests_path, digests);
            Ok(results)
        })();
        match outcome {
            Ok(results) => {
                for ((_, slot), r) in batch.iter().zip(results) {
                    slot.set(r);
                }
            }
            Err(e) => {
                for (_, slot) in &batch {
                    slot.set(Err(replicate(&e)));
                }
            }
        }
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
        if let Some(parent) = target.parent() {
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
        StoreError::BadRequest(why) => StoreError::BadRequest(why.clone()),
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
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::Scope;
    use crate::storage::fixture::{self, TestRepo};
    use std::time::Duration;

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).expect("a valid path")
    }

    /// Links queued for `fdir`, and whether a leader is applying a batch there.
    fn queued(repo: &Repo, fdir: &Path) -> Option<(usize, bool)> {
        let map = repo.links.formats.lock().expect("queue");
        map.get(fdir).map(|p| (p.ops.len(), p.leader))
    }

    fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..2000 {
            if done() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("timed out waiting for {what}");
    }

    /// Runs `first`, and once its leader holds it in `apply_batch` (blocked on the job's
    /// lock, which the test holds), queues `rest` behind it: they then land as one batch.
    /// Returns every link's own result, `first`'s first.
    fn one_batch_behind(
        repo: &Repo,
        f: &FormatRef,
        first: LinkRequest,
        rest: Vec<LinkRequest>,
    ) -> Vec<Result<(), StoreError>> {
        let FormatRef::Job { job, .. } = f else {
            unreachable!("job formats only")
        };
        let fdir = repo.format_dir(f);
        let held = DirLock::acquire(&repo.job_dir(job)).expect("job lock");
        let n = rest.len();
        std::thread::scope(|scope| {
            let lead = scope.spawn(|| repo.commit_link(f, &fdir, first));
            wait_for("the leader", || queued(repo, &fdir) == Some((0, true)));
            let others: Vec<_> = rest
                .into_iter()
                .map(|req| scope.spawn(|| repo.commit_link(f, &fdir, req)))
                .collect();
            wait_for("the batch", || queued(repo, &fdir) == Some((n, true)));
            drop(held);
            std::iter::once(lead)
                .chain(others)
                .map(|t| t.join().expect("no panic"))
                .collect()
        })
    }

    fn request(repo: &TestRepo, path: &str, data: &[u8]) -> LinkRequest {
        let (blob, digest) = repo.blob(data);
        LinkRequest {
            rel: rel(path),
            blob,
            digest,
        }
    }

    #[test]
    fn a_batch_of_writers_lands_whole_with_every_digest_listed() {
        let repo = TestRepo::new();
        let job = fixture::job(Scope::Root, "b", "t", "j");
        let f = fixture::format(&job, "f");
        repo.ensure_job(&job).expect("job");
        let rest = (1..6)
            .map(|i| request(&repo, &format!("dir/{i}"), format!("data {i}").as_bytes()))
            .collect();
        let results = one_batch_behind(&repo, &f, request(&repo, "first", b"first"), rest);
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        let fdir = repo.format_dir(&f);
        let digests = read_json_map(&fdir.join(".digests"));
        let mut names: Vec<_> = digests.keys().cloned().collect();
        names.sort();
        assert_eq!(
            names,
            ["dir/1", "dir/2", "dir/3", "dir/4", "dir/5", "first"]
        );
        for (name, digest) in &digests {
            let data = fs::read(fdir.join(name)).expect("linked file");
            let (blob, want) = repo.blob(&data);
            assert_eq!(digest.as_str(), Some(want.to_string().as_str()), "{name}");
            let (a, b) = (fs::metadata(fdir.join(name)), fs::metadata(blob));
            assert!(
                files::same_inode(&a.expect("file"), &b.expect("blob")),
                "{name}"
            );
        }
        assert!(fdir.join(".dirty").exists());
        assert!(queued(&repo, &fdir).is_none(), "the queue is left empty");
    }

    #[test]
    fn one_failed_link_in_a_batch_loses_none_of_the_others() {
        let repo = TestRepo::new();
        let job = fixture::job(Scope::Root, "b", "t", "j");
        let f = fixture::format(&job, "f");
        repo.ensure_job(&job).expect("job");
        let fdir = repo.format_dir(&f);
        repo.commit_link(&f, &fdir, request(&repo, "d/x", b"x"))
            .expect("first link");
        // `d` is a directory now: a file cannot take its name.
        let rest = vec![
            request(&repo, "a", b"a"),
            request(&repo, "d", b"in the way"),
            request(&repo, "z", b"z"),
        ];
        let results = one_batch_behind(&repo, &f, request(&repo, "0", b"0"), rest);
        let failed: Vec<_> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, false, true, false], "{results:?}");
        assert!(
            matches!(&results[2], Err(StoreError::BadRequest(why)) if why.contains("in the way")),
            "{results:?}"
        );
        let digests = read_json_map(&fdir.join(".digests"));
        let mut names: Vec<_> = digests.keys().cloned().collect();
        names.sort();
        assert_eq!(names, ["0", "a", "d/x", "z"]);
        assert_eq!(fs::read(fdir.join("d/x")).expect("kept"), b"x");
    }

    #[test]
    fn a_batch_over_the_quota_refuses_only_the_links_that_do_not_fit() {
        let repo = TestRepo::with(Config {
            user_quota: 600,
            ..Config::default()
        });
        let job = fixture::job(Scope::User(fixture::name("u")), "b", "t", "j");
        let f = fixture::format(&job, "f");
        repo.ensure_job(&job).expect("job");
        let rest = vec![
            request(&repo, "big", &[b'b'; 1000]),
            request(&repo, "small", b"small"),
        ];
        let results = one_batch_behind(&repo, &f, request(&repo, "first", b"first"), rest);
        let failed: Vec<_> = results.iter().map(Result::is_err).collect();
        assert_eq!(failed, [false, true, false], "{results:?}");
        assert!(
            matches!(&results[1], Err(StoreError::BadRequest(why)) if why.contains("quota exceeded")),
            "{results:?}"
        );
        let fdir = repo.format_dir(&f);
        assert!(!fdir.join("big").exists());
        // What is recorded is what is on disk, `.disk_usage` included.
        let scope = Scope::User(fixture::name("u"));
        assert_eq!(
            repo.recount_usage(&scope, false).expect("recount"),
            Some((repo.recorded_usage(&scope), repo.recorded_usage(&scope)))
        );
        assert!(repo.recorded_usage(&scope) < 600);
    }

    #[test]
    fn a_batch_for_a_job_locked_meanwhile_fails_whole_and_leaves_nothing() {
        let repo = TestRepo::new();
        let job = fixture::job(Scope::Root, "b", "t", "j");
        let f = fixture::format(&job, "f");
        repo.ensure_job(&job).expect("job");
        let fdir = repo.format_dir(&f);
        fs::write(repo.job_dir(&job).join(".locked"), b"").expect("lock the job");
        let rest = vec![request(&repo, "a", b"a"), request(&repo, "b", b"b")];
        let results = one_batch_behind(&repo, &f, request(&repo, "0", b"0"), rest);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(StoreError::Conflict(_)))),
            "{results:?}"
        );
        assert!(!fdir.exists(), "no format left without its files");
    }

    #[test]
    fn digests_lengths_are_projected_exactly() {
        let keys = [
            "b",
            "a/x.tar.gz",
            "z\"quote",
            "é\u{1F600}",
            "tab\there",
            "b",
            "a/x.tar.gz",
            "m",
        ];
        let mut map = Map::new();
        let mut len = 0; // no file yet
        for (i, key) in keys.iter().enumerate() {
            let value = if i % 2 == 0 {
                format!("sha256:{}", "ab".repeat(32))
            } else {
                format!("md5:{}", "c".repeat(32))
            };
            let projected = digests_len_with(&map, len, key, &value);
            map.insert((*key).to_owned(), value.clone().into());
            let real = pyjson::object_to_string_sorted(&map).len() as u64;
            assert_eq!(projected, real, "{key}");
            if map.len() > 1 {
                assert!(projected.saturating_sub(len) <= new_entry_len(key, &value));
            }
            len = real;
        }
    }
}
