//! Request bodies as the storage layer reads them: bytes, with errors that say whether the
//! client stalled past `DLREPO_CLIENT_TIMEOUT` (see `server.rs`) or broke off.

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::error::Error;
use std::io;

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
