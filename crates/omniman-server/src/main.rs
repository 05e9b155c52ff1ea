//! `omniman`: the REST server, directive workers and the operator's command line.

mod cli;
mod commands;
mod runtime;
mod serve;

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

// The hot paths are allocation-bound; mimalloc roughly halves the allocator's share under glibc
// (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("OMNIMAN_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only help a terminal; in a file or a log collector they are noise.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => {
                // actix runs its own per-thread runtimes; this one hosts the workers and the database.
                serve::serve(args).await
            }
            Command::Worker(args) => serve::worker(args).await,
            Command::Demo(db) => serve::demo(&db).await,
            Command::Migrate(db) => commands::migrate(&db).await,
            Command::Channels { command } => commands::channels(command).await,
            Command::Tokens { command } => commands::tokens(command).await,
            Command::Directives { command } => commands::directives(command).await,
            Command::Stock { command } => commands::stock(command).await,
            Command::Cleanup(args) => commands::cleanup(args).await,
        }
    })
}
