//! `omniman-loadgen`: closed-loop HTTP load on an Omniman server. See `docs/performance.md`,
//! "The load tool", and `omniman-loadgen --help`.

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;
use omniman_benches::load::{self, Args};

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        let threads = usize::try_from(args.threads).unwrap_or(1);
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let report = match runtime.map_err(anyhow::Error::from).and_then(|rt| rt.block_on(load::run(&args))) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("omniman-loadgen: {error:#}");
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
    ExitCode::SUCCESS
}
