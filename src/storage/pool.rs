//! Shares of the blocking pool for transfers. Every chunk of an upload, a streamed file or
//! a tar bundle is a short blocking task; however many transfers run at once, each class
//! holds at most its share of the pool's threads, so that metadata operations, logins and
//! `/healthz` (which go through [`super::Repo::run`]) always find one. A transfer over its
//! class's share waits on the runtime for its turn, holding no thread.

use tokio::sync::{Semaphore, SemaphorePermit};

/// Chunks of uploads and registry chunks being written or hashed at once.
static WRITES: Semaphore = Semaphore::const_new(64);
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
