//! What the tar bundle of a job, a format or a product version holds, and its name
//! (spec/API.md §6); `archive.rs` streams it.

use super::archive::Member;
pub use super::archive::TarPlan;
use super::digests::format_digests;
use super::files::{read_json_map, sort_time, stamp_time};
use super::visibility::Visibility;
use super::{Repo, StoreError};
use crate::model::{BranchRef, FormatRef, JobRef, Name, Scope, VersionRef};
use serde_json::Value;
use std::path::Path;

/// `{product}-{variant}-v{version}`: what the bundle of a job in a product version, and
/// that version's own, are called (spec/API.md §6).
pub fn product_archive_name(product: &str, variant: &str, version: &str) -> String {
    format!("{product}-{variant}-v{version}")
}

/// A bundle URL resolved: the entity it names, and the plan of its tar or why there is
/// none. The plan's error is kept apart so that a non-canonical URL (an alias, say) still
/// answers its redirect first, as it did when these were two calls.
pub struct Bundle<R> {
    pub at: R,
    pub plan: Result<TarPlan, StoreError>,
}

impl Repo {
    /// `GET {job}.tar`: resolves the tag segment (aliases included) and plans the tar.
    pub fn job_bundle(
        &self,
        b: &BranchRef,
        tag: &str,
        job: Name,
        acl: &Visibility,
    ) -> Result<Bundle<JobRef>, StoreError> {
        let t = self.resolve_tag(b, tag, true, acl)?;
        let j = JobRef { tag: t, job };
        let plan = self.job_tar(&j, acl);
        Ok(Bundle { at: j, plan })
    }

    /// `GET {version}.tar`: resolves the version segment (aliases included) and plans the
    /// tar.
    pub fn version_bundle(
        &self,
        scope: &Scope,
        path: &[Name; 3],
        version: &str,
        acl: &Visibility,
    ) -> Result<Bundle<VersionRef>, StoreError> {
        let v = self.resolve_version(scope, path, version, true, acl)?;
        let plan = self.version_tar(&v, acl);
        Ok(Bundle { at: v, plan })
    }

    /// `{product}-{product_variant}-v{version}` when the metadata names them, else `{job}-{tag}`.
    fn job_archive_name(&self, j: &JobRef) -> String {
        let meta = read_json_map(&self.job_dir(j).join(".metadata"));
        let get = |k: &str| meta.get(k).and_then(Value::as_str);
        match (get("product"), get("product_variant"), get("version")) {
            (Some(p), Some(v), Some(ver)) => product_archive_name(p, v, ver),
            _ => j.default_archive_name(),
        }
    }

    fn job_tar(&self, j: &JobRef, acl: &Visibility) -> Result<TarPlan, StoreError> {
        let jdir = self.job_dir(j);
        // spec/API.md Q8: dlrepo answered an empty tar for a missing job; a 404 is clearer.
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let mut members = Vec::new();
        for f in Repo::list_entities(&jdir)? {
            let fref = FormatRef::Job {
                job: j.clone(),
                format: f.clone(),
            };
            if acl.allows(|| fref.url()) {
                let readable = |rel: &str| acl.allows_file(&fref, rel);
                self.push_members(&jdir.join(&f), &format!("{f}/"), &readable, &mut members)?;
            }
        }
        let stamp = sort_time(stamp_time(&jdir));
        Ok(TarPlan::new(self.job_archive_name(j), members, stamp))
    }

    /// The files `.digests` lists that are `readable` (by their path in the format), stated
    /// now: their sizes and modes make the layout and the validator of the bundle before a
    /// byte of it is read. A listed file that is missing fails the whole bundle, before its
    /// first byte (a tar cut short was all dlrepo did).
    pub(crate) fn push_members(
        &self,
        fdir: &Path,
        prefix: &str,
        readable: &dyn Fn(&str) -> bool,
        out: &mut Vec<Member>,
    ) -> Result<(), StoreError> {
        for (rel, digest) in format_digests(fdir) {
            if !readable(&rel) {
                continue;
            }
            if let Some(digest) = digest.as_str() {
                let name = format!("{prefix}{rel}");
                let mut member = Member::stat(name, fdir.join(&rel), digest.to_owned())?;
                // `SHA256SUMS.txt` gives each member's digest: the file must be its blob.
                if !self.is_blob_identity(digest, member.inode) {
                    let settled = self.settle(fdir, &rel)?;
                    let Some(digest) = settled.digest else {
                        continue;
                    };
                    member = member.reopened(&settled.meta, digest);
                }
                out.push(member);
            }
        }
        Ok(())
    }

    /// The tar of a format, without the files the caller may not read.
    pub fn format_tar(&self, f: &FormatRef, acl: &Visibility) -> Result<TarPlan, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let job_name = match f {
            FormatRef::Job { job, .. } => self.job_archive_name(job),
            FormatRef::Version { version, .. } => version.archive_name(),
        };
        let mut members = Vec::new();
        let readable = |rel: &str| acl.allows_file(f, rel);
        self.push_members(&fdir, "", &readable, &mut members)?;
        let prefix = format!("{job_name}-{}", f.name());
        Ok(TarPlan::new(
            prefix,
            members,
            super::digests::format_time(&fdir)?,
        ))
    }
}
