//! Where every entity lives on disk (spec/LAYOUT.md §1): the one place that joins paths.

use super::Repo;
use crate::model::{BranchRef, Digest, FormatRef, JobRef, Name, Scope, TagRef, VersionRef};
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

    pub(crate) fn uploads_dir(&self) -> PathBuf {
        self.root.join(".uploads")
    }

    /// Entity directories below `dir`, sorted by name (code points); dot entries and
    /// non-directories are never entities.
    pub(crate) fn list_entities(dir: &Path) -> std::io::Result<Vec<Name>> {
        Ok(Scan::read(dir)?.entities)
    }
}

/// One `read_dir` of an entity directory: its sub-entities and which dot-files it holds.
/// Listings call this once per tag instead of probing each flag file with its own syscall.
#[derive(Default)]
pub(crate) struct Scan {
    pub entities: Vec<Name>,
    dots: Vec<String>,
}

impl Scan {
    /// A missing directory scans as empty.
    pub fn read(dir: &Path) -> std::io::Result<Scan> {
        let mut scan = Scan::default();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(scan),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Some(raw) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if raw.starts_with('.') {
                scan.dots.push(raw);
                continue;
            }
            let Ok(name) = Name::parse(&raw) else {
                continue;
            };
            // Only names already in canonical (lower-case) form are entities: anything else
            // cannot be reached by any URL.
            if name.as_str() != raw {
                continue;
            }
            let ftype = entry.file_type()?;
            // Product formats are symlinks to format dirs: follow those only.
            let is_dir = ftype.is_dir()
                || (ftype.is_symlink()
                    && std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()));
            if is_dir {
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
}
