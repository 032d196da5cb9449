//! The `products/` symlink tree built from job metadata (spec/LAYOUT.md §4) and its
//! read-only views (spec/API.md §3.10).

use super::bundles::TarPlan;
use super::files::same_file;
use super::files::{self, DirLock, create_flag, exists, sort_time, stamp_time};
use super::link_targets;
use super::visibility::Visibility;
use super::{Repo, StoreError};
use crate::model::{Alias, FormatRef, JobRef, Name, PRODUCT_KEYS, Scope, VersionRef};
use crate::pyjson;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::Path;

/// A product version as its product branch lists it (spec/API.md §3.10).
#[derive(Debug, Serialize)]
pub struct VersionSummary {
    pub name: String,
    pub timestamp: Value,
    pub locked: bool,
    pub released: bool,
    pub stable: bool,
}

/// A level of the products tree as `GET` shows it (spec/API.md §3.10).
pub enum ProductLevel {
    /// `/products/` down to a product variant: the names one level below.
    Names(Vec<String>),
    /// A product branch: its versions.
    Versions(Vec<VersionSummary>),
}

impl Repo {
    /// The job's metadata with `new` applied (spec/API.md Q14) and the product version it
    /// then names, if any. Bad product coordinates are refused here, before anything is
    /// written (spec/API.md Q46).
    pub(crate) fn merged_metadata(
        &self,
        j: &JobRef,
        new: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, Option<VersionRef>), StoreError> {
        let mut data = files::read_json_map_to_update(&self.job_dir(j).join(".metadata"))?;
        for (k, v) in new {
            if pyjson::is_truthy(v) {
                data.insert(k.clone(), pyjson::python_str(v).to_lowercase().into());
            } else {
                data.remove(k);
            }
        }
        for key in PRODUCT_KEYS {
            if let Some(v) = data.get(key) {
                let s = v.as_str().unwrap_or_default();
                let bad = Name::parse(s).is_err()
                    || (key == "version" && Alias::parse(&s.to_lowercase()).is_some());
                if bad {
                    return Err(StoreError::bad(format!("Invalid {key}: {s:?}")));
                }
            }
        }
        let name = |key: &str| Name::parse(data.get(key)?.as_str()?).ok();
        let version = VersionRef::from_fields(&j.tag.branch.scope, name);
        Ok((data, version))
    }

    /// Refuses, before anything is written, metadata that would link the job into a
    /// product version the caller may not add to (spec/API.md Q50).
    pub(crate) fn check_product_access(
        &self,
        j: &JobRef,
        new: &Map<String, Value>,
        may_link: &Visibility,
    ) -> Result<(), StoreError> {
        match self.merged_metadata(j, new)?.1 {
            Some(v) if !may_link.allows(|| v.url()) => Err(StoreError::Denied),
            _ => Ok(()),
        }
    }

