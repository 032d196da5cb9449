//! `arbor fsck`: checks that the tree is what the rest of arbor assumes (every artifact a
//! hard link of a blob whose content hashes to its name, `.digests` entries matching the
//! files and listing all of them, product links resolving, no stray temp files, each user's
//! `.disk_usage` equal to a recount of the files) and, with `--repair`, fixes what can be
//! fixed without losing anything.

use super::files::{self, exists, hash_file, same_inode};
use super::layout::Scan;
use super::{Repo, StoreError, digests::format_digests};
use crate::model::{Algo, BranchRef, Digest, JobRef, Scope, TagRef, VersionRef};
use serde_json::Map;
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What a check found; `repaired` says whether `--repair` fixed it.
#[derive(Debug)]
pub struct Finding {
    pub path: PathBuf,
    pub problem: String,
    pub repaired: bool,
}

#[derive(Debug, Default)]
pub struct FsckReport {
    pub findings: Vec<Finding>,
    pub blobs: u64,
    pub files: u64,
}

impl FsckReport {
    /// Healthy once every finding has been repaired.
    pub fn healthy(&self) -> bool {
        self.findings.iter().all(|f| f.repaired)
    }

    fn note(&mut self, path: &Path, problem: impl Into<String>, repaired: bool) {
        self.findings.push(Finding {
            path: path.to_path_buf(),
            problem: problem.into(),
            repaired,
        });
    }
}

impl Repo {
    pub fn fsck(&self, repair: bool) -> Result<FsckReport, StoreError> {
        let mut report = FsckReport::default();
        if repair {
            // What a dead metadata write left is finished first, as a start would.
            self.finish_relinks();
        }
        // Writes a dead server left (and, after a repair, those it could not finish): one
        // finding each, in place of their jobs' product-link findings.
        let dead = self.dead_relinks();
        let cut_short: HashSet<PathBuf> = dead.iter().map(|(_, j)| self.job_dir(j)).collect();
        for (record, j) in &dead {
            let what = format!(
                "metadata write of {} cut short: a server start, gc or --repair links it again",
                j.url()
            );
            report.note(record, what, false);
        }
        self.check_blobs(repair, &mut report)?;
        let mut scopes = vec![Scope::Root];
        for user in Repo::list_entities(&self.root.join("users"))? {
            scopes.push(Scope::User(user));
        }
        for scope in &scopes {
            let linked = self.check_formats(scope, &cut_short, repair, &mut report)?;
            self.check_products(scope, &linked, repair, &mut report)?;
        }
        let records: HashSet<PathBuf> = dead.into_iter().map(|(record, _)| record).collect();
        self.check_uploads(&records, repair, &mut report)?;
        // Last, so that it counts what the repairs above left.
        for scope in &scopes {
            self.check_usage(scope, repair, &mut report)?;
        }
        Ok(report)
    }

    /// A user's `.disk_usage` must equal a recount of the files (spec/API.md Q40): a crash
    /// between a write and its count, or files changed by hand, make them differ.
    fn check_usage(
        &self,
        scope: &Scope,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), StoreError> {
        let Some((recorded, on_disk)) = self.recount_usage(scope, repair)? else {
            return Ok(());
        };
        if recorded != on_disk {
            report.note(
                &self.scope_dir(scope).join(".disk_usage"),
                format!("says {recorded} bytes, the files hold {on_disk}"),
                repair,
            );
        }
        Ok(())
    }

