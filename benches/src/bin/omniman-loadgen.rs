//! `omniman-loadgen`: closed-loop HTTP load on an Omniman server. See `docs/performance.md`,
//! "The load tool", and `omniman-loadgen --help`.

use std::process::ExitCode;

use clap::Parser;
use omniman_benches::load::{self, Args};
use omniman_benches::tool;

fn main() -> ExitCode {
    let args = Args::parse();
    match tool::drive("omniman-loadgen", args.threads, args.json, load::run(&args)) {
        Ok(_) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
