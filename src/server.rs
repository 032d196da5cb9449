//! Accepting connections and keeping each one bounded, so that slow or silent clients cost a
//! socket and a timer, never a thread, and never the server's availability:
//! - a request's headers must arrive within `DLREPO_HEADER_TIMEOUT`, which also ends idle
//!   keep-alive connections (half a request line is a slowloris, not a client);
//! - a request body may not stall, nor a response stay unread, for longer than
//!   `DLREPO_CLIENT_TIMEOUT` (see [`crate::zerocopy::ZcStream`] for the sending side);
//! - at most `DLREPO_MAX_CONNECTIONS` connections are served at once; the next ones are
//!   answered `503` with `Retry-After` and closed rather than left waiting in the backlog.

use crate::config::Config;
use crate::state::AppState;
use crate::zerocopy::{ZcListener, ZcStream};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service as _;

/// How every connection is served: the limits it is held to, and how files go out.
#[derive(Debug, Clone, Copy)]
pub struct ConnPolicy {
    pub header_timeout: Duration,
    pub client_timeout: Duration,
    pub max_connections: usize,
    /// `DLREPO_ZERO_COPY`: to which clients file bodies go out with `sendfile(2)`.
    pub zero_copy: crate::config::ZeroCopy,
}

impl ConnPolicy {
    pub fn from_config(c: &Config) -> ConnPolicy {
        ConnPolicy {
            header_timeout: Duration::from_secs(c.header_timeout),
            client_timeout: Duration::from_secs(c.client_timeout),
            max_connections: c.max_connections,
            zero_copy: c.zero_copy,
        }
    }
}

/// Serves `state` on an already bound listener until `shutdown` resolves; requests in flight
/// are allowed to finish (the caller bounds how long it waits).
pub async fn serve(
    mut listener: ZcListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let policy = ConnPolicy::from_config(&state.config);
    let router = crate::http::router(state);
    let slots = Arc::new(Semaphore::new(policy.max_connections));
    let connections = TaskTracker::new();
    let stopping = CancellationToken::new();
    let mut shutdown = pin!(shutdown);
    loop {
        let (mut io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        io.set_write_timeout(policy.client_timeout);
        match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                let conn = connection(io, router.clone(), policy, stopping.clone(), slot);
                connections.spawn(conn);
            }
            Err(_) => {
                crate::metrics::get().connections_refused.inc();
                connections.spawn(refuse(io));
            }
        }
    }
    // No new connections; the open ones finish the request they are on, then close.
    drop(listener);
    stopping.cancel();
    connections.close();
    connections.wait().await;
    Ok(())
}

async fn connection(
    io: ZcStream,
    router: Router,
    policy: ConnPolicy,
    stopping: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let zc = io.handle(policy.zero_copy);
    let client_timeout = policy.client_timeout;
    let service = hyper::service::service_fn(move |req: axum::http::Request<Incoming>| {
        // A body that stops arriving ends in an error the handlers answer with a 408.
        let mut req = req.map(|body| Body::new(crate::http::StallGuard::new(body, client_timeout)));
        req.extensions_mut().insert(ConnectInfo(zc.clone()));
        router.clone().call(req)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(policy.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    let mut conn = pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stopping.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}

/// The answer to a connection over the limit: short, so it costs next to nothing, and read
/// by the client before the close (its request is drained a moment first).
async fn refuse(mut io: ZcStream) {
    const REASON: &str = "Too many connections";
    let body = format!("503: {REASON}");
    let head = format!(
        "HTTP/1.1 503 {REASON}\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let answer = async {
        let mut scratch = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(50), io.read(&mut scratch)).await;
        io.write_all(head.as_bytes()).await?;
        io.write_all(body.as_bytes()).await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), answer).await;
}
