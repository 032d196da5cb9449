//! Cleanup and garbage collection (spec/LAYOUT.md §6): per-branch tag cleanup policies, user
//! quota refresh, and removal of orphan blobs and stale uploads. One worker runs them;
//! requests made while a run is going on merge into a single follow-up run.
//!
//! The orphan collector and uploads never race: an upload touches an existing blob (or
//! creates it) and links it while holding a shared `flock` on `.blobs/`, and the collector
//! re-checks and unlinks each candidate under the exclusive lock. A blob is only removed when
//! it has no other link and has not been touched for `DLREPO_ORPHAN_BLOB_LIFETIME`.
//!
//! In `.uploads/`, whatever a request is working on is leased (see `files.rs`), and the
//! collector removes only what it can claim; entries are also kept for at least
//! [`UPLOADS_MIN_AGE`], for the requests to come of a registry push. Neither depends on the
//! lifetime setting: a lifetime of 0 is safe.

use super::files::{self, Claim, DirLock, exists, sort_time, stamp_time};
use super::layout::Scan;
use super::{Repo, StoreError};
use crate::model::{BranchRef, Digest, Scope, TagRef};
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How long an entry of `.uploads/` is kept after its last change at least, whatever
/// `DLREPO_ORPHAN_BLOB_LIFETIME` says. Leases cover what a request is using; this covers
/// what a client will use in its next requests: a registry upload session between two
/// chunks, a layer waiting for its manifest. (dlrepo's default lifetime.)
pub(crate) const UPLOADS_MIN_AGE: Duration = Duration::from_secs(600);

/// What a run should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GcKind {
    /// Orphan blobs and stale uploads only (after a delete).
    Orphans,
    /// Tag cleanup, quota refresh, then orphans (timer, SIGUSR1, `arbor gc`).
    Full,
}

/// Pending work for the single worker.
#[derive(Default)]
pub(crate) struct GcQueue {
    pending: Mutex<Option<GcKind>>,
    wake: tokio::sync::Notify,
}

/// Un-publishes a released tag before cleanup deletes it (spec/LAYOUT.md §6.2). The storage
/// layer does not know about other servers: the caller passes this in when publishing is
/// configured, and `None` skips the step (spec/API.md Q29).
pub type Unpublish<'a> = Option<&'a (dyn Fn(&TagRef) -> Result<(), String> + Sync)>;

/// What a run removed (or, in a dry run, would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    pub tags: Vec<String>,
    /// Released tags over the limit that were kept because un-publishing them failed, with
    /// the reason. The next run tries again.
    pub kept: Vec<(String, String)>,
    pub blobs: u64,
    pub uploads: u64,
    pub bytes: u64,
    pub users: u64,
    /// Orphan blobs left alone because they changed within `DLREPO_ORPHAN_BLOB_LIFETIME`
    /// (an upload may be about to link them), and their bytes. A later run takes them.
    pub young: u64,
    pub young_bytes: u64,
    /// Lock files of directories that are gone (`.locks/`, see `locks::prune`).
    pub locks: u64,
}

impl Repo {
    /// Asks the worker for a run; merges with any pending request (the fuller one wins).
    pub fn request_gc(&self, kind: GcKind) {
        let mut pending = self
            .gc
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *pending = Some(pending.map_or(kind, |k| k.max(kind)));
        self.gc.wake.notify_one();
    }

    /// Waits for a request and takes it (the worker's side).
    pub async fn next_gc_request(&self) -> GcKind {
        loop {
            if let Some(kind) = self
                .gc
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
            {
                return kind;
            }
            self.gc.wake.notified().await;
        }
    }

    /// One run. `dry_run` only reports (and un-publishes nothing).
    pub fn run_gc(
        &self,
        kind: GcKind,
        dry_run: bool,
        unpublish: Unpublish,
    ) -> Result<GcReport, StoreError> {
        let mut report = GcReport::default();
        // In a dry run the tags stay, so the blobs only they use are counted apart.
        let mut doomed = Vec::new();
        if kind == GcKind::Full {
            self.cleanup_tags(dry_run, unpublish, &mut report, &mut doomed)?;
            if !dry_run {
                report.users = self.refresh_quotas()?;
            }
        }
        self.collect_orphans(dry_run, &doomed, &mut report)?;
        if kind == GcKind::Full {
            report.locks = super::locks::prune(&self.root, &self.locks_dir(), dry_run)?;
        }
        tracing::info!(
            tags = report.tags.len(),
            blobs = report.blobs,
            uploads = report.uploads,
            bytes = report.bytes,
            young = report.young,
            locks = report.locks,
            dry_run,
            "cleanup done"
        );
        Ok(report)
    }

