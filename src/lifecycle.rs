//! The server's life: start-up (signals, listener, state, background workers, banner),
//! serving, and the stop.

use crate::commands::Error;
use crate::config::Config;
use crate::state::AppState;
use crate::storage::GcKind;
use crate::zerocopy::ZcListener;
use std::time::Duration;

/// `arbor serve`: runs the server on its own runtime until a stop signal.
pub fn run(config: Config) -> Result<(), Error> {
    let rt = tokio::runtime::Runtime::new()?;
    let served = rt.block_on(serve(config));
    // serve() already gave work in flight its time; a blocking task still running (a stuck
    // hook, a publish) must not hold the exit, which dropping the runtime would do.
    rt.shutdown_timeout(Duration::from_millis(100));
    served
}

/// `arbor serve`: binds, prints the banner line tests and scripts wait for, serves until
/// SIGTERM or SIGINT. SIGHUP, and changes to the auth file or the ACL files, reload access
/// control (`reload`).
pub async fn serve(config: Config) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed before the banner: tests send signals as soon as they read it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let hup = signal(SignalKind::hangup())?;
    let usr1 = signal(SignalKind::user_defined1())?;
    warn_about_auth(&config);
    let (listener, shown) = listen(&config).await?;
    // Watching starts before the first load, so that no change can fall between the two.
    let reloads = crate::reload::Watch::start(&config);
    let state = AppState::new(config)?;
    // How long a stop waits for requests and publishes in flight (`DLREPO_DRAIN_TIMEOUT`).
    let state_drain = state.config.drain_timeout;
    reloads.spawn(state.clone(), hup);
    spawn_gc(&state, usr1);
    println!("======== Running on {shown} ========");
    let stopping = tokio_util::sync::CancellationToken::new();
    let stop = stopping.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        stop.cancel();
    });
    let repo = std::sync::Arc::clone(&state.repo);
    let server = crate::serve(listener, state, stopping.clone().cancelled_owned());
    tokio::pin!(server);
    let served = tokio::select! {
        served = &mut server => Some(served),
        () = stopping.cancelled() => None,
    };
    // Requests in flight (uploads included) may finish; a stalled one cannot hold the exit
    // forever. Shutting the runtime down drops it, which removes its temp file from
    // .uploads/; it was never linked, so the tree holds no part of it.
    let drain = Duration::from_secs(state_drain);
    let deadline = tokio::time::Instant::now() + drain;
    match served {
        Some(served) => served?,
        None => match tokio::time::timeout_at(deadline, &mut server).await {
            Ok(served) => served?,
            Err(_) => tracing::warn!("requests still running after {drain:?}; exiting anyway"),
        },
    }
    // Publishes run on their own threads and get what is left of the same window.
    let left = deadline.saturating_duration_since(tokio::time::Instant::now());
    tokio::task::spawn_blocking(move || crate::publish::stop(&repo, left)).await?;
    Ok(())
}

/// The single cleanup worker and its triggers: the `DLREPO_TAG_CLEANUP_PERIOD` timer (first
/// run one period after start; 0 = never), SIGUSR1, and deletes (orphans only).
fn spawn_gc(state: &AppState, mut usr1: tokio::signal::unix::Signal) {
    let repo = std::sync::Arc::clone(&state.repo);
    let config = std::sync::Arc::clone(&state.config);
    tokio::spawn(async move {
        loop {
            let kind = repo.next_gc_request().await;
            let r = std::sync::Arc::clone(&repo);
            let config = std::sync::Arc::clone(&config);
            let run = move || {
                let unpublish = crate::publish::cleanup_unpublisher(&r, &config);
                r.run_gc(kind, false, unpublish.as_ref().map(|f| f as _))
            };
            match tokio::task::spawn_blocking(run).await {
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
    });
    let repo = std::sync::Arc::clone(&state.repo);
    let period = state.config.tag_cleanup_period;
    tokio::spawn(async move {
        let mut timer = (period > 0).then(|| {
            let every = Duration::from_secs(period);
            tokio::time::interval_at(tokio::time::Instant::now() + every, every)
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
    });
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
