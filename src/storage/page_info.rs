//! What the HTML pages show beyond the JSON API (spec/API.md §3.1, §3.6, §3.8–3.10, §9):
//! the home page's user repositories and latest releases (with their icons), format
//! summaries for job and version pages, the version view that resolves and lists in one
//! call, and directory listings for the autoindex.

use super::digests::format_digests;
use super::files::{exists, stamp_time};
use super::link_targets;
use super::visibility::Visibility;
use super::{BlobReader, Repo, StoreError, not_found_if_missing};
use crate::model::{FormatRef, JobRef, Name, RelPath, Scope, VersionRef};
use std::fs;
use std::path::Path;

/// How many product versions the home page lists (spec/API.md §3.1).
const LATEST_RELEASES: usize = 10;

/// A product version on the home page.
#[derive(Debug, Clone)]
pub struct Release {
    pub version: VersionRef,
    /// mtime of the version's `.stamp`.
    pub timestamp: f64,
    /// `/static/{product}.svg` exists: product icons are optional, the page shows only
    /// those the deployment provides.
    pub icon: bool,
}

/// Everything the home page (`/` or `/~{user}/`) shows.
#[derive(Debug, Default)]
pub struct HomeInfo {
    /// Readable user repositories (root page only).
    pub users: Vec<String>,
    /// Whether `branches/` and `products/` are readable.
    pub branches: bool,
    pub products: bool,
    /// Newest first; empty when the setting hides them.
    pub releases: Vec<Release>,
    /// `users/{u}/.disk_usage` (user pages only).
    pub disk_usage: Option<u64>,
}

/// One format on a job or version page.
#[derive(Debug, Clone)]
pub struct FormatSummary {
    pub name: String,
    pub internal: bool,
    pub dirty: bool,
    /// The package repositories the format is.
    pub repos: Repos,
    /// For a product version: the job URL the format comes from.
    pub job_url: Option<String>,
}

/// A product version of a read URL, resolved, with what its JSON answer or its page shows.
pub struct VersionView {
    pub version: VersionRef,
    /// The readable format names (the JSON answer).
    pub formats: Vec<String>,
    /// What each readable format holds (the page).
    pub summaries: Vec<FormatSummary>,
}

/// The package repositories a format is: uploaded indexes (`Release`,
/// `repodata/repomd.xml`), or packages arbor makes the indexes for (docs/packages.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repos {
    pub deb: bool,
    pub rpm: bool,
}

impl Repos {
    fn of(digests: &serde_json::Map<String, serde_json::Value>) -> Repos {
        let holds = |suffix: &str| digests.keys().any(|k| k.ends_with(suffix));
        Repos {
            deb: digests.contains_key("Release") || holds(".deb"),
            rpm: digests.contains_key("repodata/repomd.xml") || holds(".rpm"),
        }
    }
}

/// One entry of a directory listing.
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub dir: bool,
    pub size: u64,
    pub digest: Option<String>,
}

/// A format directory, or a directory below one, as a browser sees it.
pub enum DirPage {
    /// The directory holds an `index.html`: that file is the page (spec/API.md §3.8).
    Index(BlobReader),
    /// The entries, and at the format root the repositories it is.
    Listing(Vec<DirEntry>, Repos),
}

impl Repo {
    /// The home page of `scope`; `static_dir` is `DLREPO_STATIC_DIR`, where product icons
    /// may be.
    pub fn home_info(
        &self,
        scope: &Scope,
        acl: &Visibility,
        with_releases: bool,
        static_dir: Option<&Path>,
    ) -> Result<HomeInfo, StoreError> {
        if !self.scope_exists(scope) {
            return Err(StoreError::NotFound);
        }
        let base = scope.url();
        let mut info = HomeInfo {
            branches: acl.allows(|| format!("{base}/branches/")),
            products: acl.allows(|| format!("{base}/products/")),
            ..HomeInfo::default()
        };
        match scope {
            Scope::Root => {
                info.users = Repo::list_entities(&self.scope_dir(scope).join("users"))?
                    .into_iter()
                    .filter(|u| acl.allows(|| format!("/~{u}/")))
                    .map(|u| u.to_string())
                    .collect();
            }
            Scope::User(_) => {
                info.disk_usage = Some(self.recorded_usage(scope));
            }
        }
        if with_releases {
            info.releases = self.latest_releases(scope, acl)?;
            for rel in &mut info.releases {
                let icon = format!("{}.svg", rel.version.product);
                rel.icon = super::assets::static_file(static_dir, &icon).is_ok();
            }
        }
        Ok(info)
    }

