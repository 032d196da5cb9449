//! Logging set-up: `DLREPO_LOG_LEVEL` on stderr as `LEVEL: message` (spec/CONFIG.md §1.1);
//! `RUST_LOG` overrides the level for developers.

use crate::config::Config;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(config.log_level.as_str().to_lowercase()));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .without_time()
        .try_init();
}
