//! The `arbor` command line: parses arguments and hands over to `arbor::commands`.

use arbor::auth::tokens::Scope;
use arbor::commands;
use arbor::config::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

/// arbor: a self-hosted artifact repository, drop-in compatible with dlrepo 0.44.
///
/// Settings come from an optional TOML file, from DLREPO_* environment variables and from
/// flags, each overriding the one before. See man/arbor.8 and examples/config/arbor.toml.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (keys are the DLREPO_* names, lower-cased, without the prefix).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data root (DLREPO_ROOT_DIR).
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Log level (DLREPO_LOG_LEVEL).
    #[arg(long, global = true, value_name = "LEVEL", ignore_case = true,
          value_parser = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (data in ./arbor-data and 127.0.0.1:1337 unless configured).
    Serve {
        /// Address and port to listen on, e.g. 0.0.0.0:8080 or [::1]:8080.
        #[arg(long, value_name = "ADDR:PORT", value_parser = commands::parse_listen,
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
    /// Manage API tokens for CI systems (Bearer, Basic password or ?token=).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
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
enum ScopeArg {
    Read,
    Write,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (mut config, warnings) = match Config::load(cli.config.as_deref(), &flags(&cli)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arbor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    arbor::telemetry::init(&config);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    arbor::http::warn_unsupported_settings(&config);
    let result = match cli.command {
        Command::Serve { no_auth, .. } => {
            config.auth_disabled |= no_auth;
            tokio::runtime::Runtime::new()
                .map_err(Into::into)
                .and_then(|rt| {
                    let served = rt.block_on(commands::serve(config));
                    // serve() already gave work in flight its time; a blocking task still
                    // running (a stuck hook, a publish) must not hold the exit, which
                    // dropping the runtime would do.
                    rt.shutdown_timeout(std::time::Duration::from_millis(100));
                    served
                })
        }
        Command::Token(TokenCommand::Create {
            user,
            scope,
            prefix,
            expires,
        }) => {
            let scope = match scope {
                ScopeArg::Read => Scope::Read,
                ScopeArg::Write => Scope::Write,
            };
            commands::token_create(&config, &user, scope, prefix.as_deref(), expires.as_deref())
        }
        Command::Gc { dry_run } => commands::gc(&config, dry_run),
        Command::Fsck { repair } => commands::fsck(&config, repair),
        Command::Token(TokenCommand::List) => commands::token_list(&config),
        Command::Token(TokenCommand::Revoke { id }) => commands::token_revoke(&config, &id),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbor: {e}");
            ExitCode::from(commands::exit_status(&e))
        }
    }
}

/// The settings given as flags, by their names without `DLREPO_`: they override the
/// environment and the file.
fn flags(cli: &Cli) -> Vec<(&'static str, String)> {
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