    /// Every blob's content hashes to its name. A corrupt blob is moved out of `.blobs/`
    /// on repair, so that no new upload is deduplicated onto bad content.
    fn check_blobs(&self, repair: bool, report: &mut FsckReport) -> Result<(), StoreError> {
        let blobs = self.root.join(".blobs");
        for entry in walkdir::WalkDir::new(&blobs)
            .min_depth(1)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            report.blobs += 1;
            let path = entry.path();
            let rel = path
                .strip_prefix(&blobs)
                .ok()
                .and_then(Path::to_str)
                .unwrap_or("");
            let parts: Vec<&str> = rel.split('/').collect();
            let digest = match parts.as_slice() {
                [algo, xx, hex] if hex.starts_with(xx) => {
                    Digest::parse(Some(&format!("{algo}:{hex}"))).ok()
                }
                _ => None,
            };
            let Some(digest) = digest else {
                report.note(path, "not a blob name (.blobs/{algo}/{xx}/{hex})", false);
                continue;
            };
            if hash_file(digest.algo(), path)? != digest.hex() {
                let mut fixed = false;
                if repair {
                    let dest = self
                        .uploads_dir()
                        .join(format!("{}.corrupt", files::random_hex()));
                    files::create_dirs(&self.uploads_dir())?;
                    fs::rename(path, dest)?;
                    fixed = true;
                }
                let links = entry.metadata().map(|m| m.nlink()).unwrap_or(1);
                report.note(
                    path,
                    format!(
                        "content does not match its name ({} links to it hold bad data)",
                        links - 1
                    ),
                    fixed,
                );
            }
        }
        Ok(())
    }

    /// Checks every job's formats and product link; returns the version directories the
    /// jobs' `.product` links lead to.
    fn check_formats(
        &self,
        scope: &Scope,
        cut_short: &HashSet<PathBuf>,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<HashSet<PathBuf>, StoreError> {
        let branches = self.branches_dir(scope);
        let mut linked = HashSet::new();
        for b in Repo::list_entities(&branches)? {
            for t in Repo::list_entities(&branches.join(&b))? {
                for j in Repo::list_entities(&branches.join(&b).join(&t))? {
                    let jdir = branches.join(&b).join(&t).join(&j);
                    let job = JobRef {
                        tag: TagRef {
                            branch: BranchRef {
                                scope: scope.clone(),
                                branch: b.clone(),
                            },
                            tag: t.clone(),
                        },
                        job: j.clone(),
                    };
                    if !cut_short.contains(&jdir) {
                        self.check_product_link(&job, &jdir, repair, report)?;
                    }
                    if let Ok(vdir) = fs::canonicalize(jdir.join(".product")) {
                        linked.insert(vdir);
                    }
                    for f in Scan::read(&jdir)?.entities {
                        self.check_format(&jdir.join(&f), repair, report)?;
                    }
                }
            }
        }
        Ok(linked)
    }

    /// A job's `.product` must lead to the version its `.metadata` names, or be absent
    /// when it names none. A crash in the middle of setting the metadata (the old links
    /// removed, the new ones not made yet) leaves them apart; repair makes the links again
    /// from `.metadata`, as setting it again would.
    fn check_product_link(
        &self,
        j: &JobRef,
        jdir: &Path,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), StoreError> {
        let product = jdir.join(".product");
        // What `.metadata` names, and whether `.product` leads there.
        let look = || -> Result<(Option<VersionRef>, bool, Option<PathBuf>), StoreError> {
            let named = self.merged_metadata(j, &Map::new())?.1;
            let has_link = fs::symlink_metadata(&product).is_ok();
            let leads_to = fs::canonicalize(&product).ok();
            Ok((named, has_link, leads_to))
        };
        let agree = |named: &Option<VersionRef>, has_link: bool, leads_to: &Option<PathBuf>| match (
            named, leads_to,
        ) {
            (None, None) => !has_link,
            (Some(v), Some(dir)) => files::same_file(&self.version_dir(v), dir),
            _ => false,
        };
        let Ok((named, has_link, leads_to)) = look() else {
            // Not this check's to judge: nothing is changed after metadata it cannot read.
            if fs::symlink_metadata(&product).is_ok() {
                report.note(
                    &product,
                    "product link of a job whose .metadata is unusable",
                    false,
                );
            }
            return Ok(());
        };
        if agree(&named, has_link, &leads_to) {
            return Ok(());
        }
        let mut repaired = false;
        if repair {
            let _lock = files::DirLock::acquire(&self.locks_dir(), jdir)?;
            // Looked at again under the lock: a metadata write may have finished meanwhile.
            match look() {
                Ok((named, has_link, leads_to)) if agree(&named, has_link, &leads_to) => {
                    repaired = true;
                }
                Ok(_) => repaired = self.relink_locked(j)?,
                Err(_) => {}
            }
        }
        let problem = match (&named, has_link && leads_to.is_none()) {
            (_, true) => "dangling product link".to_owned(),
            (Some(v), false) => format!("not linked into {}, which its .metadata names", v.url()),
            (None, false) => "linked into a product its .metadata does not name".to_owned(),
        };
        report.note(&product, problem, repaired);
        Ok(())
    }

    fn check_format(
        &self,
        fdir: &Path,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), StoreError> {
        // The same lock as uploads: a file linked but not yet listed is never seen here.
        let _lock = files::DirLock::acquire(&self.locks_dir(), fdir)?;
        let digests_path = fdir.join(".digests");
        let has_digests = exists(&digests_path);
        let digests = format_digests(fdir);
        let mut kept = files::read_json_map_to_update(&digests_path)?;
        let mut changed = false;
        for (rel, value) in &digests {
            let path = fdir.join(rel);
            report.files += 1;
            let Ok(meta) = fs::metadata(&path) else {
                if repair && has_digests {
                    kept.remove(rel);
                    changed = true;
                }
                report.note(
                    &path,
                    "listed in .digests but missing",
                    repair && has_digests,
                );
                continue;
            };
            let Some(digest) = value.as_str().and_then(|d| Digest::parse(Some(d)).ok()) else {
                report.note(&path, format!("unusable digest {value}"), false);
                continue;
            };
            let blob = self.blob_path(&digest);
            if fs::metadata(&blob).is_ok_and(|b| same_inode(&b, &meta)) {
                continue;
            }
            // Not a link of its blob: fine to fix only when the content is right.
            let actual = hash_file(digest.algo(), &path)?;
            if actual != digest.hex() {
                // What a commit that did not finish leaves (settle.rs): the file is the
                // blob of what it holds, `.digests` still names what it replaced.
                let now = format!("{}:{actual}", digest.algo().name());
                let newer = has_digests && self.is_blob_of(&now, &meta);
                // A locked job's `.digest` was made from `.digests` as it is.
                let frozen = self.frozen_format(fdir);
                if repair && newer && !frozen {
                    kept.insert(rel.clone(), serde_json::Value::String(now.clone()));
                    changed = true;
                }
                let problem = match (newer, frozen) {
                    (true, false) => format!(
                        "content does not match {digest}: it is the blob of {now}, left by a \
                         commit that did not finish"
                    ),
                    (true, true) => format!(
                        "content does not match {digest}: it is the blob of {now}, left by a \
                         commit that did not finish; the job is locked: unlock it to repair"
                    ),
                    (false, _) => format!("content does not match {digest}"),
                };
                report.note(&path, problem, repair && newer && !frozen);
                continue;
            }
            if repair {
                self.relink(&path, &digest)?;
            }
            report.note(&path, "not a hard link of its blob", repair);
        }
        // A container pushed through the registry has no `.digests`: its file names are its
        // digests. Any other format lists every file there.
        if has_digests || fdir.file_name().is_none_or(|n| n != "container") {
            changed |= self.check_unlisted(fdir, &mut kept, repair, report)?;
        }
        if changed {
            files::write_json_sorted(&self.uploads_dir(), &digests_path, &kept)?;
            self.links.forget_all();
        }
        Ok(())
    }

    /// Files in a format that `.digests` does not list: the API does not show them and
    /// tars leave them out. Repair adds them, as a post-process run would (spec/API.md §7),
    /// unless the job is locked: that would change a frozen job behind its digest. Returns
    /// whether `digests` changed.
    fn check_unlisted(
        &self,
        fdir: &Path,
        digests: &mut serde_json::Map<String, serde_json::Value>,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<bool, StoreError> {
        let locked = fdir.parent().is_some_and(|j| exists(&j.join(".locked")));
        let mut changed = false;
        for entry in walkdir::WalkDir::new(fdir)
            .min_depth(1)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
        {
            let Some(rel) = entry.path().strip_prefix(fdir).ok().and_then(Path::to_str) else {
                report.note(entry.path(), "file name is not UTF-8", false);
                continue;
            };
            if rel == ".digests" || rel == ".dirty" || digests.contains_key(rel) {
                continue;
            }
            report.files += 1;
            if !repair || locked {
                let why = if locked {
                    "not listed in .digests (job locked: remove the file, or unlock the job and repair)"
                } else {
                    "not listed in .digests"
                };
                report.note(entry.path(), why, false);
                continue;
            }
            let digest = Digest::sha256_of_hex(hash_file(Algo::Sha256, entry.path())?);
            self.relink(entry.path(), &digest)?;
            digests.insert(rel.to_owned(), digest.to_string().into());
            changed = true;
            report.note(entry.path(), "not listed in .digests: added", true);
        }
        Ok(changed)
    }

    /// Repairs a file into a link of its blob (rare: a scratch directory each time).
    fn relink(&self, path: &Path, digest: &Digest) -> Result<(), StoreError> {
        let scratch = files::TempDir::create(&self.uploads_dir(), "fsck")?;
        self.link_to_blob(path, digest, &scratch.path)
    }

    /// Product links must resolve to format directories, and a version must hold some:
    /// one that holds none and no job links to (left by an interrupted write, or a delete
    /// that raced one) is listed all the same and could be picked by `latest`. A version
    /// made in the last `DLREPO_ORPHAN_BLOB_LIFETIME` may be a link being made right now,
    /// and is left alone.
    fn check_products(
        &self,
        scope: &Scope,
        linked: &HashSet<PathBuf>,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), StoreError> {
        let settled = self.uploads_old(std::time::SystemTime::now());
        for v in self.all_versions(scope)? {
            let vdir = self.version_dir(&v);
            let (Ok(real), Ok(meta)) = (fs::canonicalize(&vdir), fs::metadata(&vdir)) else {
                continue;
            };
            let holds_formats = fs::read_dir(&vdir)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| e.file_type().is_ok_and(|t| t.is_symlink()));
            if holds_formats || linked.contains(&real) || !settled(&meta) {
                continue;
            }
            let mut repaired = false;
            if repair {
                // Only `.stamp` in it, looked at again right before it goes.
                repaired = self.remove_version_if_empty(&real, scope)?;
            }
            report.note(&vdir, "empty product version no job links to", repaired);
        }
        let products = self.products_dir(scope);
        for entry in walkdir::WalkDir::new(&products)
            .min_depth(5)
            .max_depth(5)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.path_is_symlink())
        {
            if fs::metadata(entry.path()).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            if repair {
                fs::remove_file(entry.path())?;
            }
            report.note(entry.path(), "product link to a missing format", repair);
        }
        Ok(())
    }

    /// Anything in `.uploads/` the collector would remove (old, and used by no request) is
    /// left over from a crash or an abandoned upload.
    fn check_uploads(
        &self,
        reported: &HashSet<PathBuf>,
        repair: bool,
        report: &mut FsckReport,
    ) -> Result<(), StoreError> {
        let stale = self.uploads_old(std::time::SystemTime::now());
        let uploads = self.uploads_dir();
        for entry in fs::read_dir(&uploads).into_iter().flatten().flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if !stale(&m) || super::gc::kept_by_session(&uploads, &entry.file_name(), &stale) {
                continue;
            }
            // Reported as what they are, above.
            if reported.contains(&entry.path()) {
                continue;
            }
            let Some(_claim) = files::Claim::take(&entry.path()) else {
                continue;
            };
            if repair {
                if m.is_dir() {
                    fs::remove_dir_all(entry.path())?;
                } else {
                    fs::remove_file(entry.path())?;
                }
            }
            report.note(&entry.path(), "stray temporary file", repair);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::storage::Visibility;
    use crate::storage::fixture::{self, TestRepo};
    use std::fs;
    use std::time::{Duration, SystemTime};

    /// What a crash while setting a job's product metadata leaves (the old links removed,
    /// `.metadata` not yet, or the other way round), and what a delete racing a write
    /// leaves (an empty version): `fsck` reports them, `--repair` makes the links again
    /// from `.metadata` and removes the empty version.
    #[test]
    fn product_links_apart_from_the_metadata_are_found_and_made_again() {
        let repo = TestRepo::new();
        let j = fixture::main_job("t", "j");
        fixture::upload(&repo, &j, "fmt", "a.txt", b"a");
        let meta: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"product": "p", "product_variant": "v", "product_branch": "pb", "version": "1"}"#,
        )
        .unwrap();
        repo.patch_metadata(&j, &meta, &Visibility::everything())
            .unwrap();
        assert!(repo.fsck(false).unwrap().healthy());
        let version = repo.products_dir(&j.tag.branch.scope).join("p/v/pb/1");

        // The old links gone, `.metadata` unchanged.
        repo.cleanup_product_tree(&j).unwrap();
        assert!(!version.exists());
        assert!(!repo.fsck(false).unwrap().healthy());
        assert!(repo.fsck(true).unwrap().healthy());
        assert!(version.join("fmt").is_dir());
        assert!(repo.fsck(false).unwrap().healthy());

        // An empty version no job links to, older than the collector's lifetime.
        let empty = repo.products_dir(&j.tag.branch.scope).join("p/v/pb/2");
        fs::create_dir_all(&empty).unwrap();
        fs::write(empty.join(".stamp"), b"").unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(86_400);
        fs::File::open(&empty)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let found = repo.fsck(false).unwrap();
        assert!(!found.healthy(), "{:?}", found.findings);
        assert!(repo.fsck(true).unwrap().healthy());
        assert!(!empty.exists() && version.is_dir());
    }
}
