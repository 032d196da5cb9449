//! Which artifacts hold a given content, as far as one caller may see (spec/API.md Q49).
//! A digest is no secret (every `SHA256SUMS.txt` lists them), so link mode and the dedup
//! `HEAD` may only use content the caller could already download at some URL; otherwise a
//! writer of one branch could copy, and anyone could probe for, another team's files.

use super::files::{self, read_json_map, same_inode};
use super::search::SearchIndex;
use super::visibility::Visibility;
use super::{Repo, StoreError};
use crate::model::{BranchRef, Digest, FormatRef, JobRef, Name, RelPath, Scope};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

/// How many directories and `.digests` files one search for a readable holder may read
/// (see [`Repo::readable_blob`]): about a thousand jobs of two formats.
pub(crate) const HOLDER_SEARCH_STEPS: usize = 4096;

/// How many of the places the search index names are tried first.
const HOLDER_HINTS: usize = 64;

impl Repo {
    /// The size of the blob `d` when the caller may read an artifact whose content it is.
    ///
    /// Only a blob that exists is searched for, so unknown content (most uploads) costs one
    /// `stat`. The search starts at `near`, the upload's own branch: re-uploading a build's
    /// files to a new tag of the same branch is the common case. Subtrees whose URL the
    /// caller cannot read are skipped; that can only make a hit look like a miss, and a miss
    /// costs the client a normal upload, never access.
    ///
    /// The search reads at most [`HOLDER_SEARCH_STEPS`] directories and `.digests` files:
    /// without a bound, the digest of content held only where the caller cannot look (a
    /// deleted job's file in the trash, say) made every such `HEAD` read the whole tree, a
    /// cost any reader could repeat at will. Before it, the places `index` (the search
    /// index) last saw the content are tried: it knows the whole tree, the walk only where
    /// it starts.
    pub fn readable_blob(
        &self,
        d: &Digest,
        near: Option<&JobRef>,
        acl: &Visibility,
        index: Option<&SearchIndex>,
    ) -> Result<Option<u64>, StoreError> {
        let blob = self.blob_path(d);
        let meta = match fs::metadata(&blob) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let visible = match acl {
            Visibility::Everything => true,
            // An orphan (link count 1) is held by no artifact anyone could read.
            Visibility::Only(_) => {
                meta.nlink() > 1
                    && (self.hinted_holder(d, &meta, acl, index)
                        || self.find_readable(d, &meta, near, acl, HOLDER_SEARCH_STEPS)?)
            }
        };
        if !visible {
            return Ok(None);
        }
        files::touch(&blob)?;
        Ok(Some(meta.len()))
    }

    /// Whether one of the places `index` last saw `d` (at most [`HOLDER_HINTS`]) is an
    /// artifact the caller may read, as the walk checks them (each level's URL and the
    /// file's), whose file is the blob itself.
    fn hinted_holder(
        &self,
        d: &Digest,
        blob: &fs::Metadata,
        acl: &Visibility,
        index: Option<&SearchIndex>,
    ) -> bool {
        let Some(index) = index else {
            return false;
        };
        let hints = index.holders(&d.to_string(), HOLDER_HINTS);
        hints.into_iter().any(|(job, format, rel)| {
            let (Ok(format), Ok(rel)) = (Name::parse(&format), RelPath::parse(&rel)) else {
                return false;
            };
            let f = FormatRef::Job {
                job: job.clone(),
                format,
            };
            acl.allows(|| job.tag.branch.url())
                && acl.allows(|| job.tag.url())
                && acl.allows(|| job.url())
                && acl.allows(|| f.url())
                && readable_blob_file(&self.format_dir(&f), &f.url(), rel.as_str(), blob, acl)
        })
    }

