//! The steps of one publish or un-publish, in spec/CONFIG.md §5's order: every target, each
//! locked job of the tag, each file of its formats. Runs on a blocking thread, holding the
//! tag (see `busy`).

use super::Settings;
use super::client::{Body, Failure, Reply, Shared, Target};
use crate::model::TagRef;
use crate::storage::publishing::{PublishFormat, read_publish_credentials};
use crate::storage::{Repo, StoreError};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

/// spec/CONFIG.md §5 `do_release`.
pub(super) fn do_release(
    repo: &Repo,
    settings: &Settings,
    shared: &Shared,
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
        let target = Target::new(url, settings, &credentials, shared);
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
fn publish_jobs(repo: &Repo, target: &Target<'_>, tag: &TagRef) -> Result<(), Failure> {
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
fn publish_format(repo: &Repo, target: &Target<'_>, format: &PublishFormat) -> Result<(), Failure> {
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
