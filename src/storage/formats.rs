//! Formats and their artifacts: listing, `.sha256` views, opening a file, delete
//! (spec/LAYOUT.md §3.5, spec/API.md §3.8–3.9).

use super::digests::Listed;
use super::files::{DirLock, exists, remove_flag, same_file};
use super::visibility::Visibility;
use super::{Repo, StoreError};
use crate::model::{FormatRef, RelPath};
use serde::Serialize;
use std::fs;
use std::sync::Arc;

#[derive(Debug, Serialize)]
pub struct FormatInfo {
    pub name: String,
    pub internal: bool,
    pub dirty: bool,
    pub files: Vec<String>,
}

/// A file of a format as `GET {format}/?details` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    /// Its relpath.
    pub name: String,
    pub size: u64,
    pub digest: Option<String>,
    /// The file's `Last-Modified`: the format's timestamp (see [`super::BlobReader`]).
    pub mtime: f64,
}

/// The result of resolving an artifact URL.
pub enum Artifact {
    File(super::BlobReader),
    Dir,
    /// The `sums_line` of the file (`{hex}  {basename}\n`) for a `{file}.sha256` URL with
    /// no such file on disk.
    Sha256Line(String),
}

impl Artifact {
    /// The same, a file's content read now when it holds at most `max` bytes
    /// ([`super::BlobReader::preload`]).
    pub fn preload(self, max: u64) -> Result<Artifact, StoreError> {
        Ok(match self {
            Artifact::File(file) => Artifact::File(file.preload(max)?),
            other => other,
        })
    }
}

