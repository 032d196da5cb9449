//! Zero-copy file bodies: the kernel moves file pages straight to the socket with
//! `sendfile(2)`, instead of a read into user space followed by a write.
//!
//! hyper only writes bodies made of bytes, so the file travels beside the body: the handler
//! queues a [`SendJob`] (an open file and a range) on its connection, and the body it returns
//! is made of *placeholder* chunks that point into one static buffer. The connection's
//! writer, [`ZcStream`], recognises placeholder slices by their address and sends the same
//! number of bytes from the front job's file instead. Placeholders are never copied: hyper
//! queues body buffers as they are when the transport supports vectored writes, which
//! `ZcStream` does. A placeholder with no job is an error that drops the connection, so a
//! mistake can cut a download but never send wrong bytes.
//!
//! It holds files opened by the storage layer (never paths), hence the allow below.
#![allow(clippy::disallowed_types)]

use crate::config::ZeroCopy;
use bytes::Bytes;
use futures_util::Stream;
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// Large, so one `sendfile` call can move many megabytes; it lives in .bss and is never
/// touched, so it costs address space, not memory.
const PLACEHOLDER_LEN: usize = 8 << 20;
/// Never read or written: only its address range matters.
static PLACEHOLDER: [u8; PLACEHOLDER_LEN] = [0; PLACEHOLDER_LEN];

fn is_placeholder(buf: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let p = buf.as_ptr() as usize;
    !buf.is_empty() && p >= start && p < start + PLACEHOLDER_LEN
}

/// A range of an open file waiting to be sent on a connection.
pub struct SendJob {
    file: File,
    offset: i64,
    remaining: u64,
}

impl SendJob {
    pub fn new(file: File, offset: u64, len: u64) -> io::Result<SendJob> {
        let offset = i64::try_from(offset).map_err(io::Error::other)?;
        Ok(SendJob {
            file,
            offset,
            remaining: len,
        })
    }
}

#[derive(Default)]
struct ConnState {
    jobs: Mutex<VecDeque<SendJob>>,
    /// The client's address; `None` on a Unix socket.
    peer: Option<std::net::SocketAddr>,
}

/// The handle a request gets on its connection, to queue file bodies.
#[derive(Clone, Default)]
pub struct ZcConn {
    state: Arc<ConnState>,
    /// Whether `DLREPO_ZERO_COPY` sends this client files with `sendfile(2)`; if not,
    /// handlers stream file bodies through hyper themselves.
    sendfile: bool,
}

impl ZcConn {
    pub fn peer(&self) -> Option<std::net::SocketAddr> {
        self.state.peer
    }

    /// Whether file bodies should be queued with [`ZcConn::body`] on this connection.
    pub fn sends_files(&self) -> bool {
        self.sendfile
    }

    /// Queues `job` and returns the body to send in its place.
    pub fn body(&self, job: SendJob) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let len = job.remaining;
        self.state
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(job);
        futures_util::stream::unfold(len, |left| async move {
            (left > 0).then(|| {
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(PLACEHOLDER_LEN);
                (Ok(Bytes::from_static(&PLACEHOLDER[..n])), left - n as u64)
            })
        })
    }
}

/// A listening socket (TCP, or Unix under systemd socket activation) whose connections can
/// send files with `sendfile(2)`.
pub enum ZcListener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// Where a connection comes from.
#[derive(Debug, Clone)]
pub enum PeerAddr {
    Tcp(std::net::SocketAddr),
    Unix,
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Tcp(a) => write!(f, "http://{a}"),
            PeerAddr::Unix => f.write_str("a Unix socket"),
        }
    }
}

impl ZcListener {
    pub fn tcp(listener: TcpListener) -> ZcListener {
        ZcListener::Tcp(listener)
    }

    async fn accept_once(&mut self) -> io::Result<(Conn, PeerAddr)> {
        match self {
            ZcListener::Tcp(l) => {
                let (stream, addr) = l.accept().await?;
                // Responses go out in one or two writes; waiting for ACKs only adds latency.
                let _ = stream.set_nodelay(true);
                Ok((Conn::Tcp(stream), PeerAddr::Tcp(addr)))
            }
            ZcListener::Unix(l) => Ok((Conn::Unix(l.accept().await?.0), PeerAddr::Unix)),
        }
    }
}

impl axum::serve::Listener for ZcListener {
    type Io = ZcStream;
    type Addr = PeerAddr;

