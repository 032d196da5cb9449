//! Publishing: pushes a released tag to every `DLREPO_PUBLISH_URL` server, and deletes it
//! from them when it is un-released, step by step as spec/CONFIG.md §5 describes. Runs in
//! the background on a blocking thread; progress and errors go to the tag's
//! `.publish-status`. Owns no files: the tree is read and flagged through `Repo`.

mod client;

use crate::config::Config;
use crate::model::TagRef;
use crate::state::AppState;
use crate::storage::publishing::{PublishFormat, read_publish_credentials};
use crate::storage::{Repo, StoreError};
use client::{Body, Failure, Reply, Target};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::Duration;

pub use client::ATTEMPTS;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// `421 DLREPO_PUBLISH_URL is undefined` (spec/API.md §3.5).
    #[error("DLREPO_PUBLISH_URL is undefined")]
    UrlUndefined,
    /// `421 DLREPO_PUBLISH_AUTH is undefined`.
    #[error("DLREPO_PUBLISH_AUTH is undefined")]
    AuthUndefined,
    /// The tag is gone (404) or the tree cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The publishing settings, checked: both the targets and the credentials file are set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `DLREPO_PUBLISH_URL` verbatim: split at `,` for the targets, quoted whole in the
    /// `published to` status (spec/CONFIG.md Q43).
    pub urls: String,
    pub auth_file: PathBuf,
    pub filter_cmd: Option<PathBuf>,
    pub timeout: Duration,
    pub max_requests: usize,
}

impl Settings {
    pub fn from_config(config: &Config) -> Result<Settings, PublishError> {
        let urls = config
            .publish_url
            .clone()
            .ok_or(PublishError::UrlUndefined)?;
        let auth_file = config
            .publish_auth
            .clone()
            .ok_or(PublishError::AuthUndefined)?;
        Ok(Settings {
            urls,
            auth_file,
            filter_cmd: config.publish_filter_cmd.clone(),
            timeout: Duration::from_secs(config.publish_timeout),
            max_requests: config.publish_max_requests,
        })
    }
}

/// `POST {tag}/ {"tag": {"released": ...}}`: checks the settings and the tag, then publishes
/// (or un-publishes) in the background and returns at once. The HTTP layer answers 421 with
/// the error text for [`PublishError::UrlUndefined`] and [`PublishError::AuthUndefined`].
pub async fn start_release(
    state: &AppState,
    tag: TagRef,
    released: bool,
) -> Result<(), PublishError> {
    let settings = Settings::from_config(&state.config)?;
    let t = tag.clone();
    // The tag must exist now (404 otherwise), as in dlrepo; the run re-reads it.
    state.repo.run(move |r| r.publish_job_list(&t)).await?;
    let repo = Arc::clone(&state.repo);
    // A plain blocking thread: the HTTP client is synchronous, and nothing awaits the
    // result, which lands in `.publish-status`.
    tokio::task::spawn_blocking(move || {
        let _ = release_now(&repo, &settings, &tag, released);
    });
    Ok(())
}

/// Publishes (`released`) or un-publishes the tag now, on the calling (blocking) thread;
/// the status file says how it went and so does the result. Runs for one tag at a time:
/// a second call for the same tag waits for the first. Tag cleanup calls this with
/// `released = false` before deleting a released tag (spec/LAYOUT.md §6.2).
pub fn release_now(
    repo: &Repo,
    settings: &Settings,
    tag: &TagRef,
    released: bool,
) -> Result<(), String> {
    let _busy = TagBusy::wait(tag);
    let verb = if released { "publish" } else { "unpublish" };
    let result = do_release(repo, settings, tag, released);
    let action = if released {
        crate::metrics::Action::publish
    } else {
        crate::metrics::Action::unpublish
    };
    crate::metrics::get().record_publish(action, result.is_ok());
    match result {
        Ok(()) => {
            tracing::info!(tag = %tag.url(), "{verb} done");
            Ok(())
        }
        Err(e) => {
            tracing::error!(tag = %tag.url(), error = %e, "{verb} failed");
            // The flags stay as they are; only the status changes (spec/CONFIG.md §5).
            if let Err(err) = repo.set_publish_status(tag, Some(&format!("error: {e}"))) {
                tracing::error!(tag = %tag.url(), error = %err, "cannot write .publish-status");
            }
            Err(e.0)
        }
    }
}

