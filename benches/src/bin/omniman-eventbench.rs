//! `omniman-eventbench`: the benchmark of the event stream (`GET /api/events`) on a spawned
//! server: idle subscribers' memory and CPU, commit-to-event latency under a paced load, and
//! that every commit brings exactly one `order.created`. See `docs/performance.md`, "Event
//! stream", and `omniman-eventbench --help`.

use std::process::ExitCode;

use clap::Parser;
use omniman_benches::events::{self, Args};
use omniman_benches::tool;

/// The exit code of a run that measured but whose checks failed (1 is a run that could not
/// measure).
const CHECKS_FAILED: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    match tool::drive("omniman-eventbench", args.threads, args.json, events::run(&args)) {
        Ok(report) if report.passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(CHECKS_FAILED),
        Err(code) => code,
    }
}
