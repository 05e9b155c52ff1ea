//! The command line of `omniman-loadgen`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// `omniman-loadgen`'s flags; see `docs/performance.md`, "The load tool".
#[derive(Clone, Debug, Parser)]
#[command(
    name = "omniman-loadgen",
    about = "Closed-loop HTTP load on an Omniman server: virtual users open, modify and commit sessions",
    disable_version_flag = true
)]
pub struct Args {
    /// The server's address, without `/api` (e.g. `http://127.0.0.1:8000`). Repeat it for
    /// several instances of one deployment: each user sends its requests to them in turn, as a
    /// round-robin load balancer would. Not with `--spawn`.
    #[arg(long = "base-url", value_name = "URL", required_unless_present = "spawn", conflicts_with = "spawn")]
    pub base_urls: Vec<String>,
    /// A token that may use the channel, sent as `Authorization: Bearer T`. Not with `--spawn`.
    #[arg(long, value_name = "T", required_unless_present = "spawn", conflicts_with = "spawn")]
    pub token: Option<String>,
    /// Virtual users: each is a closed loop with one request in flight at a time.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub users: u32,
    /// Seconds measured, after the warm-up (a decimal number).
    #[arg(long, value_name = "S", default_value = "10", value_parser = positive_seconds)]
    pub duration: Duration,
    /// Seconds of load before the measurement; nothing sent then counts in the report.
    #[arg(long, value_name = "S", default_value = "0", value_parser = seconds)]
    pub warmup: Duration,
    /// The channel sessions are opened on. Its lines are priced by the client (`unit_price_q`),
    /// and it must require no check before a commit: the demo's `web`.
    #[arg(long, value_name = "C", default_value = "web")]
    pub channel: String,
    /// Print the report as one JSON object on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Start `omniman serve --demo` on a fresh database and a free port for the run, use the
    /// client token it prints, and stop it (and drop its database) at the end.
    #[arg(long)]
    pub spawn: bool,
    // The server's flags conflict with `--base-url` and `--token` (required without `--spawn`)
    // rather than `requires = "spawn"`, which the flag's default value would satisfy.
    /// With `--spawn`: a `postgres://` URL of an existing database on the server to use (e.g.
    /// `postgres://postgres@127.0.0.1:5432/postgres`); the run creates `omniman_load_<random>`
    /// there with `psql` and drops it afterwards. A `sqlite://PATH` URL runs on that file and
    /// keeps it. Default: a SQLite file in a temporary directory.
    #[arg(long, value_name = "URL", conflicts_with_all = ["base_urls", "token"])]
    pub database_url: Option<String>,
    /// With `--spawn`: the `omniman` binary to start. Default: `release/omniman` under
    /// `CARGO_TARGET_DIR`, else under the workspace's `target/`.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["base_urls", "token"])]
    pub server_bin: Option<PathBuf>,
    /// With `--spawn`: how many `omniman serve` processes to start on the one database (the
    /// first seeds it with `--demo`); each user sends its requests to them in turn.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16), conflicts_with_all = ["base_urls", "token"])]
    pub instances: u32,
    /// With `--spawn`: the server's directive workers (`omniman serve --workers N`).
    #[arg(long, value_name = "N", conflicts_with_all = ["base_urls", "token"])]
    pub workers: Option<u32>,
    /// With `--spawn`: one more argument for `omniman serve`, e.g. `--server-arg=--http-threads=1`
    /// (repeatable).
    #[arg(long = "server-arg", value_name = "ARG", conflicts_with_all = ["base_urls", "token"], allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Threads of the tool's own runtime (1: a single-threaded runtime, which leaves the other
    /// cores to the server).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: u32,
    /// Seconds a request may take, connection and body included, before it counts as a
    /// transport error (`timeout`).
    #[arg(long, value_name = "S", default_value = "30", value_parser = positive_seconds)]
    pub timeout: Duration,
}

/// Parses a number of seconds (`2`, `0.5`), zero included.
pub(crate) fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text.trim().parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(value).map_err(|_| format!("`{text}` is not a number of seconds from 0 up"))
}

