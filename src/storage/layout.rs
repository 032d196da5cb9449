//! Where every entity lives on disk (spec/LAYOUT.md §1): the one place that joins paths.

use super::Repo;
use crate::model::{BranchRef, Digest, FormatRef, JobRef, Name, Scope, TagRef, VersionRef};
use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::Mode;
use std::path::{Path, PathBuf};

impl Repo {
    pub(crate) fn scope_dir(&self, scope: &Scope) -> PathBuf {
        match scope {
            Scope::Root => self.root.clone(),
            Scope::User(u) => self.root.join("users").join(u),
        }
    }

    pub fn scope_exists(&self, scope: &Scope) -> bool {
        self.scope_dir(scope).is_dir()
    }

    pub(crate) fn branches_dir(&self, scope: &Scope) -> PathBuf {
        self.scope_dir(scope).join("branches")
    }

    pub(crate) fn products_dir(&self, scope: &Scope) -> PathBuf {
        self.scope_dir(scope).join("products")
    }

    pub(crate) fn branch_dir(&self, b: &BranchRef) -> PathBuf {
        self.branches_dir(&b.scope).join(&b.branch)
    }

    pub(crate) fn tag_dir(&self, t: &TagRef) -> PathBuf {
        self.branch_dir(&t.branch).join(&t.tag)
    }

    pub(crate) fn job_dir(&self, j: &JobRef) -> PathBuf {
        self.tag_dir(&j.tag).join(&j.job)
    }

    pub(crate) fn version_dir(&self, v: &VersionRef) -> PathBuf {
        self.products_dir(&v.scope)
            .join(&v.product)
            .join(&v.variant)
            .join(&v.product_branch)
            .join(&v.version)
    }

    /// For a product format this goes through the version's symlink.
    pub(crate) fn format_dir(&self, f: &FormatRef) -> PathBuf {
        match f {
            FormatRef::Job { job, format } => self.job_dir(job).join(format),
            FormatRef::Version { version, format } => self.version_dir(version).join(format),
        }
    }

    pub(crate) fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root
            .join(".blobs")
            .join(d.algo().name())
            .join(&hex[..2])
            .join(hex)
    }

    /// Hashed API tokens, one file each (arbor only; dlrepo ignores dot entries).
    pub fn token_files(&self) -> super::TokenFiles {
        super::TokenFiles::in_root(&self.root)
    }

    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.root.join(".uploads")
    }

    /// The lock files that stand for directories (see `files::DirLock`).
    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join(".locks")
    }

    /// Entity directories below `dir`, sorted by name (code points); dot entries and
    /// non-directories are never entities.
    pub(crate) fn list_entities(dir: &Path) -> std::io::Result<Vec<Name>> {
        Ok(Scan::read(dir)?.entities)
    }
}

/// One pass over an entity directory: its sub-entities, which dot-files it holds, and an open
/// handle on it. Listings look up everything below the directory relative to that handle,
/// so the kernel walks the (possibly long) root path once per directory, not once per file.
#[derive(Default)]
pub(crate) struct Scan {
    dir: Option<Dir>,
    pub entities: Vec<Name>,
    dots: Vec<String>,
    /// The directory's stamp, taken before its entries were read (`stamp_cache.rs`).
    pub stamp: Option<super::stamp_cache::Stamp>,
}

