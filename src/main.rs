//! The `arbor` command: starts the server and, later, maintenance sub-commands.

use arbor::config::Config;
use arbor::state::AppState;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// arbor: a self-hosted artifact repository, drop-in compatible with dlrepo 0.44.
///
/// Settings come from an optional TOML file and from DLREPO_* environment variables
/// (the environment wins). See `man arbor-config` or examples/config/arbor.toml.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// TOML configuration file (keys are the DLREPO_* names, lower-cased, without the prefix).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (data in ./arbor-data and port 1337 unless configured).
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("arbor: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    arbor::telemetry::init(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("arbor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Serve => runtime.block_on(serve(config)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arbor: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed before the banner: tests send signals as soon as they read it.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let banner: &[&str] = if config.auth_disabled {
        &["authentication is disabled (DLREPO_AUTH_DISABLED=1): anyone can read and write"]
    } else {
        &[
            "***************************************************************",
            "* ACCESS CONTROL IS NOT IMPLEMENTED YET: anyone who can reach *",
            "* this server can read, write and delete. Listen on a trusted *",
            "* interface only.                                             *",
            "***************************************************************",
        ]
    };
    for line in banner {
        tracing::error!("{line}");
    }
    let listener =
        tokio::net::TcpListener::bind((config.listen_address.as_str(), config.listen_port))
            .await
            .map_err(|e| {
                format!(
                    "cannot listen on {}:{}: {e}",
                    config.listen_address, config.listen_port
                )
            })?;
    let addr = listener.local_addr()?;
    let state = AppState::new(config)?;
    println!("======== Running on http://{addr} ========");
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    arbor::serve(listener, state, shutdown).await?;
    Ok(())
}