/// Parses a number of seconds above zero.
pub(crate) fn positive_seconds(text: &str) -> Result<Duration, String> {
    let value = seconds(text)?;
    if value.is_zero() {
        return Err("must be above 0 seconds".to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("omniman-loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn the_cli_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn a_target_takes_a_url_and_a_token_and_has_defaults() {
        let args = parse(&["--base-url", "http://127.0.0.1:8000", "--token", "omni_x"]).unwrap();
        assert_eq!(args.base_urls, ["http://127.0.0.1:8000"]);
        assert_eq!(args.instances, 1);
        assert_eq!(args.token.as_deref(), Some("omni_x"));
        assert_eq!((args.users, args.duration, args.warmup), (10, Duration::from_secs(10), Duration::ZERO));
        assert_eq!(args.channel, "web");
        assert_eq!(args.threads, 1);
        assert!(!args.json && !args.spawn);
    }

    #[test]
    fn several_instances_are_several_urls_or_spawned_processes() {
        let args = parse(&["--base-url", "http://a:1", "--base-url", "http://b:2", "--token", "t"]).unwrap();
        assert_eq!(args.base_urls, ["http://a:1", "http://b:2"]);
        assert_eq!(parse(&["--spawn", "--instances", "2"]).unwrap().instances, 2);
        assert!(parse(&["--spawn", "--instances", "0"]).is_err());
        assert!(parse(&["--base-url", "http://a:1", "--token", "t", "--instances", "2"]).is_err());
    }

    #[test]
    fn without_spawn_the_url_and_the_token_are_required() {
        assert!(parse(&["--token", "t"]).is_err());
        assert!(parse(&["--base-url", "http://x"]).is_err());
    }

    #[test]
    fn spawn_replaces_the_url_and_the_token() {
        let args = parse(&["--spawn", "--users", "4", "--duration", "2.5", "--json"]).unwrap();
        assert!(args.spawn && args.json);
        assert_eq!(args.users, 4);
        assert_eq!(args.duration, Duration::from_millis(2500));
        assert!(parse(&["--spawn", "--base-url", "http://x"]).is_err());
        assert!(parse(&["--spawn", "--token", "t"]).is_err());
    }

    #[test]
    fn server_flags_need_spawn() {
        let target = ["--base-url", "http://x", "--token", "t"];
        for extra in [
            &["--database-url", "postgres://localhost/postgres"][..],
            &["--server-bin", "/bin/true"],
            &["--workers", "2"],
            &["--server-arg=--http-threads=1"],
        ] {
            let args: Vec<&str> = target.iter().chain(extra).copied().collect();
            assert!(parse(&args).is_err(), "{extra:?} without --spawn");
        }
        let args = parse(&[
            "--spawn",
            "--database-url",
            "postgres://postgres@127.0.0.1/postgres",
            "--workers",
            "0",
            "--server-arg",
            "--http-threads",
            "--server-arg",
            "1",
        ])
        .unwrap();
        assert_eq!(args.database_url.as_deref(), Some("postgres://postgres@127.0.0.1/postgres"));
        assert_eq!(args.workers, Some(0));
        assert_eq!(args.server_args, ["--http-threads", "1"]);
    }

    #[test]
    fn durations_are_seconds_and_must_be_sensible() {
        assert_eq!(seconds("0").unwrap(), Duration::ZERO);
        assert_eq!(seconds("1.25").unwrap(), Duration::from_millis(1250));
        assert!(seconds("-1").is_err());
        assert!(seconds("ten").is_err());
        assert!(seconds("NaN").is_err());
        assert!(positive_seconds("0").is_err());
        assert!(parse(&["--spawn", "--duration", "0"]).is_err());
        assert!(parse(&["--spawn", "--users", "0"]).is_err());
        assert_eq!(parse(&["--spawn", "--warmup", "3"]).unwrap().warmup, Duration::from_secs(3));
    }
}