impl Repo {
    /// Whether the format is still being written to (spec/API.md §3.8); 404 when missing.
    pub fn format_dirty(&self, f: &FormatRef) -> Result<bool, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(exists(&fdir.join(".dirty")))
    }

    pub fn format_info(&self, f: &FormatRef, acl: &Visibility) -> Result<FormatInfo, StoreError> {
        Ok(self.format_listed(f, acl)?.0)
    }

    /// [`Repo::format_info`] and the kept `.digests` it was made from (all of it: callers
    /// that list its files check [`Visibility::allows_file`] too).
    fn format_listed(
        &self,
        f: &FormatRef,
        acl: &Visibility,
    ) -> Result<(FormatInfo, Arc<Listed>), StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let listed = self.listed(&fdir)?;
        let info = FormatInfo {
            name: f.name().to_string(),
            internal: self.is_internal_format(f.name().as_str()),
            dirty: exists(&fdir.join(".dirty")),
            files: listed
                .entries()
                .filter(|(n, _)| acl.allows_file(f, n))
                .map(|(n, _)| n.to_owned())
                .collect(),
        };
        Ok((info, listed))
    }

    /// The format as [`Repo::format_info`] shows it, and the facts of each of its files
    /// from one `stat` each (no file is read). A file listed but missing on disk is left
    /// out: it cannot be downloaded (`arbor fsck` reports it).
    pub fn format_details(
        &self,
        f: &FormatRef,
        acl: &Visibility,
    ) -> Result<(FormatInfo, Vec<FileFacts>), StoreError> {
        let (info, listed) = self.format_listed(f, acl)?;
        let fdir = self.format_dir(f);
        let mut facts = Vec::new();
        for (rel, digest) in listed.entries().filter(|(n, _)| acl.allows_file(f, n)) {
            let Ok(meta) = fs::metadata(fdir.join(rel)) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            facts.push(FileFacts {
                name: rel.to_owned(),
                size: meta.len(),
                digest: digest.map(str::to_owned),
                mtime: listed.time(),
            });
        }
        Ok((info, facts))
    }

    /// The only file of a format, for the `{format}` (no slash) redirect; `None` when the
    /// format holds zero or several files, or just an `index.html`. A dirty format is
    /// not there yet: 404. A file the caller may not read is not counted, so the redirect
    /// never names one.
    pub fn format_single_file(
        &self,
        f: &FormatRef,
        acl: &Visibility,
    ) -> Result<Option<String>, StoreError> {
        let fdir = self.format_dir(f);
        if self.format_dirty(f)? {
            return Err(StoreError::NotFound);
        }
        let listed = self.listed(&fdir)?;
        let mut entries = listed.entries().filter(|(n, _)| acl.allows_file(f, n));
        Ok(match (entries.next(), entries.next()) {
            (Some((only, _)), None) if only != "index.html" => Some(only.to_owned()),
            _ => None,
        })
    }

    /// Whether the caller may read every file of the format: what a package index arbor
    /// generates, which names them all with their digests, needs.
    pub fn reads_every_file(&self, f: &FormatRef, acl: &Visibility) -> Result<bool, StoreError> {
        if let Visibility::Everything = acl {
            return Ok(true);
        }
        let listed = self.listed(&self.format_dir(f))?;
        Ok(listed.entries().all(|(n, _)| acl.allows_file(f, n)))
    }

    /// `{hex}  {relpath}\n` for every sha256 entry, sorted by relpath.
    pub fn format_sha256(&self, f: &FormatRef, acl: &Visibility) -> Result<String, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let listed = self.listed(&fdir)?;
        let mut out = String::new();
        for (rel, d) in listed.entries().filter(|(n, _)| acl.allows_file(f, n)) {
            if let Some(hex) = d.and_then(|d| d.strip_prefix("sha256:")) {
                out.push_str(&crate::model::sums_line(hex, rel));
            }
        }
        Ok(out)
    }

    pub fn delete_format(&self, f: &FormatRef) -> Result<(), StoreError> {
        let FormatRef::Job { job, format } = f else {
            return Err(StoreError::bad("Deleting product formats is not supported"));
        };
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let jdir = self.job_dir(job);
        // Shared with uploads, exclusive with locking: a job is never locked with a
        // format half gone from its digest.
        let _job = DirLock::shared(&self.locks_dir(), &jdir)?;
        if exists(&jdir.join(".locked")) && !self.is_internal_format(format.as_str()) {
            return Err(StoreError::bad("Cannot delete format: job is locked"));
        }
        // spec/API.md Q11: also drop the product link that would dangle.
        if let Ok(version) = fs::canonicalize(jdir.join(".product")) {
            let link = version.join(format);
            if same_file(&link, &fdir) {
                remove_flag(&link)?;
            }
        }
        self.remove_tree(&fdir)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    /// The file at `rel`, or for `{file}.sha256` when no such file exists, the sum line of
    /// `{file}`: its content, so it answers only a caller who may read `{file}`.
    pub fn open_artifact(
        &self,
        f: &FormatRef,
        rel: &RelPath,
        acl: &Visibility,
    ) -> Result<Artifact, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let path = fdir.join(rel.as_str());
        match super::files::retry_stale(|| fs::metadata(&path)) {
            Ok(m) if m.is_dir() => Ok(Artifact::Dir),
            Ok(_) => {
                let listed = self.listed(&fdir)?;
                Ok(Artifact::File(super::BlobReader::open_listed(
                    self,
                    &fdir,
                    &listed,
                    rel.as_str(),
                )?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(stripped) = rel
                    .as_str()
                    .strip_suffix(".sha256")
                    .filter(|file| acl.allows_file(f, file))
                else {
                    return Err(StoreError::NotFound);
                };
                let listed = self.listed(&fdir)?;
                let hex = listed
                    .digest(stripped)
                    .and_then(|d| d.strip_prefix("sha256:"))
                    .ok_or(StoreError::NotFound)?;
                let base = stripped.rsplit('/').next().unwrap_or(stripped);
                Ok(Artifact::Sha256Line(crate::model::sums_line(hex, base)))
            }
            Err(e) => Err(e.into()),
        }
    }
}
