//! Shares of the blocking pool for transfers. Every chunk of an upload, a streamed file or
//! a tar bundle is a short blocking task; however many transfers run at once, each class
//! holds at most its share of the pool's threads, so that metadata operations, logins and
//! `/healthz` (which go through [`super::Repo::run`]) always find one. A transfer over its
//! class's share waits on the runtime for its turn, holding no thread.

use bytes::Bytes;
use futures_util::Stream;
use std::io;
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