    fn find_readable(
        &self,
        d: &Digest,
        blob: &fs::Metadata,
        near: Option<&JobRef>,
        acl: &Visibility,
        steps: usize,
    ) -> Result<bool, StoreError> {
        let want = d.to_string();
        // Each directory listed and each `.digests` read takes one step.
        let left = std::cell::Cell::new(steps);
        let step = || match left.get() {
            0 => false,
            n => {
                left.set(n - 1);
                true
            }
        };
        let near_branch = near.map(|j| &j.tag.branch);
        if !step() {
            return Ok(false);
        }
        // Each repository's branches are listed only when the search gets to them: the
        // upload's own repository, and in it its own branch, come first.
        for scope in self.scopes_near(near_branch.map(|b| &b.scope)) {
            if !step() {
                return Ok(false);
            }
            let mut names = Repo::list_entities(&self.branches_dir(&scope)).unwrap_or_default();
            if let Some(b) = near_branch.filter(|b| b.scope == scope) {
                names.sort_by_key(|n| *n != b.branch);
            }
            for name in names {
                let branch = BranchRef {
                    scope: scope.clone(),
                    branch: name,
                };
                if !acl.allows(|| branch.url()) {
                    continue;
                }
                if !step() {
                    return Ok(false);
                }
                let bdir = self.branch_dir(&branch);
                let mut tags = Repo::list_entities(&bdir).unwrap_or_default();
                // The upload's own tag first (a job re-uploading its own files), then the
                // others from the last name down: names that count up (dates, build numbers)
                // put the latest builds, the likeliest holders, first.
                if let Some(j) = near.filter(|j| j.tag.branch == branch) {
                    tags.reverse();
                    tags.sort_by_key(|t| *t != j.tag.tag);
                }
                for tag in tags {
                    let tdir = bdir.join(&tag);
                    let turl = format!("{}{tag}/", branch.url());
                    if !acl.allows(|| turl.clone()) {
                        continue;
                    }
                    if !step() {
                        return Ok(false);
                    }
                    for job in Repo::list_entities(&tdir).unwrap_or_default() {
                        let jurl = format!("{turl}{job}/");
                        if !acl.allows(|| jurl.clone()) {
                            continue;
                        }
                        let jdir = tdir.join(&job);
                        if !step() {
                            return Ok(false);
                        }
                        for format in Repo::list_entities(&jdir).unwrap_or_default() {
                            let furl = format!("{jurl}{format}/");
                            if !acl.allows(|| furl.clone()) {
                                continue;
                            }
                            if !step() {
                                return Ok(false);
                            }
                            if format_holds(&jdir.join(&format), &furl, &want, blob, acl) {
                                return Ok(true);
                            }
                        }
                    }
                }
            }
        }
        Ok(false)
    }

    /// Every repository, `near` first: the root and the users' (one directory listing).
    fn scopes_near(&self, near: Option<&Scope>) -> Vec<Scope> {
        let mut scopes = vec![Scope::Root];
        for user in Repo::list_entities(&self.root.join("users")).unwrap_or_default() {
            scopes.push(Scope::User(user));
        }
        if let Some(near) = near {
            scopes.sort_by_key(|s| s != near);
        }
        scopes
    }
}

/// Whether the format at `fdir` (URL `furl`) lists a file the caller may read whose content
/// is `want`, and that file is the blob itself: `.digests` could be stale after a crash.
fn format_holds(
    fdir: &std::path::Path,
    furl: &str,
    want: &str,
    blob: &fs::Metadata,
    acl: &Visibility,
) -> bool {
    read_json_map(&fdir.join(".digests"))
        .iter()
        .any(|(rel, value)| {
            value.as_str() == Some(want) && readable_blob_file(fdir, furl, rel, blob, acl)
        })
}

/// Whether the file `rel` of the format at `fdir` (URL `furl`) may be read by the caller
/// and is the blob itself (what a hint or a `.digests` entry says may be stale).
fn readable_blob_file(
    fdir: &std::path::Path,
    furl: &str,
    rel: &str,
    blob: &fs::Metadata,
    acl: &Visibility,
) -> bool {
    acl.allows(|| format!("{furl}{rel}"))
        && fs::metadata(fdir.join(rel)).is_ok_and(|m| same_inode(&m, blob))
}

#[cfg(test)]
#[path = "holders_tests.rs"]
mod tests;
