//! Branches, tags, jobs and formats: their dot-files, listings, state changes and deletes
//! (spec/LAYOUT.md §3, spec/API.md §3).

use super::archive::Member;
use super::files::{
    self, At, DirLock, create_flag, exists, read_json_map, remove_flag, set_flag, sort_time,
    stamp_time, timestamp_json,
};
use super::layout::Scan;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{Alias, BranchRef, FormatRef, JobRef, Name, RelPath, TagRef};
use crate::pyjson;
use serde::Serialize;
use serde_json::{Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Which entities the caller may see: listings and aliases only consider readable URLs
/// (spec/API.md §3). Access control plugs its check in here.
#[derive(Clone)]
pub enum Listing {
    /// No filtering (access control disabled): URLs are not even built.
    Everything,
    Only(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

impl Listing {
    pub fn everything() -> Listing {
        Listing::Everything
    }

    pub fn new(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> Listing {
        Listing::Only(Arc::new(f))
    }

    /// Whether the entity at the URL `url()` builds is visible.
    pub fn allows(&self, url: impl FnOnce() -> String) -> bool {
        match self {
            Listing::Everything => true,
            Listing::Only(f) => f(&url()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct BranchSummary {
    pub name: String,
    pub daily_tags: u64,
    pub released_tags: u64,
    pub locked_tags: u64,
    pub stable_tags: u64,
    #[serde(flatten)]
    pub cleanup_policy: Map<String, Value>,
}

#[derive(Debug, Serialize)]
pub struct TagSummary {
    pub name: String,
    pub timestamp: Value,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub publish_status: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BranchInfo {
    pub name: String,
    pub cleanup_policy: Map<String, Value>,
    pub tags: Vec<TagSummary>,
}

#[derive(Debug, Serialize)]
pub struct TagInfo {
    pub name: String,
    pub released: bool,
    pub locked: bool,
    pub stable: bool,
    pub publish_status: Option<String>,
    pub description: Option<String>,
    /// Each job's metadata followed by `locked`, `name`, `released`.
    pub jobs: Vec<Map<String, Value>>,
}

/// A job as GET shows it: metadata keys first, then the fixed fields (spec/API.md §3.6).
#[derive(Debug)]
pub struct JobInfo(pub Map<String, Value>);

#[derive(Debug, Serialize)]
pub struct FormatInfo {
    pub name: String,
    pub internal: bool,
    pub dirty: bool,
    pub files: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct VersionSummary {
    pub name: String,
    pub timestamp: Value,
    pub locked: bool,
    pub released: bool,
    pub stable: bool,
}

/// Tag state changes from `POST {tag}/`, applied in this order (spec/API.md §3.5).
#[derive(Debug, Default)]
pub struct TagUpdate {
    pub locked: Option<bool>,
    pub stable: Option<bool>,
    pub description: Option<String>,
}

/// What a tar bundle holds; the archive module streams it.
pub struct TarPlan {
    pub prefix: String,
    pub members: Vec<Member>,
    pub sums_mtime: f64,
}

/// The result of resolving an artifact URL.
pub enum Artifact {
    File(super::BlobReader),
    Dir,
    /// `{hex}  {basename}\n` for a `{file}.sha256` URL with no such file on disk.
    Sha256Line(String),
}

const POLICY_KEYS: [&str; 2] = ["max_daily_tags", "max_released_tags"];

impl Repo {
    // ---- branches -------------------------------------------------------------------

    pub fn list_branches(
        &self,
        scope: &crate::model::Scope,
        acl: &Listing,
    ) -> Result<Vec<BranchSummary>, StoreError> {
        let dir = self.branches_dir(scope);
        let mut out = Vec::new();
        for name in Repo::list_entities(&dir)? {
            let b = BranchRef {
                scope: scope.clone(),
                branch: name,
            };
            if !acl.allows(|| b.url()) {
                continue;
            }
            let bdir = self.branch_dir(&b);
            let mut s = BranchSummary {
                name: b.branch.to_string(),
                daily_tags: 0,
                released_tags: 0,
                locked_tags: 0,
                stable_tags: 0,
                cleanup_policy: self.cleanup_policy(&bdir),
            };
            for tag in Repo::list_entities(&bdir)? {
                let tag = Scan::read(&bdir.join(&tag))?;
                if tag.has(".released") {
                    s.released_tags += 1;
                } else {
                    s.daily_tags += 1;
                }
                s.locked_tags += u64::from(tag.has(".locked"));
                s.stable_tags += u64::from(tag.has(".stable"));
            }
            out.push(s);
        }
        Ok(out)
    }

    fn cleanup_policy(&self, branch_dir: &Path) -> Map<String, Value> {
        let mut policy: Map<String, Value> = POLICY_KEYS
            .iter()
            .map(|k| (k.to_string(), 0.into()))
            .collect();
        for (k, v) in read_json_map(&branch_dir.join(".cleanup_policy")) {
            policy.insert(k, v);
        }
        policy
    }

    pub fn branch_exists(&self, b: &BranchRef) -> bool {
        self.branch_dir(b).is_dir()
    }

    pub fn branch_info(
        &self,
        b: &BranchRef,
        released_only: bool,
        acl: &Listing,
    ) -> Result<BranchInfo, StoreError> {
        let bdir = self.branch_dir(b);
        let scan = Scan::open(&bdir).map_err(not_found_if_missing)?;
        let names: Vec<&Name> = scan
            .entities
            .iter()
            .filter(|tag| {
                acl.allows(|| {
                    TagRef {
                        branch: b.clone(),
                        tag: (*tag).clone(),
                    }
                    .url()
                })
            })
            .collect();
        let summarize = |tag: &Name| -> Result<Option<TagSummary>, StoreError> {
            let t = Scan::read(&bdir.join(tag))?;
            let released = t.has(".released");
            if released_only && !released {
                return Ok(None);
            }
            let text = |name: &str| t.has(name).then(|| t.text_at(name)).flatten();
            Ok(Some(TagSummary {
                name: tag.to_string(),
                timestamp: timestamp_json(t.has(".stamp").then(|| t.mtime_at(".stamp")).flatten()),
                released,
                locked: t.has(".locked"),
                stable: t.has(".stable"),
                publish_status: text(".publish-status"),
                description: text(".description"),
            }))
        };
        let tags = parallel_map(&names, |tag| summarize(tag))?
            .into_iter()
            .flatten()
            .collect();
        Ok(BranchInfo {
            name: b.branch.to_string(),
            cleanup_policy: self.cleanup_policy(&bdir),
            tags,
        })
    }

    /// Updates `.cleanup_policy`; values were validated as integers ≥ 0 by the caller.
    pub fn set_cleanup_policy(
        &self,
        b: &BranchRef,
        updates: Vec<(&'static str, u64)>,
    ) -> Result<(), StoreError> {
        let bdir = self.branch_dir(b);
        if !bdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let _lock = DirLock::acquire(&bdir)?;
        let mut policy = self.cleanup_policy(&bdir);
        for (k, v) in updates {
            policy.insert(k.to_owned(), v.into());
        }
        // The file holds exactly the two keys in this order (spec/LAYOUT.md §3.2).
        let ordered: Map<String, Value> = POLICY_KEYS
            .iter()
            .map(|k| (k.to_string(), policy.get(*k).cloned().unwrap_or(0.into())))
            .collect();
        let text = pyjson::to_string(&Value::Object(ordered));
        self.write_counted(&bdir.join(".cleanup_policy"), text.as_bytes())
    }

    pub fn delete_branch(&self, b: &BranchRef) -> Result<(), StoreError> {
        let bdir = self.branch_dir(b);
        if !bdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let tags: Vec<TagRef> = Repo::list_entities(&bdir)?
            .into_iter()
            .map(|tag| TagRef {
                branch: b.clone(),
                tag,
            })
            .collect();
        for t in &tags {
            self.check_tag_deletable(t)?;
        }
        for t in &tags {
            self.delete_tag_unchecked(t)?;
        }
        self.remove_tree(&bdir)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    // ---- tags -----------------------------------------------------------------------

    /// Resolves a tag segment: an alias (when `alias_ok`) picks among the readable tags by
    /// `.stamp` age (spec/API.md §4); any other name must exist as a directory.
    pub fn resolve_tag(
        &self,
        b: &BranchRef,
        raw: &str,
        alias_ok: bool,
        acl: &Listing,
    ) -> Result<TagRef, StoreError> {
        let bdir = self.branch_dir(b);
        if let (true, Some(alias)) = (alias_ok, Alias::parse(&raw.to_lowercase())) {
            let mut candidates = Vec::new();
            for tag in Repo::list_entities(&bdir)? {
                let t = TagRef {
                    branch: b.clone(),
                    tag,
                };
                if acl.allows(|| t.url()) {
                    let dir = self.tag_dir(&t);
                    candidates.push((sort_time(stamp_time(&dir)), t, dir));
                }
            }
            let tag = pick_alias(candidates, alias, |dir| exists(&dir.join(".stable")))
                .ok_or(StoreError::NotFound)?;
            return Ok(tag);
        }
        let t = TagRef {
            branch: b.clone(),
            tag: Name::parse(raw).map_err(|_| StoreError::NotFound)?,
        };
        if self.tag_dir(&t).is_dir() {
            Ok(t)
        } else {
            Err(StoreError::NotFound)
        }
    }

    /// A tag's listing by URL segment: resolves an alias, else reads the named tag directly
    /// (its scan is the existence check).
    pub fn tag_info_by_name(
        &self,
        b: &BranchRef,
        raw: &str,
        acl: &Listing,
    ) -> Result<(TagRef, TagInfo), StoreError> {
        let t = match Alias::parse(&raw.to_lowercase()) {
            Some(_) => self.resolve_tag(b, raw, true, acl)?,
            None => TagRef {
                branch: b.clone(),
                tag: Name::parse(raw).map_err(|_| StoreError::NotFound)?,
            },
        };
        let info = self.tag_info(&t, acl)?;
        Ok((t, info))
    }

    pub fn tag_info(&self, t: &TagRef, acl: &Listing) -> Result<TagInfo, StoreError> {
        let scan = Scan::open(&self.tag_dir(t)).map_err(not_found_if_missing)?;
        let mut jobs = Vec::new();
        for name in &scan.entities {
            let j = JobRef {
                tag: t.clone(),
                job: name.clone(),
            };
            if acl.allows(|| j.url()) {
                jobs.push(job_entry(&j, &scan, &format!("{name}/")));
            }
        }
        let text = |name: &str| scan.has(name).then(|| scan.text_at(name)).flatten();
        Ok(TagInfo {
            name: t.tag.to_string(),
            released: scan.has(".released"),
            locked: scan.has(".locked"),
            stable: scan.has(".stable"),
            publish_status: text(".publish-status"),
            description: text(".description"),
            jobs,
        })
    }

    pub fn update_tag(&self, t: &TagRef, upd: TagUpdate) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        if !tdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        // The description first: the only part the quota can refuse, and a refused update
        // must leave the flags as they were.
        if let Some(desc) = upd.description {
            let desc = desc.trim();
            let path = tdir.join(".description");
            if desc.is_empty() {
                self.remove_counted(&path)?;
            } else {
                self.write_counted(&path, format!("{desc}\n").as_bytes())?;
            }
        }
        if let Some(locked) = upd.locked {
            set_flag(&tdir.join(".locked"), locked)?;
        }
        if let Some(stable) = upd.stable {
            set_flag(&tdir.join(".stable"), stable)?;
        }
        Ok(())
    }

    fn check_tag_deletable(&self, t: &TagRef) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        if exists(&tdir.join(".locked")) {
            return Err(StoreError::bad(format!("Tag {} is locked", t.tag)));
        }
        if exists(&tdir.join(".released")) {
            return Err(StoreError::bad(format!(
                "Tag {} is released, unrelease it first",
                t.tag
            )));
        }
        Ok(())
    }

    pub fn delete_tag(&self, t: &TagRef) -> Result<(), StoreError> {
        if !self.tag_dir(t).is_dir() {
            return Err(StoreError::NotFound);
        }
        self.check_tag_deletable(t)?;
        self.delete_tag_unchecked(t)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    /// Tag cleanup deletes ignore job locks (spec/API.md Q45); the run collects orphans itself.
    pub(crate) fn delete_tag_for_cleanup(&self, t: &TagRef) -> Result<(), StoreError> {
        self.delete_tag_unchecked(t)
    }

    fn delete_tag_unchecked(&self, t: &TagRef) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        for job in Repo::list_entities(&tdir)? {
            self.delete_job(&JobRef {
                tag: t.clone(),
                job,
            })?;
        }
        self.remove_tree(&tdir)
    }

    // ---- jobs -----------------------------------------------------------------------

    pub fn job_exists(&self, j: &JobRef) -> bool {
        self.job_dir(j).is_dir()
    }

    pub fn job_info(&self, j: &JobRef, acl: &Listing) -> Result<JobInfo, StoreError> {
        let jdir = self.job_dir(j);
        let scan = Scan::open(&jdir).map_err(not_found_if_missing)?;
        let mut m = job_entry(j, &scan, "");
        m.insert("internal".into(), scan.has(".internal").into());
        let stamp = scan
            .has(".stamp")
            .then(|| scan.mtime_at(".stamp"))
            .flatten();
        m.insert("timestamp".into(), timestamp_json(stamp));
        let digest = scan.read_at(".digest").unwrap_or_default();
        m.insert("digest".into(), String::from_utf8_lossy(&digest).into());
        let formats: Vec<Value> = scan
            .entities
            .into_iter()
            .filter(|f| {
                acl.allows(|| {
                    FormatRef::Job {
                        job: j.clone(),
                        format: f.clone(),
                    }
                    .url()
                })
            })
            .map(|f| Value::from(f.to_string()))
            .collect();
        m.insert("artifact_formats".into(), formats.into());
        Ok(JobInfo(m))
    }

    /// Creates branch, tag and job dirs as needed, with the tag and job `.stamp`s.
    pub(crate) fn ensure_job(&self, j: &JobRef) -> Result<PathBuf, StoreError> {
        let tdir = self.tag_dir(&j.tag);
        let jdir = tdir.join(&j.job);
        fs::create_dir_all(&jdir)?;
        create_flag(&tdir.join(".stamp"))?;
        create_flag(&jdir.join(".stamp"))?;
        Ok(jdir)
    }

    pub fn set_job_internal(&self, j: &JobRef, internal: bool) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let _lock = DirLock::acquire(&jdir)?;
        if exists(&jdir.join(".locked")) {
            return Err(StoreError::bad("Job is locked"));
        }
        set_flag(&jdir.join(".internal"), internal)?;
        Ok(())
    }

    /// Locks a job: refreshes its product links, computes `.digest` and creates `.locked`
    /// (spec/API.md §3.6, spec/LAYOUT.md §3.4). Locking a locked job does nothing.
    /// `may_link` says which product versions the caller may link the job into (Q50).
    pub fn lock_job(&self, j: &JobRef, may_link: &Listing) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let _lock = DirLock::acquire(&jdir)?;
        if exists(&jdir.join(".locked")) {
            return Ok(());
        }
        for f in Repo::list_entities(&jdir)? {
            if exists(&jdir.join(&f).join(".dirty")) {
                return Err(StoreError::bad("Job has dirty formats"));
            }
        }
        self.add_metadata_locked(j, &Map::new(), may_link)?;
        let digest = self.job_digest(&jdir)?;
        self.write_counted(&jdir.join(".digest"), digest.as_bytes())?;
        create_flag(&jdir.join(".locked"))?;
        Ok(())
    }

    fn job_digest(&self, jdir: &Path) -> Result<String, StoreError> {
        use sha2::{Digest as _, Sha256};
        let mut d = Map::new();
        for f in Repo::list_entities(jdir)? {
            if self.is_internal_format(f.as_str()) {
                continue;
            }
            let fdir = jdir.join(&f);
            let value = if f.as_str() == "container" {
                container_manifest_digest(&fdir).ok_or(StoreError::NotFound)?
            } else {
                let bytes = fs::read(fdir.join(".digests")).map_err(not_found_if_missing)?;
                format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
            };
            d.insert(f.to_string(), value.into());
        }
        let meta = fs::read(jdir.join(".metadata")).map_err(not_found_if_missing)?;
        d.insert(
            ".metadata".into(),
            format!("sha256:{}", hex::encode(Sha256::digest(&meta))).into(),
        );
        let text = pyjson::to_string_sorted(&Value::Object(d));
        Ok(hex::encode(Sha256::digest(text.as_bytes())))
    }

    pub fn unlock_job(&self, j: &JobRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        remove_flag(&jdir.join(".locked"))?;
        Ok(())
    }

    /// Metadata PATCH: creates the job when missing (spec/API.md Q15).
    pub fn patch_metadata(
        &self,
        j: &JobRef,
        new: &Map<String, Value>,
        may_link: &Listing,
    ) -> Result<(), StoreError> {
        // Checked again under the lock; this first check keeps a refusal from creating
        // the job.
        self.check_product_access(j, new, may_link)?;
        let jdir = self.ensure_job(j)?;
        let _lock = DirLock::acquire(&jdir)?;
        self.add_metadata_locked(j, new, may_link)
    }

    pub fn delete_job(&self, j: &JobRef) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        // Exclusive with upload commits (they hold it shared): one that is linking a file
        // finishes first, one that waits finds the job gone (404), and none answers 201
        // for a file that went away with the job.
        let _job = DirLock::acquire(&jdir)?;
        self.cleanup_product_tree(j)?;
        self.remove_tree(&jdir)?;
        self.request_gc(super::GcKind::Orphans);
        Ok(())
    }

    /// `{product}-{product_variant}-v{version}` when the metadata names them, else `{job}-{tag}`.
    fn job_archive_name(&self, j: &JobRef) -> String {
        let meta = read_json_map(&self.job_dir(j).join(".metadata"));
        let get = |k: &str| meta.get(k).and_then(Value::as_str);
        match (get("product"), get("product_variant"), get("version")) {
            (Some(p), Some(v), Some(ver)) => format!("{p}-{v}-v{ver}"),
            _ => j.default_archive_name(),
        }
    }

    pub fn job_tar(&self, j: &JobRef, acl: &Listing) -> Result<TarPlan, StoreError> {
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
                self.push_members(&jdir.join(&f), &format!("{f}/"), &mut members);
            }
        }
        Ok(TarPlan {
            prefix: self.job_archive_name(j),
            members,
            sums_mtime: sort_time(stamp_time(&jdir)),
        })
    }

    pub(crate) fn push_members(&self, fdir: &Path, prefix: &str, out: &mut Vec<Member>) {
        for (rel, digest) in format_digests(fdir) {
            if let Some(digest) = digest.as_str() {
                out.push(Member {
                    name: format!("{prefix}{rel}"),
                    path: fdir.join(&rel),
                    digest: digest.to_owned(),
                });
            }
        }
    }

    // ---- formats --------------------------------------------------------------------

    pub fn format_exists(&self, f: &FormatRef) -> bool {
        self.format_dir(f).is_dir()
    }

    pub fn format_dirty(&self, f: &FormatRef) -> bool {
        exists(&self.format_dir(f).join(".dirty"))
    }

    pub fn format_info(&self, f: &FormatRef) -> Result<FormatInfo, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(FormatInfo {
            name: f.name().to_string(),
            internal: self.is_internal_format(f.name().as_str()),
            dirty: exists(&fdir.join(".dirty")),
            files: format_digests(&fdir).keys().cloned().collect(),
        })
    }

    /// The only file of a format, for the `{format}` (no slash) redirect; `None` when the
    /// format holds zero or several files, or just an `index.html`.
    pub fn format_single_file(&self, f: &FormatRef) -> Result<Option<String>, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let digests = format_digests(&fdir);
        Ok(match digests.keys().next() {
            Some(only) if digests.len() == 1 && only != "index.html" => Some(only.clone()),
            _ => None,
        })
    }

    /// `{hex}  {relpath}\n` for every sha256 entry, sorted by relpath.
    pub fn format_sha256(&self, f: &FormatRef) -> Result<String, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let mut digests: Vec<(String, Value)> = format_digests(&fdir).into_iter().collect();
        digests.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        for (rel, d) in digests {
            if let Some(hex) = d.as_str().and_then(|d| d.strip_prefix("sha256:")) {
                out.push_str(&format!("{hex}  {rel}\n"));
            }
        }
        Ok(out)
    }

    pub fn format_tar(&self, f: &FormatRef) -> Result<TarPlan, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let job_name = match f {
            FormatRef::Job { job, .. } => self.job_archive_name(job),
            FormatRef::Version { version, .. } => version.archive_name(),
        };
        let mut members = Vec::new();
        self.push_members(&fdir, "", &mut members);
        let sums_mtime = fs::metadata(fdir.join(".digests"))
            .or_else(|_| fs::metadata(&fdir))
            .map(|m| files::mtime_of(&m))?;
        Ok(TarPlan {
            prefix: format!("{job_name}-{}", f.name()),
            members,
            sums_mtime,
        })
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
        let _job = DirLock::shared(&jdir)?;
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

    pub fn open_artifact(&self, f: &FormatRef, rel: &RelPath) -> Result<Artifact, StoreError> {
        let fdir = self.format_dir(f);
        if !fdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        let path = fdir.join(rel.as_str());
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => Ok(Artifact::Dir),
            Ok(_) => {
                let digests = format_digests(&fdir);
                let digest = digests
                    .get(rel.as_str())
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                Ok(Artifact::File(super::BlobReader::open(
                    self, &path, digest,
                )?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(stripped) = rel.as_str().strip_suffix(".sha256") else {
                    return Err(StoreError::NotFound);
                };
                let digests = format_digests(&fdir);
                let hex = digests
                    .get(stripped)
                    .and_then(Value::as_str)
                    .and_then(|d| d.strip_prefix("sha256:"))
                    .ok_or(StoreError::NotFound)?;
                let base = stripped.rsplit('/').next().unwrap_or(stripped);
                Ok(Artifact::Sha256Line(format!("{hex}  {base}\n")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a directory tree so that no reader sees it half-deleted: it is first renamed
    /// into `.uploads/` (atomic), then removed from there.
    /// In a user repository every file of the tree, dot-files included, is given back, under
    /// the user's lock from the rename to the count, so that no write lands in between.
    ///
    /// The trash takes no lease (making one could fail on a full disk, where deleting is
    /// what frees space): the collector may remove it too, which only does the same work.
    pub(crate) fn remove_tree(&self, dir: &Path) -> Result<(), StoreError> {
        self.links.forget_all();
        let uploads = self.uploads_dir();
        fs::create_dir_all(&uploads).at("create", &uploads)?;
        let trash = uploads.join(format!("{}.deleting", files::random_hex()));
        let mut usage = self.usage_at(dir)?;
        // Counted before it moves: every write of the user holds the lock held here.
        let bytes = usage.as_ref().map(|_| files::tree_bytes(dir));
        fs::rename(dir, &trash).map_err(not_found_if_missing)?;
        let gone = || match fs::remove_dir_all(&trash) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StoreError::at("remove", &trash, e))
            }
            _ => Ok(()),
        };
        if let (Some(u), Some(bytes)) = (usage.as_mut(), bytes) {
            u.adjust(bytes, 0);
            if let Err(e) = u.save(self) {
                // On a full disk the count can be written once the tree is gone. If it
                // still cannot, the delete stands and the next full cleanup recounts.
                gone()?;
                if let Err(again) = u.save(self) {
                    tracing::warn!(error = %again, first = %e, "deleted, but the user's disk usage could not be saved");
                }
                return Ok(());
            }
        }
        drop(usage);
        gone()
    }
}

/// A job as the tag listing shows it: metadata keys sorted, then `locked`, `name` and
/// `released` (appended, or overwritten in place). `prefix` locates the job in `dir`.
fn job_entry(j: &JobRef, dir: &Scan, prefix: &str) -> Map<String, Value> {
    let mut meta = dir
        .read_at(&format!("{prefix}.metadata"))
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    meta.sort_keys();
    let flag = |name: &str| dir.exists_at(&format!("{prefix}{name}"));
    meta.insert("locked".into(), flag(".locked").into());
    meta.insert("name".into(), j.job.to_string().into());
    meta.insert("released".into(), flag(".released").into());
    meta
}

/// Maps `f` over `items` on a few threads when there are many: listing a branch of
/// thousands of tags is dominated by per-tag syscalls, which run in parallel fine.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<R, StoreError> + Sync,
) -> Result<Vec<R>, StoreError> {
    const SERIAL_BELOW: usize = 128;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    if threads < 2 || items.len() < SERIAL_BELOW {
        return items.iter().map(&f).collect();
    }
    let per = items.len().div_ceil(threads);
    let parts: Vec<Result<Vec<R>, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(per)
            .map(|chunk| scope.spawn(|| chunk.iter().map(&f).collect::<Result<Vec<R>, _>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(StoreError::Io(std::io::Error::other(
                        "listing thread panicked",
                    )))
                })
            })
            .collect()
    });
    let mut out = Vec::with_capacity(items.len());
    for part in parts {
        out.extend(part?);
    }
    Ok(out)
}

