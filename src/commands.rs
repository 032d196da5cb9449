//! What each `arbor` sub-command does; `main.rs` only parses the command line.

use crate::auth::tokens::{Scope, TokenStore, parse_duration};
use crate::config::Config;
use crate::state::AppState;
use crate::storage::{GcKind, Repo};
use crate::zerocopy::ZcListener;
use std::time::Duration;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The exit status of a failed command (arbor(8) EXIT STATUS): 2 when the configuration is
/// at fault, including the LDAP settings and ACL files `serve` checks at start; 1 otherwise.
pub fn exit_status(e: &Error) -> u8 {
    if e.is::<crate::config::ConfigError>() || e.is::<crate::auth::LoadError>() {
        2
    } else {
        1
    }
}

/// `--listen ADDR:PORT`; an IPv6 address goes in brackets (`[::1]:8080`).
pub fn parse_listen(s: &str) -> Result<(String, u16), String> {
    let (addr, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not ADDR:PORT"))?;
    let addr = match addr.strip_prefix('[') {
        Some(v6) => v6
            .strip_suffix(']')
            .ok_or_else(|| format!("{s:?}: unclosed ["))?,
        None if addr.contains(':') => {
            return Err(format!(
                "{s:?}: write an IPv6 address in brackets, [::1]:8080"
            ));
        }
        None => addr,
    };
    if addr.is_empty() {
        return Err(format!("{s:?}: the address is missing"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{s:?}: {port:?} is not a port number"))?;
    Ok((addr.to_owned(), port))
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

/// `arbor fsck [--repair]`: prints each problem; fails when any is left unrepaired.
pub fn fsck(config: &Config, repair: bool) -> Result<(), Error> {
    let report = Repo::open(config)?.fsck(repair)?;
    for f in &report.findings {
        let state = if f.repaired { "repaired" } else { "PROBLEM" };
        println!("{state}: {}: {}", f.path.display(), f.problem);
    }
    println!(
        "checked {} blobs and {} files: {} problems, {} repaired",
        report.blobs,
        report.files,
        report.findings.len(),
        report.findings.iter().filter(|f| f.repaired).count()
    );
    if report.healthy() {
        Ok(())
    } else {
        Err("the tree has problems (see above); --repair fixes what it safely can".into())
    }
}

/// `arbor gc [--dry-run]`: one full cleanup now, safe beside running servers.
pub fn gc(config: &Config, dry_run: bool) -> Result<(), Error> {
    let repo = Repo::open(config)?;
    let unpublish = crate::publish::cleanup_unpublisher(&repo, config);
    let report = repo.run_gc(GcKind::Full, dry_run, unpublish.as_ref().map(|f| f as _))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for tag in &report.tags {
        println!("{verb} tag {tag}");
    }
    for (tag, why) in &report.kept {
        println!("kept released tag {tag}: unpublish failed: {why}");
    }
    println!(
        "{verb} {} orphan blobs and {} stale uploads, {} bytes{}",
        report.blobs,
        report.uploads,
        report.bytes,
        if dry_run { " would be freed" } else { " freed" }
    );
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

fn tokens(config: &Config) -> Result<TokenStore, Error> {
    Ok(TokenStore::new(Repo::open(config)?.tokens_dir()))
}

/// `arbor token create`: prints the token once; only its hash is kept.
pub fn token_create(
    config: &Config,
    user: &str,
    scope: Scope,
    prefix: Option<&str>,
    expires: Option<&str>,
) -> Result<(), Error> {
    let expires = match expires {
        Some(s) => Some(parse_duration(s).ok_or_else(|| {
            format!("invalid --expires {s:?}: use e.g. 30d, 12h, 15m or seconds")
        })?),
        None => None,
    };
    let (token, info) = tokens(config)?.create(user, scope, prefix, expires)?;
    println!("{token}");
    eprintln!(
        "token {} for {user}: store it now, it cannot be shown again",
        info.id
    );
    Ok(())
}

pub fn token_list(config: &Config) -> Result<(), Error> {
    for t in tokens(config)?.list()? {
        let scope = match t.scope {
            Scope::Read => "read",
            Scope::Write => "write",
        };
        let expires = t.expires.map_or("never".to_owned(), |e| e.to_string());
        let prefix = t.prefix.as_deref().unwrap_or("/");
        println!(
            "{}\t{}\t{scope}\t{prefix}\texpires={expires}\tcreated={}",
            t.id, t.user, t.created
        );
    }
    Ok(())
}

pub fn token_revoke(config: &Config, id: &str) -> Result<(), Error> {
    if tokens(config)?.revoke(id)? {
        Ok(())
    } else {
        Err(format!("no token {id}").into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let ok = |s: &str| parse_listen(s).unwrap();
        assert_eq!(ok("0.0.0.0:8080"), ("0.0.0.0".to_owned(), 8080));
        assert_eq!(ok("localhost:0"), ("localhost".to_owned(), 0));
        assert_eq!(ok("[::1]:1337"), ("::1".to_owned(), 1337));
        for bad in [
            "8080",
            ":8080",
            "::1:8080",
            "[::1:8080",
            "a:65536",
            "a:x",
            "a:",
        ] {
            assert!(parse_listen(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn configuration_faults_exit_2() {
        let config: Error = crate::config::Config::from_sources(
            None,
            [("DLREPO_LISTEN_PORT".to_owned(), "x".to_owned())],
        )
        .unwrap_err()
        .into();
        assert_eq!(exit_status(&config), 2);
        let ldap: Error = crate::auth::LoadError::Ldap("DLREPO_LDAP_URL: bad".into()).into();
        assert_eq!(exit_status(&ldap), 2);
        let other: Error = "cannot listen".into();
        assert_eq!(exit_status(&other), 1);
    }
}
