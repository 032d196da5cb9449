//! The server's life: start-up (signals, listener, state, background workers, banner),
//! serving, and the stop, whose order `stop` spells out.

use crate::config::Config;
use crate::state::AppState;
use crate::zerocopy::ZcListener;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// `arbor serve`: runs the server on its own runtime until a stop signal.
pub fn run(config: Config) -> Result<(), Error> {
    let rt = tokio::runtime::Runtime::new()?;
    let served = rt.block_on(serve(config));
    // serve() already gave work in flight its time; a blocking task still running (a stuck
    // hook, a publish) must not hold the exit, which dropping the runtime would do.
    rt.shutdown_timeout(Duration::from_millis(100));
    served
}

/// What a failed start or stop says; the exit status comes from `commands::exit_status`.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// The signals `serve` reacts to (spec/CONFIG.md §3), installed before the banner: tests
/// send signals as soon as they read it.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
    usr1: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            usr1: signal(SignalKind::user_defined1())?,
        })
    }
}

/// `arbor serve`: binds, prints the banner line tests and scripts wait for, serves until
/// SIGTERM or SIGINT, then stops as `stop` says. SIGHUP, and changes to the auth file or
/// the ACL files, reload access control (`reload`); SIGUSR1 asks for a cleanup.
pub async fn serve(config: Config) -> Result<(), Error> {
    let Signals {
        mut term,
        mut int,
        hup,
        usr1,
    } = Signals::install()?;
    warn_about_auth(&config);
    let (listener, shown) = listen(&config).await?;
    // Watching starts before the first load, so that no change can fall between the two.
    let reloads = crate::reload::Watch::start(&config);
    let state = AppState::new(config)?;
    let stopping = CancellationToken::new();
    reloads.spawn(state.clone(), hup);
    crate::cleanup::spawn_worker(&state, usr1, stopping.clone());
    // The search index builds in the background: the server answers at once.
    state.search();
    println!("======== Running on {shown} ========");
    let stop_on_signal = stopping.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop_on_signal.cancel();
    });
    let server = crate::serve(listener, state.clone(), stopping.clone().cancelled_owned());
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => {
            served?;
            let deadline = Instant::now() + drain_window(&state);
            finish_background_work(&state, deadline).await
        }
        () = stopping.cancelled() => stop(&state, server).await,
    }
}

/// How long a stop waits for work in flight, requests and background work together
/// (`DLREPO_DRAIN_TIMEOUT`).
fn drain_window(state: &AppState) -> Duration {
    Duration::from_secs(state.config.drain_timeout)
}

/// The stop, in order:
/// 1. no new connections: `server` stopped accepting when the stop was asked for;
/// 2. the requests in flight (uploads included) may finish, until the drain deadline;
/// 3. background work (publishes, a cleanup run) gets what is left of the same window;
/// 4. the publishes still running are marked interrupted in their status;
/// 5. the caller exits, and the runtime drops whatever is still running.
///
/// A request still running at step 5 is dropped, which removes its temp file from
/// `.uploads/`; it was never linked, so the tree holds no part of it.
async fn stop(
    state: &AppState,
    server: Pin<&mut impl Future<Output = std::io::Result<()>>>,
) -> Result<(), Error> {
    let drain = drain_window(state);
    let deadline = Instant::now() + drain;
    match tokio::time::timeout_at(deadline, server).await {
        Ok(served) => served?,
        Err(_) => tracing::warn!("requests still running after {drain:?}; exiting anyway"),
    }
    finish_background_work(state, deadline).await
}

/// Steps 3 and 4 of [`stop`].
async fn finish_background_work(state: &AppState, deadline: Instant) -> Result<(), Error> {
    if !state.background.wait_until(deadline).await {
        tracing::warn!("background work still running at the end of the drain; exiting anyway");
    }
    let publisher = Arc::clone(&state.publisher);
    tokio::task::spawn_blocking(move || publisher.mark_interrupted()).await?;
    Ok(())
}

/// The socket systemd passed (`LISTEN_FDS`/`LISTEN_PID`, fd 3: TCP or Unix), else a TCP
/// socket bound to `DLREPO_LISTEN_ADDRESS:DLREPO_LISTEN_PORT`. Also says what to print.
async fn listen(config: &Config) -> Result<(ZcListener, String), Error> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 1 {
        if let Ok(Some(l)) = fds.take_tcp_listener(0) {
            l.set_nonblocking(true)?;
            let l = tokio::net::TcpListener::from_std(l)?;
            let shown = format!("http://{}", l.local_addr()?);
            return Ok((ZcListener::tcp(l), shown));
        }
        if let Ok(Some(l)) = fds.take_unix_listener(0) {
            l.set_nonblocking(true)?;
            let l = tokio::net::UnixListener::from_std(l)?;
            let path = l
                .local_addr()?
                .as_pathname()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Ok((ZcListener::Unix(l), format!("http://unix:{path}:")));
        }
        tracing::warn!("LISTEN_FDS is set but fd 3 is not a listening socket; binding instead");
    }
    let l = tokio::net::TcpListener::bind((config.listen_address.as_str(), config.listen_port))
        .await
        .map_err(|e| {
            format!(
                "cannot listen on {}:{}: {e}",
                config.listen_address, config.listen_port
            )
        })?;
    let shown = format!("http://{}", l.local_addr()?);
    Ok((ZcListener::tcp(l), shown))
}

fn warn_about_auth(config: &Config) {
    let banner: &[&str] = if config.auth_disabled {
        &[
            "************************************************************",
            "* AUTHENTICATION IS DISABLED: anyone who can reach this    *",
            "* server can read, write and delete. For local use only.   *",
            "************************************************************",
        ]
    } else if config.ignore_passwords {
        &["DLREPO_IGNORE_PASSWORDS=1: passwords are not checked, anyone can log in as anyone"]
    } else {
        &[]
    };
    for line in banner {
        tracing::error!("{line}");
    }
}