/// Picks `latest` (newest), `stable` (newest with the flag) or `oldstable` (second newest with
/// it). Candidates arrive in name order; the sort is stable, so equal times keep that order.
pub(crate) fn pick_alias<T>(
    mut candidates: Vec<(f64, T, PathBuf)>,
    alias: Alias,
    is_stable: impl Fn(&Path) -> bool,
) -> Option<T> {
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut stable = candidates.into_iter().filter(|c| match alias {
        Alias::Latest => true,
        _ => is_stable(&c.2),
    });
    let pick = match alias {
        Alias::OldStable => stable.nth(1),
        _ => stable.next(),
    };
    pick.map(|c| c.1)
}

/// The `.digests` map of a format, or for a container format without one, a map made up
/// from its files (spec/LAYOUT.md §3.5). Keys come out sorted.
pub(crate) fn format_digests(fdir: &Path) -> Map<String, Value> {
    let path = fdir.join(".digests");
    if exists(&path) || fdir.file_name().is_none_or(|n| n != "container") {
        let mut m = read_json_map(&path);
        m.sort_keys();
        return m;
    }
    let mut m = Map::new();
    for entry in walkdir::WalkDir::new(fdir)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(fdir) else {
            continue;
        };
        let Some(rel) = rel.to_str() else { continue };
        if rel == ".digests" || rel == ".dirty" {
            continue;
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        m.insert(rel.to_owned(), format!("sha256:{base}").into());
    }
    m.sort_keys();
    m
}

/// `{algo}:{hex}` of the first manifest under `container/manifests/*/*/*`.
fn container_manifest_digest(fdir: &Path) -> Option<String> {
    super::registry::container_layout::top_manifest(fdir).map(|(_, digest)| digest)
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => files::same_inode(&x, &y),
        _ => false,
    }
}
