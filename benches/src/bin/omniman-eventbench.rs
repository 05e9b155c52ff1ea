//! `omniman-eventbench`: the benchmark of the event stream (`GET /api/events`) on a spawned
//! server: idle subscribers' memory and CPU, commit-to-event latency under a paced load, and
//! that every commit brings exactly one `order.created`. See `docs/performance.md`, "Event
//! stream", and `omniman-eventbench --help`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use omniman_benches::events::{self, Args};

/// The exit code of a run that measured but whose checks failed (1 is a run that could not
/// measure).
const CHECKS_FAILED: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        let threads = usize::try_from(args.threads).unwrap_or(1);
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let report = match runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(events::run(&args))) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("omniman-eventbench: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let text = if args.json {
        serde_json::to_string(&report).expect("the report serialises") + "\n"
    } else {
        report.to_string()
    };
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
        return ExitCode::FAILURE;
    }
    if report.passed { ExitCode::SUCCESS } else { ExitCode::from(CHECKS_FAILED) }
}