    /// Up to ten readable product versions, newest `.stamp` first.
    fn latest_releases(&self, scope: &Scope, acl: &Visibility) -> Result<Vec<Release>, StoreError> {
        let mut all = Vec::new();
        for version in self.all_versions(scope)? {
            if let Some(timestamp) = stamp_time(&self.version_dir(&version)) {
                all.push(Release {
                    version,
                    timestamp,
                    icon: false,
                });
            }
        }
        all.sort_by(|a, b| b.timestamp.total_cmp(&a.timestamp));
        Ok(all
            .into_iter()
            .filter(|r| acl.allows(|| r.version.url()))
            .take(LATEST_RELEASES)
            .collect())
    }

    /// What the job page says about each of `names`, formats of `j`.
    pub(super) fn format_summaries(&self, j: &JobRef, names: &[String]) -> Vec<FormatSummary> {
        let jdir = self.job_dir(j);
        names
            .iter()
            .map(|name| self.format_summary(&jdir.join(name), name.clone(), None))
            .collect()
    }

    /// `GET {version}/`: resolves the version segment (aliases included) and lists its
    /// readable formats; the page also says what each holds and which job provides it.
    pub fn version_view(
        &self,
        scope: &Scope,
        path: &[Name; 3],
        version: &str,
        acl: &Visibility,
        for_page: bool,
    ) -> Result<VersionView, StoreError> {
        let v = self.resolve_version(scope, path, version, true, acl)?;
        let (formats, summaries) = match for_page {
            true => (Vec::new(), self.version_page(&v, acl)?),
            false => (self.version_formats(&v, acl)?, Vec::new()),
        };
        Ok(VersionView {
            version: v,
            formats,
            summaries,
        })
    }

    /// A version's readable formats, each with the job it comes from when the caller may
    /// read that job (the page links it).
    fn version_page(
        &self,
        v: &VersionRef,
        acl: &Visibility,
    ) -> Result<Vec<FormatSummary>, StoreError> {
        let vdir = self.version_dir(v);
        let names = self.version_formats(v, acl)?;
        Ok(names
            .into_iter()
            .map(|name| {
                let link = vdir.join(&name);
                let job_url = fs::read_link(&link)
                    .ok()
                    .and_then(|t| link_targets::job_of_format_target(&v.scope, &t))
                    .map(|j| j.url())
                    .filter(|url| acl.allows(|| url.clone()));
                self.format_summary(&link, name, job_url)
            })
            .collect())
    }

    fn format_summary(&self, fdir: &Path, name: String, job_url: Option<String>) -> FormatSummary {
        let digests = format_digests(fdir);
        FormatSummary {
            internal: self.is_internal_format(&name),
            dirty: exists(&fdir.join(".dirty")),
            repos: Repos::of(&digests),
            name,
            job_url,
        }
    }

    /// The browser view of a format dir or of a directory below it (`rel`).
    /// Files the caller may not read are left out, and an `index.html` they may not read is
    /// not shown for its directory.
    pub fn dir_page(
        &self,
        f: &FormatRef,
        rel: Option<&RelPath>,
        acl: &Visibility,
    ) -> Result<DirPage, StoreError> {
        let fdir = self.format_dir(f);
        let (dir, prefix) = match rel {
            Some(r) => (fdir.join(r.as_str()), format!("{}/", r.as_str())),
            None => (fdir.clone(), String::new()),
        };
        if !fs::metadata(&dir).map_err(not_found_if_missing)?.is_dir() {
            return Err(StoreError::NotFound);
        }
        let index = dir.join("index.html");
        let index_rel = format!("{prefix}index.html");
        if fs::metadata(&index).is_ok_and(|m| m.is_file()) && acl.allows_file(f, &index_rel) {
            let listed = self.listed(&fdir)?;
            let rel = index_rel;
            let file = BlobReader::open_listed(self, &fdir, &listed, &rel)?;
            return Ok(DirPage::Index(file));
        }
        let digests = format_digests(&fdir);
        let mut entries = Vec::new();
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // The format's own bookkeeping is not an artifact (spec/API.md §1.2).
            if rel.is_none() && (name == ".digests" || name == ".dirty") {
                continue;
            }
            let Ok(meta) = fs::metadata(entry.path()) else {
                continue;
            };
            let url_rel = match meta.is_dir() {
                true => format!("{prefix}{name}/"),
                false => format!("{prefix}{name}"),
            };
            if !acl.allows_file(f, &url_rel) {
                continue;
            }
            let digest = digests
                .get(&format!("{prefix}{name}"))
                .and_then(|d| d.as_str())
                .map(str::to_owned);
            entries.push(DirEntry {
                dir: meta.is_dir(),
                size: if meta.is_dir() { 0 } else { meta.len() },
                digest,
                name,
            });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        let repos = match rel {
            None => Repos::of(&digests),
            Some(_) => Repos::default(),
        };
        Ok(DirPage::Listing(entries, repos))
    }
}