    /// spec/LAYOUT.md §4 `add_metadata`; the caller holds the job dir lock.
    pub(crate) fn add_metadata_locked(
        &self,
        j: &JobRef,
        new: &Map<String, Value>,
        may_link: &Visibility,
    ) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if exists(&jdir.join(".locked")) {
            return Err(StoreError::bad("Job is locked"));
        }
        let (data, version) = self.merged_metadata(j, new)?;
        if let Some(v) = &version {
            if !may_link.allows(|| v.url()) {
                return Err(StoreError::Denied);
            }
            // A format another job already provides is never replaced; say so before the
            // metadata changes (spec/API.md Q16).
            self.check_no_clash(j, v)?;
        }
        // Charged first: a user over the quota keeps the old metadata and product links.
        let text = pyjson::object_to_string_sorted(&data);
        let charged = self.charge_file(&jdir.join(".metadata"), text.len() as u64)?;
        // Staged before anything changes: on a full disk the old metadata and product
        // links stay.
        let mut tx = files::Replace::new(&self.uploads_dir())?;
        tx.write(&jdir.join(".metadata"), text.as_bytes())?;
        charged.stage(&mut tx)?;
        // Only a write that moves product links needs its record (see `relink.rs`).
        let relinking = version.is_some() || fs::symlink_metadata(jdir.join(".product")).is_ok();
        let _record = relinking.then(|| self.intend_relink(j)).transpose()?;
        self.cleanup_product_tree(j)?;
        self.ensure_job(j)?;
        tx.commit()?;
        drop(charged);
        // The old links gone, the new metadata in, the new links not yet: what a crash
        // here leaves, the record finishes (`relink.rs`).
        self.test_hooks.pause("metadata-committed");
        if let Some(v) = version {
            self.link_to_product(j, &v)?;
        }
        Ok(())
    }

    /// Links `j` into the version its `.metadata` names and out of any other, as setting
    /// that metadata again would; the caller holds `j`'s lock. Whether `j` is then linked
    /// as `.metadata` says.
    pub(crate) fn relink_locked(&self, j: &JobRef) -> Result<bool, StoreError> {
        let named = self.merged_metadata(j, &Map::new())?.1;
        let product = self.job_dir(j).join(".product");
        // Already in that version (a write cut short after its `.product` link): only the
        // missing formats are linked, so the version is not made again (and re-stamped,
        // which would reorder `latest`).
        let there = named.as_ref().is_some_and(|v| {
            fs::canonicalize(&product).is_ok_and(|dir| same_file(&self.version_dir(v), &dir))
        });
        if !there {
            self.cleanup_product_tree(j)?;
            gone_is_fine(fs::remove_file(&product))?;
        }
        Ok(match &named {
            Some(v) => self.link_to_product(j, v).is_ok(),
            None => true,
        })
    }

    /// Fails when the version already has a format of this job's name that some other,
    /// still existing, format provides.
    fn check_no_clash(&self, j: &JobRef, v: &VersionRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        let vdir = self.version_dir(v);
        // Links to nothing in the job's own version go with its old links, on the way.
        let own_version =
            fs::canonicalize(jdir.join(".product")).is_ok_and(|current| same_file(&vdir, &current));
        for f in Repo::list_entities(&jdir).unwrap_or_default() {
            let entry = vdir.join(&f);
            if fs::symlink_metadata(&entry).is_err() || same_file(&entry, &jdir.join(&f)) {
                continue;
            }
            if fs::metadata(&entry).is_err() {
                if own_version {
                    continue;
                }
                // Refused before anything changes; a link a deleted job left (a delete a
                // crash cut short, a dlrepo root, Q11) is for `fsck --repair` to remove.
                return Err(StoreError::bad(format!(
                    "Format {f} of product version {} is a link to a deleted job's format; \
                     arbor fsck --repair removes it",
                    v.url()
                )));
            }
            return Err(StoreError::bad(format!(
                "Format {f} of product version {} is already provided by another job",
                v.url()
            )));
        }
        Ok(())
    }

    pub(crate) fn link_to_product(&self, j: &JobRef, v: &VersionRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        let vdir = self.version_dir(v);
        // The job's link first: a version is only ever made by a job that links to it, so
        // a delete that moves the job away (a tag's, racing this) finds the version through
        // it (`unlink_trashed_jobs`), and a job already gone makes none.
        let _ = fs::remove_file(jdir.join(".product"));
        symlink(link_targets::version_target(v), jdir.join(".product"))
            .map_err(super::not_found_if_missing)?;
        super::files::create_dirs(&vdir)?;
        create_flag(&vdir.join(".stamp"))?;
        let mut clash = None;
        for f in Repo::list_entities(&jdir)? {
            let entry = vdir.join(&f);
            let target = link_targets::format_target(j, f.as_str());
            // A link there that leads nowhere is not removed here: nothing locks the
            // version, and what looks dangling for a moment (another host's link not yet
            // visible, a format mid-swap) may be another job's (`check_no_clash`).
            match symlink(&target, &entry) {
                // This job's already (a write finished again after a crash).
                Err(e)
                    if e.kind() == io::ErrorKind::AlreadyExists
                        && same_file(&entry, &jdir.join(&f)) => {}
                // Another job's, never replaced (spec/API.md Q16); the other formats are
                // still linked.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    clash.get_or_insert(f);
                }
                other => other?,
            }
        }
        match clash {
            // Q16: say what clashes, without server paths.
            Some(f) => Err(StoreError::bad(format!(
                "Format {f} of product version {} is already provided by another job",
                v.url()
            ))),
            None => Ok(()),
        }
    }

    /// Unlinks this job from its product version, removing the version dirs left empty.
    /// Another process (a cleanup, a delete) may be unlinking the same version right now:
    /// whatever it removed first is simply gone, not an error.
    pub(crate) fn cleanup_product_tree(&self, j: &JobRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        let link = jdir.join(".product");
        if !fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()) {
            return Ok(());
        }
        if let Ok(vdir) = fs::canonicalize(&link) {
            self.unlink_version(&vdir, &jdir, j)?;
        }
        gone_is_fine(fs::remove_file(&link))
    }

    /// Unlinks the product versions of the jobs in a tree just moved into the trash
    /// (`trash`, `depth` levels above its job directories: 1 for a tag's, 2 for a branch's).
    /// A job made after the delete listed the jobs it deletes one by one (a write racing
    /// it) goes with the tree: without this its version would stay behind, empty or with
    /// links to nothing. Each job's lock is taken first, so a write still linking it ends
    /// before its links are looked at.
    pub(crate) fn unlink_trashed_jobs(
        &self,
        trash: &Path,
        depth: usize,
        scope: &Scope,
    ) -> Result<(), StoreError> {
        let links = walkdir::WalkDir::new(trash)
            .min_depth(depth + 1)
            .max_depth(depth + 1)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_name() == ".product" && e.path_is_symlink());
        for link in links {
            let Some(jdir) = link.path().parent() else {
                continue;
            };
            let _lock = DirLock::acquire(&self.locks_dir(), jdir)?;
            let Some(v) = fs::read_link(link.path())
                .ok()
                .and_then(|t| link_targets::version_of_target(scope, &t))
            else {
                continue;
            };
            self.unlink_version_in(&self.version_dir(&v), jdir, scope)?;
        }
        Ok(())
    }

    fn unlink_version(&self, vdir: &Path, jdir: &Path, j: &JobRef) -> Result<(), StoreError> {
        self.unlink_version_in(vdir, jdir, &j.tag.branch.scope)
    }

    fn unlink_version_in(&self, vdir: &Path, jdir: &Path, scope: &Scope) -> Result<(), StoreError> {
        let Some(entries) = entries_if_there(vdir)? else {
            return Ok(());
        };
        for entry in entries {
            if !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                continue;
            }
            let path = entry.path();
            if fs::metadata(&path).is_err() || same_file(&path, &jdir.join(entry.file_name())) {
                gone_is_fine(fs::remove_file(&path))?;
            }
        }
        self.remove_version_if_empty(vdir, scope).map(drop)
    }

    /// Removes the version directory `vdir` when nothing but its `.stamp` is left in it,
    /// then its parents while empty, never leaving the scope. Whether `vdir` is gone.
    pub(crate) fn remove_version_if_empty(
        &self,
        vdir: &Path,
        scope: &Scope,
    ) -> Result<bool, StoreError> {
        let real = match fs::canonicalize(vdir) {
            Ok(real) => real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
            Err(e) => return Err(e.into()),
        };
        let Some(rest) = entries_if_there(&real)? else {
            return Ok(true);
        };
        if rest.iter().any(|e| e.file_name() != ".stamp") {
            return Ok(false);
        }
        for stamp in &rest {
            gone_is_fine(fs::remove_file(stamp.path()))?;
        }
        let stop = fs::canonicalize(self.scope_dir(scope))?;
        if real == stop || fs::remove_dir(&real).is_err() {
            return Ok(false);
        }
        let mut dir = real.parent();
        while let Some(d) = dir.filter(|d| *d != stop) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(true)
    }

    /// Every version of the products tree of `scope`, in name order at each level.
    pub(crate) fn all_versions(&self, scope: &Scope) -> Result<Vec<VersionRef>, StoreError> {
        let products = self.products_dir(scope);
        let mut out = Vec::new();
        for product in Repo::list_entities(&products)? {
            let pdir = products.join(&product);
            for variant in Repo::list_entities(&pdir)? {
                let vdir = pdir.join(&variant);
                for branch in Repo::list_entities(&vdir)? {
                    for version in Repo::list_entities(&vdir.join(&branch))? {
                        out.push(VersionRef {
                            scope: scope.clone(),
                            product: product.clone(),
                            variant: variant.clone(),
                            product_branch: branch.clone(),
                            version,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    // ---- read-only views --------------------------------------------------------------

    /// The level at `path` (`[]` = the products dir itself); 404 when it does not exist.
    pub fn product_level_view(
        &self,
        scope: &Scope,
        path: &[Name],
        acl: &Visibility,
    ) -> Result<ProductLevel, StoreError> {
        Ok(match <&[Name; 3]>::try_from(path) {
            Ok(branch) => ProductLevel::Versions(self.product_versions(scope, branch, acl)?),
            Err(_) => ProductLevel::Names(self.product_level(scope, path, acl)?),
        })
    }

    /// Names of the product tree level below `path` (`[]` = the products dir itself).
    /// 404 when the level does not exist.
    pub fn product_level(
        &self,
        scope: &Scope,
        path: &[Name],
        acl: &Visibility,
    ) -> Result<Vec<String>, StoreError> {
        let mut dir = self.products_dir(scope);
        for seg in path {
            dir.push(seg);
        }
        let url = product_level_url(scope, path);
        if !path.is_empty() && !dir.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(Repo::list_entities(&dir)?
            .into_iter()
            .filter(|n| acl.allows(|| format!("{url}{n}/")))
            .map(|n| n.to_string())
            .collect())
    }

    pub fn product_versions(
        &self,
        scope: &Scope,
        path: &[Name; 3],
        acl: &Visibility,
    ) -> Result<Vec<VersionSummary>, StoreError> {
        let mut out = Vec::new();
        for name in self.product_level(scope, path, acl)? {
            let v = version_ref(
                scope,
                path,
                Name::parse(&name).map_err(|_| StoreError::NotFound)?,
            );
            let vdir = self.version_dir(&v);
            let (mut locked, mut released, mut stable) = (false, false, false);
            for fdir in linked_format_dirs(&vdir) {
                if let (Some(job), Some(tag)) =
                    (fdir.parent(), fdir.parent().and_then(Path::parent))
                {
                    released |= exists(&job.join(".released"));
                    locked |= exists(&tag.join(".locked"));
                    stable |= exists(&tag.join(".stable"));
                }
            }
            out.push(VersionSummary {
                name,
                timestamp: files::timestamp_json(stamp_time(&vdir)),
                locked,
                released,
                stable,
            });
        }
        Ok(out)
    }

    /// Resolves a version segment, an alias included (spec/API.md §4).
    pub fn resolve_version(
        &self,
        scope: &Scope,
        path: &[Name; 3],
        raw: &str,
        alias_ok: bool,
        acl: &Visibility,
    ) -> Result<VersionRef, StoreError> {
        if let (true, Some(alias)) = (alias_ok, Alias::parse(&raw.to_lowercase())) {
            // The readable versions (product_level's filter), in `.stamp` order, kept by
            // stamps (aliases.rs).
            let mut dir = self.products_dir(scope);
            for seg in path {
                dir.push(seg);
            }
            let url = product_level_url(scope, path);
            let name = self.pick_alias(
                &dir,
                alias,
                |n| acl.allows(|| format!("{url}{n}/")),
                |n| {
                    linked_format_dirs(&dir.join(n)).iter().any(|f| {
                        f.parent()
                            .and_then(Path::parent)
                            .is_some_and(|tag| exists(&tag.join(".stable")))
                    })
                },
            )?;
            return Ok(version_ref(scope, path, name));
        }
        let v = version_ref(
            scope,
            path,
            Name::parse(raw).map_err(|_| StoreError::NotFound)?,
        );
        if self.version_dir(&v).is_dir() {
            Ok(v)
        } else {
            Err(StoreError::NotFound)
        }
    }

    pub fn version_formats(
        &self,
        v: &VersionRef,
        acl: &Visibility,
    ) -> Result<Vec<String>, StoreError> {
        let vdir = self.version_dir(v);
        if !vdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(Repo::list_entities(&vdir)?
            .into_iter()
            .filter(|f| {
                acl.allows(|| {
                    FormatRef::Version {
                        version: v.clone(),
                        format: f.clone(),
                    }
                    .url()
                })
            })
            .map(|f| f.to_string())
            .collect())
    }

    pub(super) fn version_tar(
        &self,
        v: &VersionRef,
        acl: &Visibility,
    ) -> Result<TarPlan, StoreError> {
        let vdir = self.version_dir(v);
        let mut members = Vec::new();
        for f in self.version_formats(v, acl)? {
            let Ok(format) = Name::parse(&f) else {
                continue;
            };
            let fref = FormatRef::Version {
                version: v.clone(),
                format,
            };
            let readable = |rel: &str| acl.allows_file(&fref, rel);
            self.push_members(&vdir.join(&f), &format!("{f}/"), &readable, &mut members)?;
        }
        let stamp = sort_time(stamp_time(&vdir));
        Ok(TarPlan::new(v.archive_name(), members, stamp))
    }
}

/// The URL of a level of the products tree: `{scope}/products/` and one `{name}/` per
/// segment of `path` (spec/API.md §3.10).
pub fn product_level_url(scope: &Scope, path: &[Name]) -> String {
    let mut url = format!("{}/products/", scope.url());
    for seg in path {
        url.push_str(seg.as_str());
        url.push('/');
    }
    url
}

fn version_ref(scope: &Scope, path: &[Name; 3], version: Name) -> VersionRef {
    VersionRef {
        scope: scope.clone(),
        product: path[0].clone(),
        variant: path[1].clone(),
        product_branch: path[2].clone(),
        version,
    }
}

/// Resolved format dirs linked from a version dir (dangling links skipped).
fn linked_format_dirs(vdir: &Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = fs::read_dir(vdir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_symlink()))
        .filter_map(|e| fs::canonicalize(e.path()).ok())
        .filter(|p| p.is_dir())
        .collect()
}

/// The entries of `dir`, or `None` when another process removed it first.
fn entries_if_there(dir: &Path) -> Result<Option<Vec<fs::DirEntry>>, StoreError> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(Some(entries.flatten().collect())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// A removal that found nothing to remove: another process got there first.
pub(super) fn gone_is_fine(r: io::Result<()>) -> Result<(), StoreError> {
    match r {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[path = "product_links_tests.rs"]
mod tests;
