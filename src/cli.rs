//! The `arbor` command line: sub-commands, flags, and the settings flags override.
// The doc comments below are clap's `--help` text, written for a terminal: `[::1]:8080` is
// an address, not a link.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// arbor: a self-hosted artifact repository, drop-in compatible with dlrepo 0.44.
///
/// Settings come from an optional TOML file, from DLREPO_* environment variables and from
/// flags, each overriding the one before. See man/arbor.8 and examples/config/arbor.toml.
#[derive(Parser)]
#[command(version, about)]
pub struct Cli {
    /// TOML configuration file (keys are the DLREPO_* names, lower-cased, without the prefix).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data root (DLREPO_ROOT_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Log level (DLREPO_LOG_LEVEL).
    #[arg(long, global = true, value_name = "LEVEL", ignore_case = true,
          value_parser = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])]
    pub log_level: Option<String>,
    #[command(flatten)]
    pub client: crate::client::Globals,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP server (data in ./arbor-data and 127.0.0.1:1337 unless configured).
    Serve {
        /// Address and port to listen on, e.g. 0.0.0.0:8080 or [::1]:8080.
        #[arg(long, value_name = "ADDR:PORT", value_parser = parse_listen,
              conflicts_with_all = ["address", "port"])]
        listen: Option<(String, u16)>,
        /// Address to listen on (DLREPO_LISTEN_ADDRESS).
        #[arg(long, value_name = "ADDR")]
        address: Option<String>,
        /// Port to listen on, 0 for any free one (DLREPO_LISTEN_PORT).
        #[arg(long, value_name = "PORT")]
        port: Option<u16>,
        /// Turn access control off (anyone can read, write and delete): local trials only.
        #[arg(long)]
        no_auth: bool,
    },
    /// Run a full cleanup now: tag cleanup policies, quota refresh, orphan blobs.
    Gc {
        /// Only print what would be deleted and the bytes it would free.
        #[arg(long)]
        dry_run: bool,
    },
    /// Verify the whole tree: blobs hash to their names, artifacts are links of their
    /// blobs, .digests entries match, product links resolve; exit status 1 if not healthy.
    Fsck {
        /// Fix what can be fixed safely (relink, drop missing entries, remove dangling
        /// links and stray temp files, move corrupt blobs out of the way).
        #[arg(long)]
        repair: bool,
    },
    /// Rebuild the search index (.search/index) from the whole tree, for the next start.
    Reindex,
    /// Manage API tokens for CI systems (Bearer, Basic password or ?token=).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Client commands: dlrepo-cli's, against an arbor or dlrepo server.
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once; only a hash of it is stored.
    Create {
        /// The user the token acts as; it gets that user's groups, never more.
        #[arg(long)]
        user: String,
        /// `read` allows only GET and HEAD.
        #[arg(long, value_enum, default_value = "write")]
        scope: ScopeArg,
        /// Only paths starting with this, e.g. /branches/nightly/.
        #[arg(long)]
        prefix: Option<String>,
        /// Lifetime, e.g. 30d, 12h, 15m or seconds; default: no expiry.
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (id, user, scope, prefix, expiry).
    List,
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Read,
    Write,
}

impl From<ScopeArg> for crate::auth::tokens::TokenScope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Read => crate::auth::tokens::TokenScope::Read,
            ScopeArg::Write => crate::auth::tokens::TokenScope::Write,
        }
    }
}

/// The settings given as flags, by their names without `DLREPO_`: they override the
/// environment and the file.
pub fn flags(cli: &Cli) -> Vec<(&'static str, String)> {
    let mut flags = Vec::new();
    if let Some(root) = &cli.root {
        flags.push(("ROOT_DIR", root.display().to_string()));
    }
    if let Some(level) = &cli.log_level {
        flags.push(("LOG_LEVEL", level.clone()));
    }
    if let Command::Serve {
        listen,
        address,
        port,
        ..
    } = &cli.command
    {
        let (address, port) = match listen {
            Some((a, p)) => (Some(a.clone()), Some(*p)),
            None => (address.clone(), *port),
        };
        if let Some(address) = address {
            flags.push(("LISTEN_ADDRESS", address));
        }
        if let Some(port) = port {
            flags.push(("LISTEN_PORT", port.to_string()));
        }
    }
    flags
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
}
