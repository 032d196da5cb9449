//! The steps of one publish or un-publish, in spec/CONFIG.md §5's order: every target, each
//! locked job of the tag, each file of its formats. Runs on a blocking thread, holding the
//! tag (see `busy`).

use super::Settings;
use super::client::{Body, Failure, RemoteReply, Shared, Target};
use crate::model::{JobRef, TagRef};
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
    for j in repo.publish_job_list(tag).map_err(store)? {
        publish_job(repo, target, tag, &j)?;
    }
    Ok(())
}

/// One job: left alone while unlocked, deleted from the target when internal, skipped when
/// the target holds this very version, else sent whole.
fn publish_job(repo: &Repo, target: &Target<'_>, tag: &TagRef, j: &JobRef) -> Result<(), Failure> {
    let job = repo.publish_job(j).map_err(store)?;
    let job_url = j.url();
    if !job.locked {
        // Not deleted remotely either: it may still be in the making.
        tracing::debug!(job = %job_url, "job is not locked, skipping release");
        return Ok(());
    }
    if job.internal {
        // It may have been published before it became internal.
        target.send("DELETE", &job_url, &[], Body::None)?;
        return repo.set_job_released(j, false).map_err(store);
    }
    if remote_is_current(repo, target, j, &job.digest)? {
        tracing::debug!(job = %job_url, "job already up to date on the target");
        return Ok(());
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
    let meta = Body::Json(crate::pyjson::to_string(&meta));
    target.send("PATCH", &job_url, &[], meta)?.check()?;
    repo.set_job_released(j, true).map_err(store)?;
    let lock = Body::Json(r#"{"job": {"locked": true}}"#.to_owned());
    target.send("PUT", &job_url, &[], lock)?.check()?;
    tracing::info!(job = %job_url, url = %target.url, "job published");
    Ok(())
}

/// Whether the target holds the job with this `digest`. Another version of it is deleted
/// there (and the local `.released` cleared), so that it is replaced whole.
fn remote_is_current(
    repo: &Repo,
    target: &Target<'_>,
    j: &JobRef,
    digest: &str,
) -> Result<bool, Failure> {
    let job_url = j.url();
    // dlrepo treats any answer but 200 as "not there"; a 5xx that outlived the retries
    // would then lead to uploads into a job the target still holds locked. Only a 404
    // means missing here.
    let reply = target
        .send("GET", &job_url, &[], Body::None)?
        .check_or_missing()?;
    if reply.status != 200 {
        return Ok(false);
    }
    let remote = json_of(&reply)?;
    if remote.pointer("/job/digest").and_then(Value::as_str) == Some(digest) {
        return Ok(true);
    }
    target.send("DELETE", &job_url, &[], Body::None)?;
    repo.set_job_released(j, false).map_err(store)?;
    Ok(false)
}

/// Every file of the format, then the PATCH that clears `.dirty` on the target. Files go out
/// on up to `DLREPO_PUBLISH_MAX_REQUESTS` threads; the first failure stops the others.
fn publish_format(repo: &Repo, target: &Target<'_>, format: &PublishFormat) -> Result<(), Failure> {
    let fmt_url = format.format.url();
    // More threads than requests allowed in flight would only wait; a handful is plenty.
    let threads = format.files.len().clamp(1, target.max_requests().min(8));
    try_for_each_on_threads(&format.files, threads, |(rel, digest)| {
        let file_url = format!("{fmt_url}{rel}");
        let head = target.send("HEAD", &file_url, &[("Digest", digest)], Body::None)?;
        let reply = if head.status == 200 {
            // The target has the blob: a link is enough.
            let link = [
                ("Digest", digest.as_str()),
                ("X-Dlrepo-Link", digest.as_str()),
            ];
            target.send("PUT", &file_url, &link, Body::Empty)?
        } else {
            let file = Body::File(repo, &format.format, rel);
            target.send("PUT", &file_url, &[("Digest", digest)], file)?
        };
        reply.check().map(drop)
    })?;
    target
        .send("PATCH", &fmt_url, &[], Body::Empty)?
        .check()
        .map(drop)
}

/// Runs `f` on each item from `threads` threads (the calling one included), each taking
/// the next item when done with one. After the first error no item is started; that error
/// is the result.
fn try_for_each_on_threads<T: Sync, E: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<E>> = Mutex::new(None);
    let worker = || {
        while failed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
        {
            let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                return;
            };
            if let Err(e) = f(item) {
                failed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get_or_insert(e);
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(worker);
        }
        worker();
    });
    match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn store(e: StoreError) -> Failure {
    Failure(e.to_string())
}

fn json_of(reply: &RemoteReply) -> Result<Value, Failure> {
    serde_json::from_slice(&reply.body).map_err(|e| Failure(format!("invalid JSON reply: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_done_once_on_the_threads() {
        let done = Mutex::new(Vec::new());
        let items: Vec<u32> = (0..100).collect();
        let result: Result<(), ()> = try_for_each_on_threads(&items, 4, |i| {
            done.lock().expect("not poisoned").push(*i);
            Ok(())
        });
        assert_eq!(result, Ok(()));
        let mut done = done.into_inner().expect("not poisoned");
        done.sort_unstable();
        assert_eq!(done, items);
    }

    #[test]
    fn the_first_failure_stops_new_items_and_is_the_result() {
        let started = AtomicUsize::new(0);
        let items: Vec<u32> = (0..1000).collect();
        let result = try_for_each_on_threads(&items, 1, |i| {
            started.fetch_add(1, Ordering::Relaxed);
            if *i == 3 {
                Err(format!("item {i}"))
            } else {
                Ok(())
            }
        });
        assert_eq!(result, Err("item 3".to_owned()));
        assert_eq!(
            started.into_inner(),
            4,
            "items after the failure were started"
        );
    }
}
