//! Shares of the blocking pool for transfers. Every chunk of an upload, a streamed file or
//! a tar bundle is a short blocking task; however many transfers run at once, each class
//! holds at most its share of the pool's threads, so that metadata operations, logins and
//! `/healthz` (which go through [`super::Repo::run`]) always find one. A transfer over its
//! class's share waits on the runtime for its turn, holding no thread.
//!
//! Writing and hashing upload chunks also run on threads of their own at a lower CPU
//! priority ([`spawn_bulk`]): when the cores are busy with large uploads, the short work of
//! other requests (a small download, a page) is scheduled first instead of queueing behind
//! them. With idle cores the uploads go as fast as before.

use bytes::Bytes;
use futures_util::Stream;
use std::io;
use std::sync::OnceLock;
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::task::JoinHandle;

/// Chunks of uploads and registry chunks being written or hashed at once.
const WRITE_TASKS: usize = 64;
static WRITES: Semaphore = Semaphore::const_new(WRITE_TASKS);
/// Chunks of downloads and bundles being read at once.
static READS: Semaphore = Semaphore::const_new(64);

/// A place for `n` concurrent write tasks (a chunk is written and hashed at once: two).
pub(crate) async fn write_slots(n: u32) -> Option<SemaphorePermit<'static>> {
    WRITES.acquire_many(n).await.ok()
}

/// A place for one read task.
pub(crate) async fn read_slot() -> Option<SemaphorePermit<'static>> {
    READS.acquire().await.ok()
}

/// Large steps: each step of a big upload gathers [`LARGE_BATCH`] bytes instead of
/// `DLREPO_CHUNK_SIZE`, and a long download reads chunks of that size instead of 1 MiB, when
/// this budget, in MiB held at once across all transfers, has room; two per transfer (an
/// upload's batch filling and one being written, a download's chunk being read and one
/// being sent). A 1 GiB `curl -T` ran
/// 1.25-1.30 s with 4 MiB steps against 1.55-1.68 s with 256 KiB ones: each step ends when
/// both its write and its hash have, and the thread wake-ups add up. The budget keeps
/// hundreds of concurrent uploads from holding gigabytes; past it they take small steps.
pub(crate) const LARGE_BATCH: usize = 4 << 20;
const LARGE_BATCH_BUDGET_MIB: usize = 256;
static LARGE_BATCHES: Semaphore = Semaphore::const_new(LARGE_BATCH_BUDGET_MIB);

/// Room for one transfer's large steps, if the budget has it now (never waits).
pub(crate) fn large_batches() -> Option<SemaphorePermit<'static>> {
    let mib = u32::try_from((2 * LARGE_BATCH) >> 20).ok()?;
    LARGE_BATCHES.try_acquire_many(mib).ok()
}

/// How much lower than the server's the priority of bulk threads is (`nice(2)` steps: 10 gives
/// them about a tenth of the CPU share of the rest of the server when both want it).
const BULK_NICENESS: i32 = 10;

/// The bulk threads: a runtime used only for its blocking pool.
fn bulk_runtime() -> Option<&'static Runtime> {
    static BULK: OnceLock<Option<Runtime>> = OnceLock::new();
    BULK.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .thread_name("arbor-bulk")
            .max_blocking_threads(WRITE_TASKS)
            .on_thread_start(|| {
                // On Linux the priority is the calling thread's own.
                let _ = rustix::process::nice(BULK_NICENESS);
            })
            .build()
            .map_err(
                |e| tracing::warn!(error = %e, "no bulk threads; uploads run at full priority"),
            )
            .ok()
    })
    .as_ref()
}

/// Runs `f` (a chunk of an upload being written or hashed) on a bulk thread, which the
/// kernel schedules after the server's other threads when the cores are busy.
pub(crate) fn spawn_bulk<T, F>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match bulk_runtime() {
        Some(rt) => rt.spawn_blocking(f),
        None => tokio::task::spawn_blocking(f),
    }
}

/// Blocking code that makes a download one chunk at a time (a tar or a zip being written
/// from the files it holds).
pub(crate) trait ChunkSource: Send + 'static {
    /// The next chunk, `None` after the last one. Blocking (file reads).
    fn next_chunk(&mut self) -> io::Result<Option<Bytes>>;
}

/// The chunks of `source`, each made by one short blocking task under a read slot when the
/// connection asks for it, so a client that stops reading holds no thread. An error ends
/// the stream with that error (logged as `what` aborted), so the response is cut rather
/// than ending as a valid but wrong archive.
pub(crate) fn pooled_stream<C: ChunkSource>(
    source: C,
    what: &'static str,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let span = tracing::Span::current();
    futures_util::stream::unfold(Some(Box::new(source)), move |source| {
        let span = span.clone();
        async move {
            let mut source = source?;
            let slot = read_slot().await;
            let made = tokio::task::spawn_blocking(move || {
                let _slot = slot;
                let chunk = span.in_scope(|| source.next_chunk());
                (source, chunk)
            })
            .await;
            match made {
                Ok((source, Ok(Some(chunk)))) => Some((Ok(chunk), Some(source))),
                Ok((_, Ok(None))) => None,
                Ok((_, Err(e))) => {
                    tracing::warn!(error = %e, "{what} aborted");
                    Some((Err(e), None))
                }
                Err(e) => Some((Err(io::Error::other(e)), None)),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bulk_work_runs_on_its_own_lower_priority_threads() {
        let here = rustix::process::getpriority_process(None).unwrap();
        let (name, there) = spawn_bulk(|| {
            let name = std::thread::current().name().map(str::to_owned);
            (name, rustix::process::getpriority_process(None).unwrap())
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("arbor-bulk"));
        // Lower priority is a higher nice value (capped at 19).
        assert_eq!(there, (here + BULK_NICENESS).min(19));
    }
}
