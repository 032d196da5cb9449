//! The `arbor` sub-commands: loads the configuration, sets up logging, runs the command
//! asked for and turns its outcome into an exit status. `arbor serve` is [`crate::lifecycle`].

use crate::auth::tokens::{TokenInfo, TokenScope, TokenStore, parse_duration};
use crate::cli::{Cli, Command, TokenCommand};
use crate::config::Config;
use crate::publish::Publisher;
use crate::storage::{GcKind, Repo};
use std::process::ExitCode;
use std::sync::Arc;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Runs the command line `cli` and says how the process should exit.
pub fn run(cli: Cli) -> ExitCode {
    // The client commands talk to a server; the server's configuration is not theirs.
    let cli = match cli.command {
        Command::Client(command) => return crate::client::run(&cli.client, command),
        command => Cli { command, ..cli },
    };
    let (mut config, warnings) = match Config::load(cli.config.as_deref(), &crate::cli::flags(&cli))
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arbor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    crate::telemetry::init(&config);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    crate::http::warn_unsupported_settings(&config);
    let result = match cli.command {
        Command::Serve { no_auth, .. } => {
            config.auth_disabled |= no_auth;
            crate::lifecycle::run(config)
        }
        Command::Token(TokenCommand::Create {
            user,
            scope,
            prefix,
            expires,
        }) => token_create(
            &config,
            &user,
            scope.into(),
            prefix.as_deref(),
            expires.as_deref(),
        ),
        Command::Gc { dry_run } => gc(&config, dry_run),
        Command::Fsck { repair } => fsck(&config, repair),
        Command::Reindex => reindex(&config),
        Command::Token(TokenCommand::List) => token_list(&config),
        Command::Token(TokenCommand::Revoke { id }) => token_revoke(&config, &id),
        Command::Client(_) => unreachable!("dispatched above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbor: {e}");
            ExitCode::from(exit_status(&e))
        }
    }
}

/// The exit status of a failed command (arbor(8) EXIT STATUS): 2 when the configuration is
/// at fault, including the LDAP settings, ACL files and signing key `serve` checks at start;
/// 1 otherwise.
pub fn exit_status(e: &Error) -> u8 {
    if e.is::<crate::config::ConfigError>()
        || e.is::<crate::auth::LoadError>()
        || e.is::<crate::signing::SigningError>()
    {
        2
    } else {
        1
    }
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

/// `arbor reindex`: reads the whole tree into a new search index and saves it over
/// `.search/index`, whatever was saved before. Running servers keep their own index.
pub fn reindex(config: &Config) -> Result<(), Error> {
    let began = std::time::Instant::now();
    let repo = Repo::open(config)?;
    let jobs = crate::storage::search::SearchIndex::rebuild(&repo)?;
    println!(
        "indexed {jobs} jobs in {:.1} s into .search/index",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `arbor gc [--dry-run]`: one full cleanup now, safe beside running servers.
pub fn gc(config: &Config, dry_run: bool) -> Result<(), Error> {
    let repo = Arc::new(Repo::open(config)?);
    let background = crate::background::Background::default();
    let publisher = Publisher::new(Arc::clone(&repo), Arc::new(config.clone()), background);
    let unpublish = publisher.cleanup_unpublisher();
    let report = repo.run_gc(GcKind::Full, dry_run, unpublish.as_ref().map(|f| f as _))?;
    let verb = if dry_run { "would delete" } else { "deleted" };
    for tag in &report.tags {
        println!("{verb} tag {tag}");
    }
    for (tag, why) in &report.kept {
        println!("kept released tag {tag}: unpublish failed: {why}");
    }
    if report.locks > 0 {
        println!(
            "{verb} {} lock files of directories that are gone",
            report.locks
        );
    }
    println!(
        "{verb} {} orphan blobs and {} stale uploads, {} bytes{}",
        report.blobs,
        report.uploads,
        report.bytes,
        if dry_run { " would be freed" } else { " freed" }
    );
    if report.young > 0 {
        println!(
            "{} {} orphan blobs, {} bytes, younger than DLREPO_ORPHAN_BLOB_LIFETIME ({} s): \
             an upload may still link them; a run after that age removes them",
            if dry_run { "would keep" } else { "kept" },
            report.young,
            report.young_bytes,
            config.orphan_blob_lifetime
        );
    }
    Ok(())
}

fn tokens(config: &Config) -> Result<TokenStore, Error> {
    Ok(TokenStore::new(Repo::open(config)?.token_files()))
}

/// `arbor token create`: prints the token once; only its hash is kept.
pub fn token_create(
    config: &Config,
    user: &str,
    scope: TokenScope,
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

/// `arbor token list`: a table, header first.
pub fn token_list(config: &Config) -> Result<(), Error> {
    let list = tokens(config)?.list()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    print!("{}", token_table(&list, now));
    if list.is_empty() {
        eprintln!("no tokens: `arbor token create --user LOGIN` makes one");
    }
    Ok(())
}

/// The tokens as aligned columns under a header, times in UTC as ISO 8601 and expired
/// tokens marked as such (as of `now`, Unix seconds). The ID is the first column, for
/// `arbor token revoke`.
fn token_table(list: &[TokenInfo], now: u64) -> String {
    let iso = |secs: u64| crate::http::views::iso_time(secs as f64);
    let header = ["ID", "USER", "SCOPE", "PREFIX", "CREATED", "EXPIRES"].map(String::from);
    let mut rows = vec![header];
    for t in list {
        let scope = match t.scope {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
        };
        let expires = match t.expires {
            None => "never".to_owned(),
            Some(e) if e <= now => format!("{} (expired)", iso(e)),
            Some(e) => iso(e),
        };
        let prefix = t.prefix.as_deref().unwrap_or("/");
        rows.push([
            t.id.clone(),
            t.user.clone(),
            scope.to_owned(),
            prefix.to_owned(),
            iso(t.created),
            expires,
        ]);
    }
    let mut widths = [0; 6];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
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

    #[test]
    fn token_list_is_a_table_with_dates() {
        let token = |id: &str, user: &str, prefix: Option<&str>, expires| TokenInfo {
            id: id.into(),
            user: user.into(),
            scope: TokenScope::Write,
            prefix: prefix.map(str::to_owned),
            expires,
            created: 1_764_806_400, // 2025-12-04T00:00:00Z
        };
        let list = [
            token("0123456789abcdef", "ci", Some("/branches/nightly/"), None),
            TokenInfo {
                scope: TokenScope::Read,
                ..token("fedcba9876543210", "release-bot", None, Some(1_764_810_000))
            },
            token("00000000000000aa", "x", None, Some(1_764_900_000)),
        ];
        let now = 1_764_850_000;
        assert_eq!(
            token_table(&list, now),
            "\
ID                USER         SCOPE  PREFIX              CREATED               EXPIRES
0123456789abcdef  ci           write  /branches/nightly/  2025-12-04T00:00:00Z  never
fedcba9876543210  release-bot  read   /                   2025-12-04T00:00:00Z  2025-12-04T01:00:00Z (expired)
00000000000000aa  x            write  /                   2025-12-04T00:00:00Z  2025-12-05T02:00:00Z
"
        );
        assert_eq!(
            token_table(&[], now),
            "ID  USER  SCOPE  PREFIX  CREATED  EXPIRES\n"
        );
    }
}
