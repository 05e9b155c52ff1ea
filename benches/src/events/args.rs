//! The command line of `omniman-eventbench`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::load::args::{positive_seconds, seconds};
use crate::load::spawn::SpawnOptions;

/// `omniman-eventbench`'s flags; see `docs/performance.md`, "Event stream".
#[derive(Clone, Debug, Parser)]
#[command(
    name = "omniman-eventbench",
    about = "Measures GET /api/events on a spawned Omniman server: the memory and CPU of idle \
             subscribers, and the latency from a commit's answer to its order.created event",
    after_help = "Exit status: 0 when every check passed; 2 when a check failed (an event missing or \
                  repeated, a sale failed, a subscriber disconnected: the report says which); 1 when \
                  the run could not measure.",
    disable_version_flag = true
)]
pub struct Args {
    /// Idle subscribers held open for the whole run; the memory figure is the server's RSS
    /// growth divided by them.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub subscribers: u32,
    /// The query string of the idle subscribers' stream. The default follows a channel the load
    /// does not touch, so they are sent nothing but keep-alives while the server still filters
    /// every event for each of them.
    #[arg(long, value_name = "QUERY", default_value = "channel_code=ifood")]
    pub idle_query: String,
    /// Subscribers without a filter, opened with the latency subscriber, that count every event
    /// they are sent: each must see every order the load commits (0: none).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub sample: u32,
    /// Sales per second of the paced (open-loop) load: sale i is due at i / R seconds from the
    /// start, whatever the answers before it took.
    #[arg(long, value_name = "R", default_value = "100", value_parser = positive_rate)]
    pub rate: f64,
    /// Seconds of paced load measured.
    #[arg(long, value_name = "S", default_value = "20", value_parser = positive_seconds)]
    pub duration: Duration,
    /// Tasks making sales (open, modify, commit) at once; a sale that comes due while every task
    /// is busy starts late, and the report says how late.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub concurrency: u32,
    /// Seconds of load at the same rate before anything is measured: the pools, the caches and
    /// the allocator warm up, and the baseline RSS is read after it (0: none).
    #[arg(long, value_name = "S", default_value = "2", value_parser = seconds)]
    pub warmup: Duration,
    /// Seconds to wait once the idle subscribers are open, before the server's RSS is read again.
    #[arg(long, value_name = "S", default_value = "2", value_parser = seconds)]
    pub settle: Duration,
    /// Seconds over which the server's CPU is measured while the idle subscribers are open and
    /// nothing else happens.
    #[arg(long, value_name = "S", default_value = "5", value_parser = positive_seconds)]
    pub idle_seconds: Duration,
    /// Seconds to wait after the load for events still on their way before the missing ones
    /// count as missing.
    #[arg(long, value_name = "S", default_value = "5", value_parser = positive_seconds)]
    pub drain: Duration,
    /// The channel sales are made on: it must take the client's prices and require no check
    /// before a commit, as the demo's `web` does.
    #[arg(long, value_name = "C", default_value = "web")]
    pub channel: String,
    /// Print the report as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// A `postgres://` URL of an existing database on the server to use (e.g.
    /// `postgres://postgres@127.0.0.1:5432/postgres`); the run creates `omniman_load_<random>`
    /// there with `psql` and drops it afterwards. A `sqlite://PATH` URL runs on that file and
    /// keeps it. Default: a SQLite file in a temporary directory.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// The `omniman` binary to start. Default: `release/omniman` under `CARGO_TARGET_DIR`, else
    /// under the workspace's `target/`.
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// The server's directive workers (`omniman serve --workers N`).
    #[arg(long, value_name = "N")]
    pub workers: Option<u32>,
    /// One more argument for `omniman serve`, e.g. `--server-arg=--http-threads=1` (repeatable).
    /// Without a `--max-connections` among them the tool passes one with room for every
    /// subscriber and sale task.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Threads of the tool's own runtime (1: a single-threaded runtime). The latency subscriber
    /// always reads on a thread of its own.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Seconds a sale's request may take before it counts as a transport error (`timeout`), and
    /// a subscriber its first frame.
    #[arg(long, value_name = "S", default_value = "30", value_parser = positive_seconds)]
    pub timeout: Duration,
}

impl Args {
    /// Connections the tool opens at once: the subscribers, the sale tasks' pooled connections
    /// and a few more for the tool's own requests.
    pub fn connections(&self) -> u64 {
        u64::from(self.subscribers) + u64::from(self.sample) + 1 + u64::from(self.concurrency) + 8
    }

    /// What is passed to the spawn code: the flags above, plus `--max-connections` with room
    /// for every connection of the run unless one was given.
    pub(crate) fn spawn_options(&self) -> SpawnOptions {
        let mut server_args = self.server_args.clone();
        if !server_args.iter().any(|arg| arg.starts_with("--max-connections")) {
            // The server's default (1,024 at most) is below what a run of 1,000 subscribers opens.
            let room = (self.connections() + 64).max(1024);
            server_args.push(format!("--max-connections={room}"));
        }
        SpawnOptions {
            tool: "omniman-eventbench",
            server_bin: self.server_bin.clone(),
            database_url: self.database_url.clone(),
            workers: self.workers,
            server_args,
        }
    }
}

/// Parses a rate above zero (sales per second).
fn positive_rate(text: &str) -> Result<f64, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number"))?;
    if !value.is_finite() || value <= 0.0 || value > 1_000_000.0 {
        return Err("must be above 0 and at most 1000000 per second".to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("omniman-eventbench").chain(args.iter().copied()))
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn the_defaults_are_the_documented_run() {
        let args = parse(&[]).unwrap();
        assert_eq!((args.subscribers, args.sample, args.concurrency, args.threads), (1000, 10, 8, 1));
        assert!((args.rate - 100.0).abs() < f64::EPSILON);
        assert_eq!(args.duration, Duration::from_secs(20));
        assert_eq!(args.idle_query, "channel_code=ifood");
        assert_eq!(args.channel, "web");
        assert!(!args.json && args.database_url.is_none());
    }

    #[test]
    fn the_server_gets_room_for_every_connection_unless_told_otherwise() {
        let args = parse(&["--subscribers", "5000"]).unwrap();
        let options = args.spawn_options();
        assert_eq!(options.server_args, [format!("--max-connections={}", 5000 + 10 + 1 + 8 + 8 + 64)]);
        assert_eq!(options.tool, "omniman-eventbench");
        let small = parse(&["--subscribers", "50"]).unwrap().spawn_options();
        assert_eq!(small.server_args, ["--max-connections=1024"]);
        let given = parse(&["--server-arg=--max-connections=70000", "--server-arg", "--http-threads=1"]).unwrap();
        assert_eq!(given.spawn_options().server_args, ["--max-connections=70000", "--http-threads=1"]);
    }

    #[test]
    fn rates_and_durations_must_be_sensible() {
        assert!(parse(&["--rate", "0"]).is_err());
        assert!(parse(&["--rate", "-3"]).is_err());
        assert!(parse(&["--rate", "NaN"]).is_err());
        assert!((parse(&["--rate", "12.5"]).unwrap().rate - 12.5).abs() < f64::EPSILON);
        assert!(parse(&["--duration", "0"]).is_err());
        assert!(parse(&["--subscribers", "0"]).is_err());
        assert_eq!(parse(&["--warmup", "0"]).unwrap().warmup, Duration::ZERO);
    }
}