    /// Whether an entry of `.uploads/` is old enough to be a leftover, as of `now`.
    pub(crate) fn uploads_old(&self, now: SystemTime) -> impl Fn(&fs::Metadata) -> bool {
        let lifetime = Duration::from_secs(self.orphan_lifetime).max(UPLOADS_MIN_AGE);
        move |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= lifetime)
        }
    }

    /// The shared side of the blob lock, held by uploads from touching a blob to linking it.
    pub(crate) fn blob_guard(&self) -> Result<DirLock, StoreError> {
        let dir = self.root.join(".blobs");
        super::files::create_dirs(&dir)?;
        DirLock::shared(&self.locks_dir(), &dir)
    }

    fn cleanup_tags(
        &self,
        dry_run: bool,
        unpublish: Unpublish,
        report: &mut GcReport,
        doomed: &mut Vec<PathBuf>,
    ) -> Result<(), StoreError> {
        // spec/LAYOUT.md §6.2: the root repository only; user repositories are not cleaned.
        for branch in Repo::list_entities(&self.branches_dir(&Scope::Root))? {
            let b = BranchRef {
                scope: Scope::Root,
                branch,
            };
            for (t, is_released) in self.tags_over_limits(&b)? {
                let name = format!("{}/{}", t.branch.branch, t.tag);
                tracing::info!(tag = %name, dry_run, "cleanup: deleting tag");
                if dry_run {
                    report.tags.push(name);
                    doomed.push(self.tag_dir(&t));
                    continue;
                }
                // dlrepo aborts the whole pass when un-publishing fails. Keeping just that
                // tag is safer: deleting it would strand its copies on the other servers
                // with nothing left here to retract them.
                if is_released
                    && let Some(unpublish) = unpublish
                    && let Err(e) = unpublish(&t)
                {
                    tracing::error!(tag = %name, error = %e, "cleanup: kept, unpublish failed");
                    report.kept.push((name, e));
                    continue;
                }
                match self.delete_tag_for_cleanup(&t) {
                    Ok(()) => report.tags.push(name),
                    // Another process sharing the root cleaned it up first.
                    Err(StoreError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// The tags of `b` its cleanup policy no longer keeps, the daily ones first, each with
    /// whether it is released. Locked tags are neither counted nor returned.
    fn tags_over_limits(&self, b: &BranchRef) -> Result<Vec<(TagRef, bool)>, StoreError> {
        let bdir = self.branch_dir(b);
        let policy = super::files::read_json_map(&bdir.join(".cleanup_policy"));
        let limit = |key: &str| {
            policy
                .get(key)
                .filter(|v| !v.is_boolean())
                .and_then(serde_json::Value::as_u64)
                .filter(|n| *n > 0)
        };
        let (mut released, mut daily) = (Vec::new(), Vec::new());
        for tag in Scan::read(&bdir)?.entities {
            let t = TagRef {
                branch: b.clone(),
                tag,
            };
            let tdir = self.tag_dir(&t);
            if exists(&tdir.join(".locked")) {
                continue;
            }
            let age = sort_time(stamp_time(&tdir));
            if exists(&tdir.join(".released")) {
                released.push((age, t));
            } else {
                daily.push((age, t));
            }
        }
        let mut over = Vec::new();
        for (mut list, key, is_released) in [
            (daily, "max_daily_tags", false),
            (released, "max_released_tags", true),
        ] {
            let Some(keep) = limit(key) else { continue };
            // Newest first; stable over name order for equal times.
            list.sort_by(|a, b| b.0.total_cmp(&a.0));
            let keep = usize::try_from(keep).unwrap_or(usize::MAX);
            over.extend(list.into_iter().skip(keep).map(|(_, t)| (t, is_released)));
        }
        Ok(over)
    }

    /// Recomputes every user's `.disk_usage` from what is on disk (dot-files included).
    pub(crate) fn refresh_quotas(&self) -> Result<u64, StoreError> {
        let users = self.root.join("users");
        let mut count = 0;
        for user in Repo::list_entities(&users)? {
            if self.recount_usage(&Scope::User(user), true)?.is_some() {
                count += 1;
            }
        }
        Ok(count)
    }

    fn collect_orphans(
        &self,
        dry_run: bool,
        doomed: &[PathBuf],
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        let lifetime = Duration::from_secs(self.orphan_lifetime);
        let now = SystemTime::now();
        let old = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= lifetime)
        };
        self.orphans_after_deleting(doomed, &old, report);
        self.collect_blobs(dry_run, &old, report)?;
        self.collect_uploads(dry_run, now, report)
    }

    /// Blobs with no link but their own, older than the lifetime; younger ones are counted
    /// as kept.
    fn collect_blobs(
        &self,
        dry_run: bool,
        old: &dyn Fn(&fs::Metadata) -> bool,
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        // spec/API.md Q30: both folders, whichever exists.
        let blobs = self.root.join(".blobs");
        if !blobs.is_dir() {
            return Ok(());
        }
        let mut candidates = Vec::new();
        let walk = walkdir::WalkDir::new(&blobs).min_depth(3).into_iter();
        for e in walk
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            match e.metadata() {
                Ok(m) if m.nlink() == 1 && old(&m) => candidates.push(e.into_path()),
                Ok(m) if m.nlink() == 1 => {
                    report.young += 1;
                    report.young_bytes += m.len();
                }
                _ => {}
            }
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let _exclusive = DirLock::acquire(&self.locks_dir(), &blobs)?;
        for path in candidates {
            // Re-checked under the lock: an upload may have touched or linked it.
            let Ok(m) = fs::metadata(&path) else { continue };
            if m.nlink() != 1 || !old(&m) {
                continue;
            }
            self.test_hooks.pause_gc();
            if !dry_run {
                fs::remove_file(&path)?;
            }
            report.blobs += 1;
            report.bytes += m.len();
        }
        Ok(())
    }

    /// Temp files, scratch directories and trees left by a crash or an interrupted
    /// request, and registry sessions and pending layers nobody came back for.
    fn collect_uploads(
        &self,
        dry_run: bool,
        now: SystemTime,
        report: &mut GcReport,
    ) -> Result<(), StoreError> {
        if !dry_run {
            // A dead metadata write's record is finished, not just removed.
            self.finish_relinks();
        }
        let uploads = self.uploads_dir();
        let old = self.uploads_old(now);
        for entry in fs::read_dir(&uploads).into_iter().flatten().flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if !old(&m) || kept_by_session(&uploads, &entry.file_name(), &old) {
                continue;
            }
            let path = entry.path();
            // In use by a request, however old: not a leftover. Held while it goes.
            let Some(_claim) = Claim::take(&path) else {
                continue;
            };
            if !dry_run {
                let removed = if m.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                match removed {
                    Ok(()) => {}
                    // Another process's collector got there first.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            report.uploads += 1;
            if m.is_file() && m.nlink() == 1 {
                report.bytes += m.len();
            }
        }
        Ok(())
    }

    /// Counts into `report` the blobs that deleting the tag dirs `tags` would leave with no
    /// link but their own: blobs whose every other link is a listed file of those tags, as
    /// removed when old and as kept when young. A link shares its blob's inode, hence its
    /// mtime, so the age test is the collector's.
    fn orphans_after_deleting(
        &self,
        tags: &[PathBuf],
        old: &dyn Fn(&fs::Metadata) -> bool,
        report: &mut GcReport,
    ) {
        let mut blobs: HashMap<(u64, u64), (u64, fs::Metadata)> = HashMap::new();
        let formats = tags.iter().flat_map(|t| {
            let jobs = Repo::list_entities(t).unwrap_or_default();
            jobs.into_iter().flat_map(move |j| {
                let jdir = t.join(j.as_str());
                let names = Repo::list_entities(&jdir).unwrap_or_default();
                names.into_iter().map(move |f| jdir.join(f.as_str()))
            })
        });
        for fdir in formats {
            for (rel, digest) in super::digests::format_digests(&fdir) {
                let Some(d) = digest.as_str().and_then(|d| Digest::parse(Some(d)).ok()) else {
                    continue;
                };
                let (Ok(file), Ok(blob)) = (
                    fs::metadata(fdir.join(&rel)),
                    fs::metadata(self.blob_path(&d)),
                ) else {
                    continue;
                };
                // Only a link of its blob counts: a copy frees nothing in `.blobs/`.
                if files::same_inode(&file, &blob) {
                    blobs.entry((blob.dev(), blob.ino())).or_insert((0, blob)).0 += 1;
                }
            }
        }
        for (_, m) in blobs.values().filter(|(links, m)| m.nlink() == links + 1) {
            if old(m) {
                report.blobs += 1;
                report.bytes += m.len();
            } else {
                report.young += 1;
                report.young_bytes += m.len();
            }
        }
    }
}

/// Whether an old entry of `.uploads/` is the sidecar of a session still in use: the owner
/// file is written once, when the session starts, but a chunked upload may go on far longer
/// than the lifetime while its session file stays fresh (or is being written right now,
/// which leases it). It goes with its session.
pub(crate) fn kept_by_session(
    uploads: &Path,
    name: &std::ffi::OsStr,
    old: &dyn Fn(&fs::Metadata) -> bool,
) -> bool {
    let Some(session) = super::registry::sidecar_session(name).map(|id| uploads.join(id)) else {
        return false;
    };
    fs::metadata(&session).is_ok_and(|m| !old(&m) || Claim::take(&session).is_none())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::model::RelPath;
    use crate::storage::fixture::{self, TestRepo};

    /// Makes `path` look `secs` seconds old.
    fn age(path: &Path, secs: u64) {
        let f = fs::File::options().write(true).open(path).expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(secs))
            .expect("set mtime");
    }

    /// Links `data` to `{branch}/{tag}/j/f/x` of the root repository; returns its blob.
    fn upload(repo: &TestRepo, branch: &str, tag: &str, data: &[u8]) -> PathBuf {
        let job = fixture::job(Scope::Root, branch, tag, "j");
        let (blob, digest) = repo.blob(data);
        let rel = RelPath::parse("x").expect("path");
        repo.link_artifact(&fixture::format(&job, "f"), &rel, &digest)
            .expect("link");
        blob
    }

    #[test]
    fn an_old_orphan_goes_and_a_young_or_linked_blob_stays() {
        let repo = TestRepo::with(Config {
            orphan_blob_lifetime: 60,
            ..Config::default()
        });
        let (orphan, _) = repo.blob(b"old orphan");
        age(&orphan, 3600);
        let (young, _) = repo.blob(b"young orphan");
        let linked = upload(&repo, "b", "t", b"linked");
        age(&linked, 3600);

        let dry = repo.run_gc(GcKind::Orphans, true, None).expect("dry run");
        assert_eq!((dry.blobs, dry.bytes), (1, 10));
        // The young one is reported as kept, the linked one not at all.
        assert_eq!((dry.young, dry.young_bytes), (1, 12));
        assert!(orphan.exists(), "a dry run removes nothing");

        let report = repo.run_gc(GcKind::Orphans, false, None).expect("run");
        assert_eq!((report.blobs, report.bytes), (1, 10));
        assert_eq!((report.young, report.young_bytes), (1, 12));
        assert!(!orphan.exists());
        assert!(young.exists(), "younger than the lifetime");
        assert!(linked.exists(), "still linked");
        let file = repo.root.join("branches/b/t/j/f/x");
        assert_eq!(fs::read(file).expect("the artifact"), b"linked");
    }

    #[test]
    fn tag_cleanup_keeps_the_newest_tags_of_each_kind_and_every_locked_one() {
        let repo = TestRepo::new();
        let tags = ["d1", "d2", "d3", "d4", "d5", "r1", "r2"];
        let mut blobs = HashMap::new();
        for (i, tag) in tags.iter().enumerate() {
            let blob = upload(&repo, "b", tag, tag.as_bytes());
            age(&blob, 3600);
            blobs.insert(*tag, blob);
            let tdir = repo.root.join("branches/b").join(tag);
            // Oldest first, an hour apart.
            age(&tdir.join(".stamp"), 3600 * (10 - i as u64));
            if tag.starts_with('r') {
                fs::write(tdir.join(".released"), b"").expect("release");
            }
        }
        fs::write(repo.root.join("branches/b/d1/.locked"), b"").expect("lock d1");
        fs::write(
            repo.root.join("branches/b/.cleanup_policy"),
            br#"{"max_daily_tags": 2, "max_released_tags": 1}"#,
        )
        .expect("policy");

        let report = repo.run_gc(GcKind::Full, false, None).expect("run");
        let mut deleted = report.tags.clone();
        deleted.sort();
        assert_eq!(deleted, ["b/d2", "b/d3", "b/r1"]);
        for tag in tags {
            let kept = !deleted.contains(&format!("b/{tag}"));
            let tdir = repo.root.join("branches/b").join(tag);
            assert_eq!(tdir.exists(), kept, "{tag}");
            // The blobs only the deleted tags used go in the same run.
            assert_eq!(blobs[tag].exists(), kept, "{tag}'s blob");
        }
        assert_eq!(report.blobs, 3);
    }

    #[test]
    fn a_released_tag_that_cannot_be_unpublished_is_kept() {
        let repo = TestRepo::new();
        for (i, tag) in ["r1", "r2", "r3"].iter().enumerate() {
            upload(&repo, "b", tag, tag.as_bytes());
            let tdir = repo.root.join("branches/b").join(tag);
            age(&tdir.join(".stamp"), 3600 * (10 - i as u64));
            fs::write(tdir.join(".released"), b"").expect("release");
        }
        fs::write(
            repo.root.join("branches/b/.cleanup_policy"),
            br#"{"max_released_tags": 1}"#,
        )
        .expect("policy");
        let asked = Mutex::new(Vec::new());
        let unpublish = |t: &TagRef| {
            asked.lock().expect("log").push(t.tag.to_string());
            match t.tag.as_str() {
                "r1" => Err("target down".to_owned()),
                _ => Ok(()),
            }
        };
        let report = repo
            .run_gc(GcKind::Full, false, Some(&unpublish))
            .expect("run");
        assert_eq!(report.tags, ["b/r2"]);
        assert_eq!(report.kept, [("b/r1".to_owned(), "target down".to_owned())]);
        assert!(repo.root.join("branches/b/r1").exists());
        assert!(!repo.root.join("branches/b/r2").exists());
        let mut asked = asked.into_inner().expect("log");
        asked.sort();
        assert_eq!(asked, ["r1", "r2"], "only the released tags over the limit");
    }

    #[test]
    fn a_full_run_prunes_the_lock_files_of_directories_that_are_gone() {
        let repo = TestRepo::new();
        upload(&repo, "b", "t", b"x");
        let gone = repo.root.join("branches/b/t/j/f");
        let ino = fs::metadata(&gone).expect("format dir").ino();
        fs::remove_dir_all(&gone).expect("rm");
        let lock = repo.locks_dir().join(format!("{ino:016x}"));
        assert!(lock.exists(), "the upload locked the format");
        assert_eq!(
            repo.run_gc(GcKind::Orphans, false, None)
                .expect("run")
                .locks,
            0
        );
        assert_eq!(
            repo.run_gc(GcKind::Full, true, None)
                .expect("dry run")
                .locks,
            1
        );
        assert!(lock.exists());
        assert_eq!(
            repo.run_gc(GcKind::Full, false, None).expect("run").locks,
            1
        );
        assert!(!lock.exists());
        let job = fs::metadata(repo.root.join("branches/b/t/j")).expect("job dir");
        assert!(
            repo.locks_dir()
                .join(format!("{:016x}", job.ino()))
                .exists()
        );
    }

    #[test]
    fn requests_made_during_a_run_merge_into_one() {
        let repo = TestRepo::new();
        repo.request_gc(GcKind::Orphans);
        repo.request_gc(GcKind::Full);
        repo.request_gc(GcKind::Orphans);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(rt.block_on(repo.next_gc_request()), GcKind::Full);
        let pending = repo.gc.pending.lock().expect("queue").is_none();
        assert!(pending, "the three requests made one run");
    }
}
