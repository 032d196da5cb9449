//! The only code that touches the filesystem. [`Repo`] owns one data root laid out as
//! spec/LAYOUT.md describes; its operations are plain synchronous code, and callers on the
//! async runtime run each whole operation on the blocking pool with [`Repo::run`].
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod aliases;
pub mod apt;
pub mod archive;
pub mod assets;
mod blobs;
mod branches;
mod bundles;
mod commit;
mod digests;
mod durable;
pub mod encodings;
mod files;
#[cfg(test)]
mod fixture;
mod formats;
pub mod fsck;
mod gc;
mod holders;
mod hooks;
mod jobs;
mod layout;
mod link_targets;
mod locks;
pub mod page_info;
mod parallel;
mod pool;
mod products;
pub mod publishing;
pub mod quota;
pub mod registry;
mod relink;
pub mod rpm;
mod rpm_header;
mod rpm_xml;
pub mod search;
mod settle;
mod shared_run;
mod stale;
mod stamp_cache;
mod tags;
mod tokens;
mod trash;
mod uploads;
mod visibility;

pub(crate) use blobs::body_error;
pub use blobs::{BlobReader, ByteRange, Upload};
pub use branches::{BranchAll, BranchInfo, BranchSummary, BranchView};
pub use bundles::{Bundle, TarPlan, product_archive_name};
pub use formats::{Artifact, FileFacts, FormatInfo};
pub use gc::{GcKind, GcReport, Unpublish};
pub use jobs::{JobEntry, JobInfo, JobUpdate, JobView};
pub use products::{ProductLevel, VersionSummary, product_level_url};
pub use tags::{TagInfo, TagSummary, TagUpdate};
pub use tokens::TokenFiles;
pub use visibility::Visibility;

use crate::config::Config;
use crate::metrics::Cache;
use crate::model::DigestError;
use regex::Regex;
use std::path::PathBuf;
use std::sync::Arc;

/// What went wrong in storage, in storage's words: each protocol maps it to its own answer
/// in one place (`http::reply` for the tree, `http::registry::reply` for `/v2/`).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Not Found")]
    NotFound,
    /// The caller may make the request but not this effect of it (spec/API.md Q50).
    #[error("Unauthorized")]
    Denied,
    /// The request cannot be done as asked (a locked tag, a dirty format, over quota...):
    /// the reason is for the client, word for word as dlrepo says it.
    #[error("{0}")]
    Refused(String),
    #[error("invalid digest: {}", .0.0)]
    InvalidDigest(DigestError),
    #[error("Received data does not match digest: {0}")]
    DigestMismatch(String),
    #[error("post process failed")]
    PostProcessFailed,
    /// The client sent nothing of its body for `DLREPO_CLIENT_TIMEOUT`: nothing was stored.
    #[error("Request Timeout")]
    ClientTimeout,
    /// The client's body ended early or broke: nothing was stored.
    #[error("upload interrupted: {0}")]
    Interrupted(String),
    /// The write lost a race it cannot win any more (a job locked while its upload was
    /// being received): the reason is for the client. Nothing was stored.
    #[error("{0}")]
    Conflict(String),
    /// The filesystem is full (`ENOSPC`) or the service user's disk quota is used up
    /// (`EDQUOT`): nothing was changed. Holds what was being done, for the log.
    #[error("no space left on the device: {0}")]
    NoSpace(String),
    /// A filesystem call failed: what it was doing and on which path, for the log.
    #[error("{op} {}: {source}", path.display())]
    Fs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(std::io::Error),
    #[error("blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> StoreError {
        if is_no_space(&e) {
            StoreError::NoSpace(e.to_string())
        } else {
            StoreError::Io(e)
        }
    }
}

/// Whether an I/O error means the disk (or the service user's quota on it) is full.
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(nix::libc::ENOSPC | nix::libc::EDQUOT)
    )
}

