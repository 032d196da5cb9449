//! The `arbor` binary: parses the command line and hands it to `arbor::commands`.

use clap::Parser as _;
use std::process::ExitCode;

fn main() -> ExitCode {
    arbor::commands::run(arbor::cli::Cli::parse())
}