/// Tag cleanup's un-publish step, run before a released tag is deleted: `None` when
/// `DLREPO_PUBLISH_URL` is unset, as there is nothing to retract. With the URL set but the
/// credentials missing it fails, so cleanup keeps the tag instead of stranding its copies.
pub fn cleanup_unpublisher(
    repo: &Repo,
    config: &Config,
) -> Option<impl Fn(&TagRef) -> Result<(), String> + Sync> {
    config.publish_url.as_ref()?;
    let settings = Settings::from_config(config).map_err(|e| e.to_string());
    Some(move |tag: &TagRef| {
        let settings = settings.as_ref().map_err(Clone::clone)?;
        release_now(repo, settings, tag, false)
    })
}

/// spec/CONFIG.md §5 `do_release`.
fn do_release(
    repo: &Repo,
    settings: &Settings,
    tag: &TagRef,
    released: bool,
) -> Result<(), Failure> {
    let store = |e: StoreError| Failure(e.to_string());
    repo.set_publish_status(tag, Some("in progress"))
        .map_err(store)?;
    let tag_url = tag.url();
    let mut published_jobs = false;
    for url in settings.urls.split(',') {
        if let Some(cmd) = &settings.filter_cmd
            && !repo.run_publish_filter(tag, cmd, url).map_err(store)?
        {
            tracing::info!(tag = %tag_url, %url, "publish filter skipped this target");
            continue;
        }
        // Read at each publish, so that a rotated password needs no restart.
        let credentials = read_publish_credentials(&settings.auth_file).map_err(store)?;
        let target = Target::new(url, settings, &credentials);
        if released {
            tracing::info!(tag = %tag_url, %url, "publishing tag");
            publish_jobs(repo, &target, tag)?;
            let reply = target.send("GET", &tag_url, &[], Body::None)?;
            if reply.status != 404 {
                let reply = reply.check()?;
                // Each target overwrites the answer of the one before, as in dlrepo.
                published_jobs = json_of(&reply)?
                    .pointer("/tag/jobs")
                    .and_then(Value::as_array)
                    .is_some_and(|jobs| !jobs.is_empty());
            }
        } else {
            tracing::info!(tag = %tag_url, %url, "deleting tag from target");
            target
                .send("DELETE", &tag_url, &[], Body::None)?
                .check_or_missing()?;
        }
    }
    if released && published_jobs {
        repo.mark_tag_released(tag).map_err(store)?;
        repo.set_publish_status(tag, Some(&format!("published to {}", settings.urls)))
            .map_err(store)?;
    } else {
        repo.clear_release(tag).map_err(store)?;
    }
    Ok(())
}