impl StoreError {
    pub(crate) fn bad(why: impl Into<String>) -> StoreError {
        StoreError::Refused(why.into())
    }

    /// `e`, from `op` on `path`: the log of a failed request then says where it failed.
    pub(crate) fn at(op: &'static str, path: &std::path::Path, e: std::io::Error) -> StoreError {
        if is_no_space(&e) {
            StoreError::NoSpace(format!("{op} {}: {e}", path.display()))
        } else {
            StoreError::Fs {
                op,
                path: path.to_path_buf(),
                source: e,
            }
        }
    }

    /// The errno behind an I/O failure, whichever variant carries it.
    pub fn os_error(&self) -> Option<i32> {
        match self {
            StoreError::Io(e) | StoreError::Fs { source: e, .. } => e.raw_os_error(),
            _ => None,
        }
    }
}

/// Turns "no such file" into the entity's 404.
pub(crate) fn not_found_if_missing(e: std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::NotFound {
        StoreError::NotFound
    } else {
        StoreError::Io(e)
    }
}

/// Below this many free inodes every new file may fail: uploads make several each.
const MIN_FREE_INODES: u64 = 1000;

/// What the filesystem of the data root has left.
#[derive(Debug, Clone, Copy)]
pub struct DiskSpace {
    pub free_bytes: u64,
    pub free_inodes: u64,
    pub total_inodes: u64,
}

/// One data root and the settings that change how it is written.
pub struct Repo {
    root: PathBuf,
    chunk_size: usize,
    internal_filter: Option<Regex>,
    post_process_cmd: Option<PathBuf>,
    post_process_filter: Option<Regex>,
    /// `DLREPO_X_SENDFILE_HEADER` is set: downloads need the absolute resolved path.
    pub(crate) x_sendfile: bool,
    /// Links waiting for a group commit into their format (see `commit.rs`).
    pub(crate) links: commit::LinkQueue,
    /// `DLREPO_USER_QUOTA` bytes per user repository.
    user_quota: u64,
    /// `DLREPO_ORPHAN_BLOB_LIFETIME` seconds.
    orphan_lifetime: u64,
    /// Cleanup requests for the single GC worker.
    gc: gc::GcQueue,
    /// Pauses a test asked for (`[testing]`), none in production.
    pub(crate) test_hooks: crate::config::TestHooks,
    /// Packages read and APT indexes made, by content (`apt/`).
    pub(crate) apt: apt::AptCache,
    /// Headers of the packages already read, by content digest (`rpm.rs`).
    pub(crate) rpms: rpm::RpmCache,
    /// Metadata answers checked by stamps on every use (`stamp_cache.rs`, docs/caches.md).
    pub(crate) alias_orders: aliases::AliasCache,
    pub(crate) tag_cache: stamp_cache::StampCache<TagInfo>,
    pub(crate) job_cache: stamp_cache::StampCache<JobInfo>,
    pub(crate) branch_cache: stamp_cache::StampCache<BranchAll>,
    /// Formats' `.digests`, for downloads (`digests.rs`).
    pub(crate) listed_cache: stamp_cache::StampCache<digests::Listed>,
    /// The registry catalog's walks (`registry/tags.rs`).
    pub(crate) catalog_runs: shared_run::SharedRun<Arc<Vec<String>>>,
}