    async fn accept(&mut self) -> (ZcStream, PeerAddr) {
        loop {
            match self.accept_once().await {
                Ok((inner, addr)) => {
                    let peer = match &addr {
                        PeerAddr::Tcp(a) => Some(*a),
                        PeerAddr::Unix => None,
                    };
                    let io = ZcStream {
                        inner,
                        conn: ZcConn {
                            state: Arc::new(ConnState {
                                jobs: Mutex::default(),
                                peer,
                            }),
                            sendfile: true,
                        },
                        write_timeout: None,
                        write_stall: None,
                    };
                    return (io, addr);
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<PeerAddr> {
        match self {
            ZcListener::Tcp(l) => l.local_addr().map(PeerAddr::Tcp),
            ZcListener::Unix(_) => Ok(PeerAddr::Unix),
        }
    }
}

/// Whether `mode` sends files with `sendfile(2)` to the client at `peer` (`None`: a Unix
/// socket, which only a local proxy uses).
fn sends_files_to(mode: ZeroCopy, peer: Option<std::net::SocketAddr>) -> bool {
    match mode {
        ZeroCopy::Off => false,
        ZeroCopy::Always => true,
        ZeroCopy::Remote => peer.is_some_and(|a| !a.ip().to_canonical().is_loopback()),
    }
}

/// The transport under a connection.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

/// A connection that turns placeholder slices into `sendfile(2)` calls.
pub struct ZcStream {
    inner: Conn,
    conn: ZcConn,
    /// How long a write may wait for the client to read (`DLREPO_CLIENT_TIMEOUT`).
    write_timeout: Option<std::time::Duration>,
    /// Armed while a write waits; any progress disarms it.
    write_stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ZcStream {
    /// The handle requests use to queue file bodies on this connection; where `mode` sends
    /// this peer no file with `sendfile` it only tells who the peer is.
    pub fn handle(&self, mode: ZeroCopy) -> ZcConn {
        ZcConn {
            sendfile: sends_files_to(mode, self.conn.state.peer),
            ..self.conn.clone()
        }
    }

    /// A client that reads nothing for `limit` while a response waits to be sent loses the
    /// connection: a download or a bundle must not stay parked forever.
    pub fn set_write_timeout(&mut self, limit: std::time::Duration) {
        self.write_timeout = Some(limit);
    }

    fn stall_guard(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if res.is_ready() {
            self.write_stall = None;
            return res;
        }
        let Some(limit) = self.write_timeout else {
            return Poll::Pending;
        };
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stall.as_mut().poll(cx).is_ready() {
            self.write_stall = None;
            crate::metrics::get().client_timeouts.inc();
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }

    fn poll_sendfile(&mut self, cx: &mut Context<'_>, want: usize) -> Poll<io::Result<usize>> {
        let mut jobs = self
            .conn
            .state
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(job) = jobs.front_mut() else {
            return Poll::Ready(Err(io::Error::other("file body without a queued file")));
        };
        let count = usize::try_from(job.remaining)
            .unwrap_or(usize::MAX)
            .min(want);
        loop {
            let send = || {
                let out: std::os::fd::BorrowedFd<'_> = match &self.inner {
                    Conn::Tcp(s) => s.as_fd(),
                    Conn::Unix(s) => s.as_fd(),
                };
                nix::sys::sendfile::sendfile(out, &job.file, Some(&mut job.offset), count)
                    .map_err(io::Error::from)
            };
            let sent = match &self.inner {
                Conn::Tcp(s) => {
                    ready!(s.poll_write_ready(cx))?;
                    s.try_io(Interest::WRITABLE, send)
                }
                Conn::Unix(s) => {
                    ready!(s.poll_write_ready(cx))?;
                    s.try_io(Interest::WRITABLE, send)
                }
            };
            match sent {
                Ok(0) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while being sent",
                    )));
                }
                Ok(n) => {
                    job.remaining -= n as u64;
                    if job.remaining == 0 {
                        jobs.pop_front();
                    }
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncRead for ZcStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Conn::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ZcStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // Plain bytes up to the first placeholder go out as they are.
        let plain = bufs.iter().take_while(|b| !is_placeholder(b)).count();
        if plain > 0 {
            let res = match &mut this.inner {
                Conn::Tcp(s) => Pin::new(s).poll_write_vectored(cx, &bufs[..plain]),
                Conn::Unix(s) => Pin::new(s).poll_write_vectored(cx, &bufs[..plain]),
            };
            return this.stall_guard(cx, res);
        }
        // Consecutive placeholders are one stretch of the same file.
        let want: usize = bufs
            .iter()
            .take_while(|b| is_placeholder(b))
            .map(|b| b.len())
            .sum();
        if want == 0 {
            return Poll::Ready(Ok(0));
        }
        let res = this.poll_sendfile(cx, want);
        this.stall_guard(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        // Required: with vectored writes hyper queues body buffers without copying them.
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Conn::Tcp(s) => Pin::new(s).poll_flush(cx),
            Conn::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.inner {
            Conn::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests;