impl Scan {
    /// A missing directory scans as empty.
    pub fn read(path: &Path) -> std::io::Result<Scan> {
        match Scan::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Scan::default()),
            other => other,
        }
    }

    /// Like [`Scan::read`], but a missing directory is an error (`NotFound`).
    pub fn open(path: &Path) -> std::io::Result<Scan> {
        let mut dir = Dir::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut scan = Scan {
            stamp: nix::sys::stat::fstat(&dir)
                .ok()
                .map(|st| super::stamp_cache::Stamp::of_stat(&st)),
            ..Scan::default()
        };
        let mut symlinks = Vec::new();
        for entry in dir.iter() {
            let entry = entry?;
            let Ok(raw) = entry.file_name().to_str() else {
                continue;
            };
            if raw.starts_with('.') {
                scan.dots.push(raw.to_owned());
                continue;
            }
            let Ok(name) = Name::parse(raw) else {
                continue;
            };
            // Only names already in canonical (lower-case) form are entities: anything else
            // cannot be reached by any URL.
            if name.as_str() != raw {
                continue;
            }
            match entry.file_type() {
                Some(Type::Directory) => scan.entities.push(name),
                // Product formats are symlinks to format dirs; d_type may also be unknown.
                Some(Type::Symlink) | None => symlinks.push(name),
                Some(_) => {}
            }
        }
        scan.dir = Some(dir);
        for name in symlinks {
            if scan.is_dir_at(name.as_str()) {
                scan.entities.push(name);
            }
        }
        scan.entities.sort();
        Ok(scan)
    }

    /// Whether the directory holds the dot-file `name` (e.g. `.locked`).
    pub fn has(&self, name: &str) -> bool {
        self.dots.iter().any(|d| d == name)
    }

    fn stat_at(&self, rel: &str, follow: bool) -> Option<nix::sys::stat::FileStat> {
        let flags = if follow {
            AtFlags::empty()
        } else {
            AtFlags::AT_SYMLINK_NOFOLLOW
        };
        nix::sys::stat::fstatat(self.dir.as_ref()?, rel, flags).ok()
    }

    fn is_dir_at(&self, rel: &str) -> bool {
        self.stat_at(rel, true)
            .is_some_and(|st| st.st_mode & libc_dir_mask() == libc_dir_bits())
    }

    /// The stamp of the directory `rel` below this one (`stamp_cache.rs`).
    pub fn stamp_at(&self, rel: &str) -> Option<super::stamp_cache::Stamp> {
        self.stat_at(rel, true)
            .map(|st| super::stamp_cache::Stamp::of_stat(&st))
    }

    /// Whether `rel` (below this directory) exists.
    pub fn exists_at(&self, rel: &str) -> bool {
        self.stat_at(rel, false).is_some()
    }

    /// mtime of `rel` as Python's `st_mtime` float.
    pub fn mtime_at(&self, rel: &str) -> Option<f64> {
        self.stat_at(rel, true)
            .map(|st| st.st_mtime as f64 + st.st_mtime_nsec as f64 * 1e-9)
    }

    /// mtime of `rel` in nanoseconds since the epoch (the search index compares them).
    pub fn mtime_ns_at(&self, rel: &str) -> Option<i64> {
        self.stat_at(rel, true)
            .map(|st| st.st_mtime * 1_000_000_000 + st.st_mtime_nsec)
    }

    /// The content of `rel`, `None` when it cannot be read.
    pub fn read_at(&self, rel: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        let fd = nix::fcntl::openat(
            self.dir.as_ref()?,
            rel,
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut data = Vec::new();
        // Through `take`, read_to_end skips the fstat and lseek it would make for a size hint.
        std::io::Read::take(std::fs::File::from(fd), MAX_DOT_FILE)
            .read_to_end(&mut data)
            .ok()?;
        Some(data)
    }

    /// Text content stripped of surrounding whitespace, `None` when missing.
    pub fn text_at(&self, rel: &str) -> Option<String> {
        self.read_at(rel)
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
    }
}

/// Dot-files are a few bytes to a few hundred kilobytes (`.digests`); this only bounds a
/// corrupted one.
const MAX_DOT_FILE: u64 = 1 << 30;

fn libc_dir_mask() -> nix::sys::stat::mode_t {
    nix::sys::stat::SFlag::S_IFMT.bits()
}

fn libc_dir_bits() -> nix::sys::stat::mode_t {
    nix::sys::stat::SFlag::S_IFDIR.bits()
}
