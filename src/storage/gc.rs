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
        tracing::info!(
            tags = report.tags.len(),
            blobs = report.blobs,
            uploads = report.uploads,
            bytes = report.bytes,
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
        fs::create_dir_all(&dir)?;
        DirLock::shared(&dir)
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
            let bdir = self.branch_dir(&b);
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
            for (list, key, is_released) in [
                (&mut daily, "max_daily_tags", false),
                (&mut released, "max_released_tags", true),
            ] {
                let Some(keep) = limit(key) else { continue };
                // Newest first; stable over name order for equal times.
                list.sort_by(|a, b| b.0.total_cmp(&a.0));
                let keep = usize::try_from(keep).unwrap_or(usize::MAX);
                for (_, t) in list.iter().skip(keep) {
                    let name = format!("{}/{}", t.branch.branch, t.tag);
                    tracing::info!(tag = %name, dry_run, "cleanup: deleting tag");
                    if dry_run {
                        report.tags.push(name);
                        doomed.push(self.tag_dir(t));
                        continue;
                    }
                    // dlrepo aborts the whole pass when un-publishing fails. Keeping just
                    // that tag is safer: deleting it would strand its copies on the other
                    // servers with nothing left here to retract them.
                    if is_released
                        && let Some(unpublish) = unpublish
                        && let Err(e) = unpublish(t)
                    {
                        tracing::error!(tag = %name, error = %e, "cleanup: kept, unpublish failed");
                        report.kept.push((name, e));
                        continue;
                    }
                    match self.delete_tag_for_cleanup(t) {
                        Ok(()) => report.tags.push(name),
                        // Another process sharing the root cleaned it up first.
                        Err(StoreError::NotFound) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// Recomputes every user's `.disk_usage` from what is on disk (dot-files included).
    fn refresh_quotas(&self) -> Result<u64, StoreError> {
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
        let (blobs, bytes) = self.orphans_after_deleting(doomed, &old);
        report.blobs += blobs;
        report.bytes += bytes;
        // spec/API.md Q30: both folders, whichever exists.
        let blobs = self.root.join(".blobs");
        if blobs.is_dir() {
            let candidates: Vec<PathBuf> = walkdir::WalkDir::new(&blobs)
                .min_depth(3)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter(|e| e.metadata().is_ok_and(|m| m.nlink() == 1 && old(&m)))
                .map(|e| e.into_path())
                .collect();
            if !candidates.is_empty() {
                let _exclusive = DirLock::acquire(&blobs)?;
                for path in candidates {
                    // Re-checked under the lock: an upload may have touched or linked it.
                    let Ok(m) = fs::metadata(&path) else { continue };
                    if m.nlink() != 1 || !old(&m) {
                        continue;
                    }
                    pause_for_tests();
                    if !dry_run {
                        fs::remove_file(&path)?;
                    }
                    report.blobs += 1;
                    report.bytes += m.len();
                }
            }
        }
        // Temp files, scratch directories and trees left by a crash or an interrupted
        // request, and registry sessions and pending layers nobody came back for.
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

    /// The blobs that deleting the tag dirs `tags` would leave with no link but their own,
    /// and their bytes: blobs whose every other link is a listed file of those tags. A link
    /// shares its blob's inode, hence its mtime, so the age test is the collector's.
    fn orphans_after_deleting(
        &self,
        tags: &[PathBuf],
        old: &dyn Fn(&fs::Metadata) -> bool,
    ) -> (u64, u64) {
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
        blobs
            .values()
            .filter(|(links, m)| m.nlink() == links + 1 && old(m))
            .fold((0, 0), |(n, bytes), (_, m)| (n + 1, bytes + m.len()))
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

/// `ARBOR_TEST_GC_PAUSE_MS` widens the window between the collector's last check and its
/// unlink, so a test can put an upload exactly there. Unset in normal operation.
fn pause_for_tests() {
    static PAUSE: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        std::env::var("ARBOR_TEST_GC_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
    });
    if let Some(p) = pause {
        std::thread::sleep(*p);
    }
}
