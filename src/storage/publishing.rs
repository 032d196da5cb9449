//! What the publisher (src/publish/) reads and writes in the tree: a job's snapshot to push,
//! the files to stream, the `.released` flags and the tag's `.publish-status`
//! (spec/LAYOUT.md §3.3–3.4, spec/CONFIG.md §5). No HTTP here.

use super::digests::format_digests;
use super::files::{exists, read_json_map, remove_flag, set_flag};
use super::layout::Scan;
use super::{Repo, StoreError, not_found_if_missing};
use crate::model::{FormatRef, JobRef, RelPath, TagRef};
use serde_json::{Map, Value};
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

/// One job as the publisher sees it, read in one pass.
#[derive(Debug)]
pub struct PublishJob {
    pub job: JobRef,
    pub locked: bool,
    pub internal: bool,
    /// The `.digest` content as written when locking, `""` when missing (compared verbatim
    /// with the target's `digest`, as dlrepo does).
    pub digest: String,
    /// `.metadata` as stored (no `locked`/`name`/`released`): the body of the job PATCH.
    pub metadata: Map<String, Value>,
    /// Formats to send: the internal ones (`DLREPO_INTERNAL_FORMAT_FILTER`) are left out.
    pub formats: Vec<PublishFormat>,
}

#[derive(Debug)]
pub struct PublishFormat {
    pub format: FormatRef,
    /// `(relpath, digest)` from `.digests` (made up for a container format without one).
    pub files: Vec<(RelPath, String)>,
}

/// A local artifact opened for upload: read it in chunks, never whole.
pub struct PublishFile {
    file: File,
    pub len: u64,
}

impl Read for PublishFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.file.read(buf)
    }
}

impl Repo {
    /// The tag's jobs, sorted by name; 404 when the tag is gone.
    pub fn publish_job_list(&self, t: &TagRef) -> Result<Vec<JobRef>, StoreError> {
        let scan = Scan::open(&self.tag_dir(t)).map_err(not_found_if_missing)?;
        Ok(scan
            .entities
            .into_iter()
            .map(|job| JobRef {
                tag: t.clone(),
                job,
            })
            .collect())
    }

    pub fn publish_job(&self, j: &JobRef) -> Result<PublishJob, StoreError> {
        let jdir = self.job_dir(j);
        let scan = Scan::open(&jdir).map_err(not_found_if_missing)?;
        let digest = scan
            .read_at(".digest")
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let mut formats = Vec::new();
        for name in &scan.entities {
            if self.is_internal_format(name.as_str()) {
                continue;
            }
            let mut files = Vec::new();
            for (rel, digest) in format_digests(&jdir.join(name)) {
                // A hand-edited `.digests` could name `../x`: never read outside the format.
                let (Ok(rel), Some(digest)) = (RelPath::parse(&rel), digest.as_str()) else {
                    tracing::warn!(job = %j.url(), file = %rel, "not publishing a bad .digests entry");
                    continue;
                };
                files.push((rel, digest.to_owned()));
            }
            formats.push(PublishFormat {
                format: FormatRef::Job {
                    job: j.clone(),
                    format: name.clone(),
                },
                files,
            });
        }
        Ok(PublishJob {
            job: j.clone(),
            locked: scan.has(".locked"),
            internal: scan.has(".internal"),
            digest,
            metadata: read_json_map(&jdir.join(".metadata")),
            formats,
        })
    }

    /// Opens one artifact of a format for streaming to a target.
    pub fn open_publish_file(
        &self,
        f: &FormatRef,
        rel: &RelPath,
    ) -> Result<PublishFile, StoreError> {
        let file =
            File::open(self.format_dir(f).join(rel.as_str())).map_err(not_found_if_missing)?;
        let len = file.metadata()?.len();
        Ok(PublishFile { file, len })
    }

    /// Writes `{status}\n` to the tag's `.publish-status`, or removes it (`None`).
    pub fn set_publish_status(&self, t: &TagRef, status: Option<&str>) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        let path = tdir.join(".publish-status");
        match status {
            Some(s) => {
                // The tag may have been deleted meanwhile: never re-create its directory.
                if !tdir.is_dir() {
                    return Err(StoreError::NotFound);
                }
                self.write_counted_unchecked(&path, format!("{s}\n").as_bytes())
            }
            None => self.remove_counted(&path),
        }
    }

    pub fn set_job_released(&self, j: &JobRef, on: bool) -> Result<(), StoreError> {
        let jdir = self.job_dir(j);
        if on && !jdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(set_flag(&jdir.join(".released"), on)?)
    }

    /// The end of a successful publish: the tag is released.
    pub fn mark_tag_released(&self, t: &TagRef) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        if !tdir.is_dir() {
            return Err(StoreError::NotFound);
        }
        Ok(set_flag(&tdir.join(".released"), true)?)
    }

    /// The end of an un-publish (or of a publish that left nothing on the targets): no
    /// `.released` on the tag or any job, no `.publish-status`.
    pub fn clear_release(&self, t: &TagRef) -> Result<(), StoreError> {
        let tdir = self.tag_dir(t);
        remove_flag(&tdir.join(".released"))?;
        for job in Repo::list_entities(&tdir)? {
            remove_flag(&tdir.join(&job).join(".released"))?;
        }
        remove_flag(&tdir.join(".publish-status"))?;
        Ok(())
    }

    pub fn tag_released(&self, t: &TagRef) -> bool {
        exists(&self.tag_dir(t).join(".released"))
    }

    /// `DLREPO_PUBLISH_FILTER_CMD {url}` with the tag dir as working directory (no shell, the
    /// server's environment and output); exit status 0 means "publish to this target".
    pub fn run_publish_filter(
        &self,
        t: &TagRef,
        cmd: &Path,
        url: &str,
    ) -> Result<bool, StoreError> {
        let status = Command::new(cmd)
            .arg(url)
            .current_dir(self.tag_dir(t))
            .stdin(Stdio::null())
            .status()
            .map_err(|e| {
                StoreError::Io(std::io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e}", cmd.display()),
                ))
            })?;
        Ok(status.success())
    }
}

/// `login:password` from the `DLREPO_PUBLISH_AUTH` file, stripped and split at the first `:`.
pub fn read_publish_credentials(path: &Path) -> Result<(String, String), StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        StoreError::Io(std::io::Error::new(
            e.kind(),
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    let (login, password) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| StoreError::bad("invalid DLREPO_PUBLISH_AUTH file"))?;
    Ok((login.to_owned(), password.to_owned()))
}
