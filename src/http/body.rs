//! Request bodies as the storage layer reads them: bytes, with errors that say whether the
//! client stalled past `DLREPO_CLIENT_TIMEOUT` (see `server.rs`) or broke off.

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::error::Error;
use std::io;

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
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        next = e.source();
    }
    false
}