impl Repo {
    /// The repository of an existing data root, for the offline commands (`gc`, `fsck`,
    /// `token`): a mistyped `DLREPO_ROOT_DIR` must not pass for a healthy, empty tree.
    pub fn open(config: &Config) -> std::io::Result<Repo> {
        if !config.root_dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "data root {} does not exist (--root or DLREPO_ROOT_DIR); `arbor serve` creates it",
                    config.root_dir.display()
                ),
            ));
        }
        Repo::new(config)
    }

    /// The repository a server serves: [`Repo::new`], then what a server that died left in
    /// the middle of a metadata write is finished (`relink.rs`). The offline commands leave
    /// that to `fsck --repair` and `gc`, so that a plain `fsck` changes nothing.
    pub fn for_server(config: &Config) -> std::io::Result<Repo> {
        let repo = Repo::new(config)?;
        repo.finish_relinks();
        Ok(repo)
    }

    /// The repository of the server, creating the data root on a first run.
    pub fn new(config: &Config) -> std::io::Result<Repo> {
        std::fs::create_dir_all(&config.root_dir)?;
        files::umask();
        // Absolute, so X-Sendfile paths and post-process working dirs do not depend on cwd.
        let root = std::fs::canonicalize(&config.root_dir)?;
        let repo = Repo {
            root,
            chunk_size: config.chunk_size,
            internal_filter: config.internal_format_filter.clone(),
            post_process_cmd: config.post_process_cmd.clone(),
            post_process_filter: config.post_process_filter.clone(),
            x_sendfile: config.x_sendfile_header.is_some(),
            links: commit::LinkQueue::default(),
            user_quota: config.user_quota,
            orphan_lifetime: config.orphan_blob_lifetime,
            gc: gc::GcQueue::default(),
            apt: apt::AptCache::default(),
            rpms: rpm::RpmCache::default(),
            alias_orders: aliases::AliasCache::new(Cache::alias, aliases::ALIAS_BUDGET),
            tag_cache: stamp_cache::StampCache::new(Cache::tag, stamp_cache::TAG_BUDGET),
            job_cache: stamp_cache::StampCache::new(Cache::job, stamp_cache::JOB_BUDGET),
            branch_cache: stamp_cache::StampCache::new(Cache::branch, stamp_cache::BRANCH_BUDGET),
            listed_cache: stamp_cache::StampCache::new(Cache::digests, digests::LISTED_BUDGET),
            catalog_runs: shared_run::SharedRun::new(),
            test_hooks: config.testing.clone(),
        };
        // Before anything is served: a crash may have left a swap half done.
        repo.recover_post_process();
        // So that a directory's first lock still works once the disk is full.
        locks::keep_spares(&repo.locks_dir());
        Ok(repo)
    }

    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Runs one storage operation on the blocking pool, inside the caller's tracing span.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Repo) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let repo = Arc::clone(self);
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| f(&repo))).await?
    }

    /// A format is internal when its name matches `DLREPO_INTERNAL_FORMAT_FILTER`.
    pub fn is_internal_format(&self, name: &str) -> bool {
        self.internal_filter
            .as_ref()
            .is_some_and(|re| re.is_match(name))
    }

    /// Cheap readiness probe for `/healthz`: the root is there and writable, and has room.
    /// `Ok(Some(reason))` when it works but is about to stop working (space running out).
    pub fn check_health(&self, min_free: u64) -> Result<Option<String>, StoreError> {
        let tmp = files::TempFile::create(&self.uploads_dir())?;
        drop(tmp);
        let space = self.disk_space()?;
        if space.free_bytes < min_free {
            return Ok(Some(format!(
                "{} bytes free under the data root, DLREPO_MIN_FREE_SPACE is {min_free}",
                space.free_bytes
            )));
        }
        // Filesystems without an inode table (btrfs, tmpfs with nr_inodes=0) report none.
        if space.total_inodes > 0 && space.free_inodes < MIN_FREE_INODES {
            return Ok(Some(format!(
                "{} inodes free under the data root",
                space.free_inodes
            )));
        }
        Ok(None)
    }

    /// Free space and inodes of the filesystem that holds the data root, as unprivileged
    /// writers see them.
    pub fn disk_space(&self) -> Result<DiskSpace, StoreError> {
        let st = nix::sys::statvfs::statvfs(&self.root).map_err(std::io::Error::from)?;
        let frsize = st.fragment_size();
        Ok(DiskSpace {
            free_bytes: st.blocks_available().saturating_mul(frsize),
            free_inodes: st.files_available(),
            total_inodes: st.files(),
        })
    }
}
