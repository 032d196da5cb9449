//! The `arbor` binary: parses the command line and hands it to `arbor::commands`.

use clap::Parser as _;
use std::process::ExitCode;

/// jemalloc rather than glibc's malloc: with the same work, the server's memory at 100,000 jobs
/// is a quarter lower (glibc's per-thread arenas hold on to what the threads that read a
/// listing freed), and small requests are about a tenth faster (bench/README.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    arbor::commands::run(arbor::cli::Cli::parse())
}
