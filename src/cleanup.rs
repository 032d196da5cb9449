//! The server's single cleanup worker (spec/LAYOUT.md §6): one run at a time, asked for by
//! the `DLREPO_TAG_CLEANUP_PERIOD` timer, SIGUSR1 and deletes; runs are background work.

use crate::state::AppState;
use crate::storage::GcKind;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The single cleanup worker and its triggers: the `DLREPO_TAG_CLEANUP_PERIOD` timer (first
/// run one period after start; 0 = never), SIGUSR1, and deletes (orphans only). Once
/// `stopping` fires it starts no new run; the one under way is background work.
pub fn spawn_worker(
    state: &AppState,
    usr1: tokio::signal::unix::Signal,
    stopping: CancellationToken,
) {
    let worker = state.clone();
    tokio::spawn(async move {
        loop {
            let kind = tokio::select! {
                kind = worker.repo.next_gc_request() => kind,
                () = stopping.cancelled() => return,
            };
            cleanup_once(&worker, kind).await;
        }
    });
    tokio::spawn(cleanup_triggers(
        Arc::clone(&state.repo),
        state.config.tag_cleanup_period,
        usr1,
    ));
}

/// One cleanup run, on the blocking pool, counted in `/metrics`.
async fn cleanup_once(state: &AppState, kind: GcKind) {
    let (repo, publisher) = (Arc::clone(&state.repo), Arc::clone(&state.publisher));
    let run = move || {
        let unpublish = publisher.cleanup_unpublisher();
        repo.run_gc(kind, false, unpublish.as_ref().map(|f| f as _))
    };
    match state.background.spawn_blocking(run).await {
        Ok(Ok(report)) => {
            let m = crate::metrics::get();
            m.gc_runs.inc();
            m.gc_deleted_tags.inc_by(report.tags.len() as u64);
            m.gc_deleted_blobs.inc_by(report.blobs + report.uploads);
            m.gc_freed_bytes.inc_by(report.bytes);
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cleanup failed"),
        Err(e) => tracing::error!(error = %e, "cleanup crashed"),
    }
}

/// Requests a full cleanup at each period and at each SIGUSR1.
async fn cleanup_triggers(
    repo: Arc<crate::storage::Repo>,
    period: u64,
    mut usr1: tokio::signal::unix::Signal,
) {
    let mut timer = (period > 0).then(|| {
        let every = Duration::from_secs(period);
        tokio::time::interval_at(Instant::now() + every, every)
    });
    loop {
        let tick = async {
            match timer.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = usr1.recv() => {}
            () = tick => {}
        }
        repo.request_gc(GcKind::Full);
    }
}
