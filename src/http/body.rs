//! Request bodies as the storage layer reads them: bytes, with errors that say whether the
//! client stalled past `DLREPO_CLIENT_TIMEOUT` (see `server.rs`) or broke off.

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// How much of a refused request's body is read and dropped, at most.
pub const DRAIN_LIMIT: usize = 64 << 20;

/// Reads and drops what is left of a refused request's body before answering. Clients such
/// as dlrepo-cli send the whole body before reading the answer; closing on them makes them
/// report a broken pipe instead of the error (aiohttp lingers the same way): a write that a
/// full disk stopped half way answers its 507 this way too. Bounded in bytes and time so a
/// refused huge upload is not read to the end.
pub async fn drain<S, E>(mut stream: S)
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let mut seen = 0usize;
    let reading = async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DRAIN_LIMIT {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), reading).await;
}

/// The body's bytes; a stall is an `io::ErrorKind::TimedOut` error, anything else `Other`.
pub fn byte_stream(body: Body) -> impl Stream<Item = io::Result<Bytes>> + Unpin + Send {
    body.into_data_stream().map(|item| item.map_err(classify))
}

pub fn classify(e: axum::Error) -> io::Error {
    let kind = if stalled(&e) {
        io::ErrorKind::TimedOut
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

/// Whether the error, or one it was caused by, is the body timeout.
pub fn stalled(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<Stalled>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// A request body that fails with [`Stalled`] once the client has sent nothing for `limit`
/// while the server was waiting for it (`DLREPO_CLIENT_TIMEOUT`).
///
/// Data that has arrived always wins over the timer: a handler that stops reading for a
/// while (a slow disk, its turn in the blocking pool) must not blame the client for it.
/// tower-http's `TimeoutBody` checks its timer first, so a body buffered during such a
/// pause could fail on the next read; hence this one.
pub struct StallGuard<B> {
    body: B,
    limit: Duration,
    waiting: Option<Pin<Box<Sleep>>>,
}

impl<B> StallGuard<B> {
    pub fn new(body: B, limit: Duration) -> StallGuard<B> {
        StallGuard {
            body,
            limit,
            waiting: None,
        }
    }
}

/// The client sent no body byte for `DLREPO_CLIENT_TIMEOUT`.
#[derive(Debug, thiserror::Error)]
#[error("the client sent nothing for too long")]
pub struct Stalled;

impl<B> HttpBody for StallGuard<B>
where
    B: HttpBody + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.waiting = None;
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = this.limit;
        let waiting = this
            .waiting
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if waiting.as_mut().poll(cx).is_ready() {
            this.waiting = None;
            return Poll::Ready(Some(Err(Box::new(Stalled))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    /// A body fed by hand: `Pending` until the test sends a chunk.
    struct Fed(mpsc::UnboundedReceiver<Bytes>);

    impl HttpBody for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
        }
    }

    async fn next(body: &mut StallGuard<Fed>) -> Option<Result<Frame<Bytes>, axum::BoxError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn data_that_arrived_while_nobody_read_wins_over_the_timer() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut body = StallGuard::new(Fed(rx), Duration::from_secs(5));
        // One read that finds nothing arms the timer...
        let pending = tokio::time::timeout(Duration::from_secs(1), next(&mut body)).await;
        assert!(pending.is_err());
        // ...then the handler is busy elsewhere for longer than the limit, while data comes.
        tx.send(Bytes::from_static(b"late but there")).unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let frame = next(&mut body).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "late but there");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_fails_after_the_limit() {
        let (_tx, rx) = mpsc::unbounded_channel();
        let mut body = StallGuard::new(Fed(rx), Duration::from_secs(5));
        let err = next(&mut body).await.unwrap().unwrap_err();
        assert!(stalled(&*err), "{err}");
    }
}