/// spec/CONFIG.md §5 `publish_jobs`: every locked job, in name order.
fn publish_jobs(repo: &Repo, target: &Target, tag: &TagRef) -> Result<(), Failure> {
    let store = |e: StoreError| Failure(e.to_string());
    for j in repo.publish_job_list(tag).map_err(store)? {
        let job = repo.publish_job(&j).map_err(store)?;
        let job_url = j.url();
        if !job.locked {
            // Not deleted remotely either: it may still be in the making.
            tracing::debug!(job = %job_url, "job is not locked, skipping release");
            continue;
        }
        if job.internal {
            // It may have been published before it became internal.
            target.send("DELETE", &job_url, &[], Body::None)?;
            repo.set_job_released(&j, false).map_err(store)?;
            continue;
        }
        // dlrepo treats any answer but 200 as "not there"; a 5xx that outlived the retries
        // would then lead to uploads into a job the target still holds locked. Only a 404
        // means missing here.
        let reply = target
            .send("GET", &job_url, &[], Body::None)?
            .check_or_missing()?;
        if reply.status == 200 {
            let remote = json_of(&reply)?;
            if remote.pointer("/job/digest").and_then(Value::as_str) == Some(job.digest.as_str()) {
                tracing::debug!(job = %job_url, "job already up to date on the target");
                continue;
            }
            // Another version of the job is there: replace it whole.
            target.send("DELETE", &job_url, &[], Body::None)?;
            repo.set_job_released(&j, false).map_err(store)?;
        }
        repo.set_publish_status(tag, Some(&format!("uploading {} to {}", j.job, target.url)))
            .map_err(store)?;
        for format in &job.formats {
            publish_format(repo, target, format)?;
        }
        let meta = Value::Object(Map::from_iter([(
            "job".to_owned(),
            Value::Object(job.metadata),
        )]));
        target
            .send(
                "PATCH",
                &job_url,
                &[],
                Body::Json(crate::pyjson::to_string(&meta)),
            )?
            .check()?;
        repo.set_job_released(&j, true).map_err(store)?;
        target
            .send(
                "PUT",
                &job_url,
                &[],
                Body::Json(r#"{"job": {"locked": true}}"#.to_owned()),
            )?
            .check()?;
        tracing::info!(job = %job_url, url = %target.url, "job published");
    }
    Ok(())
}

/// Every file of the format (HEAD with its digest: link when the target has the blob,
/// upload otherwise), then the PATCH that clears `.dirty` on the target. Files go out on up
/// to `DLREPO_PUBLISH_MAX_REQUESTS` threads; the first failure stops the others.
fn publish_format(repo: &Repo, target: &Target, format: &PublishFormat) -> Result<(), Failure> {
    let fmt_url = format.format.url();
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<Failure>> = Mutex::new(None);
    let worker = || {
        loop {
            if failed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
            {
                return;
            }
            let Some((rel, digest)) = format.files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            let file_url = format!("{fmt_url}{rel}");
            let result = (|| {
                let head = target.send("HEAD", &file_url, &[("Digest", digest)], Body::None)?;
                if head.status == 200 {
                    target
                        .send(
                            "PUT",
                            &file_url,
                            &[("Digest", digest), ("X-Dlrepo-Link", digest)],
                            Body::Empty,
                        )?
                        .check()
                } else {
                    target
                        .send(
                            "PUT",
                            &file_url,
                            &[("Digest", digest)],
                            Body::File(repo, &format.format, rel),
                        )?
                        .check()
                }
            })();
            if let Err(e) = result {
                failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        }
    };
    // More threads than requests allowed in flight would only wait; a handful is plenty.
    let threads = format.files.len().clamp(1, target.max_requests().min(8));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Err(e);
    }
    target
        .send("PATCH", &fmt_url, &[], Body::Empty)?
        .check()
        .map(drop)
}

fn json_of(reply: &Reply) -> Result<Value, Failure> {
    serde_json::from_slice(&reply.body).map_err(|e| Failure(format!("invalid JSON reply: {e}")))
}

/// Marks a tag as being published: a second publish of the same tag waits, so that two
/// runs never interleave their status lines and flags.
/// At a server stop: waits up to `wait` for the publishes in flight, then marks the tags
/// still being published as interrupted, so that their status does not say `in progress`
/// forever. Their threads die with the process; a new release picks up where they were, as
/// publishing skips what the target already holds.
pub fn stop(repo: &Repo, wait: Duration) {
    let (set, cv) = busy_tags();
    let busy = set.lock().unwrap_or_else(PoisonError::into_inner);
    let (busy, _) = cv
        .wait_timeout_while(busy, wait, |b| !b.is_empty())
        .unwrap_or_else(PoisonError::into_inner);
    for tag in busy.iter() {
        tracing::warn!(tag = %tag.url(), "publish interrupted by the stop");
        let status = "error: interrupted by a server stop; release the tag again to finish";
        if let Err(e) = repo.set_publish_status(tag, Some(status)) {
            tracing::error!(tag = %tag.url(), error = %e, "cannot write .publish-status");
        }
    }
}

struct TagBusy(TagRef);

fn busy_tags() -> &'static (Mutex<HashSet<TagRef>>, Condvar) {
    static BUSY: OnceLock<(Mutex<HashSet<TagRef>>, Condvar)> = OnceLock::new();
    BUSY.get_or_init(Default::default)
}

impl TagBusy {
    fn wait(tag: &TagRef) -> TagBusy {
        let (set, cv) = busy_tags();
        let mut busy = set.lock().unwrap_or_else(PoisonError::into_inner);
        while busy.contains(tag) {
            busy = cv.wait(busy).unwrap_or_else(PoisonError::into_inner);
        }
        busy.insert(tag.clone());
        TagBusy(tag.clone())
    }
}

impl Drop for TagBusy {
    fn drop(&mut self) {
        let (set, cv) = busy_tags();
        set.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
        cv.notify_all();
    }
}
