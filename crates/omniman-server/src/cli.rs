//! The command line (clap): every subcommand and flag of `omniman`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Omniman: a headless omnichannel order hub.
#[derive(Debug, Parser)]
#[command(name = "omniman", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, env = "OMNIMAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Where the database is.
#[derive(Clone, Debug, Args)]
pub(crate) struct DbArgs {
    /// `sqlite://path`, `sqlite::memory:`, or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://omniman.db")]
    pub(crate) database_url: String,
    /// Seconds a PostgreSQL statement may run (or wait for a lock) before it is cancelled and
    /// the request answered 503 `service_unavailable`; 0: no limit. Migrations are exempt.
    #[arg(long, env = "OMNIMAN_DB_STATEMENT_TIMEOUT", default_value = "5", value_parser = seconds)]
    pub(crate) db_statement_timeout: Duration,
    /// Seconds a request may wait for a free pooled database connection before it is answered
    /// 503 `service_unavailable`.
    #[arg(long, env = "OMNIMAN_DB_WAIT_TIMEOUT", default_value = "5", value_parser = seconds)]
    pub(crate) db_wait_timeout: Duration,
}

/// A number of seconds, fractions allowed (`0.5`), not negative.
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.trim().parse().map_err(|_| format!("'{text}' is not a number of seconds (e.g. 5 or 0.5)"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{text}': seconds must be a finite number, 0 or more"))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the HTTP API and in-process directive workers (migrations are applied at start).
    Serve(ServeArgs),
    /// Run directive workers without HTTP.
    Worker(WorkerArgs),
    /// Apply the database migrations.
    Migrate(DbArgs),
    /// Manage channels.
    Channels {
        /// The channel command.
        #[command(subcommand)]
        command: ChannelsCommand,
    },
    /// Manage API tokens.
    Tokens {
        /// The token command.
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Inspect and repair the directive queue.
    Directives {
        /// The directive command.
        #[command(subcommand)]
        command: DirectivesCommand,
    },
    /// Manage the built-in stock levels.
    Stock {
        /// The stock command.
        #[command(subcommand)]
        command: StockCommand,
    },
    /// Delete expired idempotency keys (the default) and abandon idle sessions.
    Cleanup(CleanupArgs),
    /// Seed the example channels (`pos`, `web`, `ifood`) and stock, and print a client token.
    Demo(DbArgs),
}

/// `omniman serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Database.
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Address to listen on: HOST:PORT (a host name is resolved), or a bare PORT on 127.0.0.1.
    #[arg(long, env = "OMNIMAN_BIND", default_value = "127.0.0.1:8000", value_parser = parse_bind)]
    pub(crate) bind: BindAddr,
    /// Directive handlers running at once in this process (0: no workers).
    #[arg(long, env = "OMNIMAN_WORKERS", default_value_t = 2)]
    pub(crate) workers: usize,
    /// Seed the demo channels when the database has none, and print a new client token.
    #[arg(long)]
    pub(crate) demo: bool,
    /// Largest request body in bytes.
    #[arg(long, env = "OMNIMAN_BODY_LIMIT", default_value_t = 1024 * 1024)]
    pub(crate) body_limit: usize,
    /// Requests slower than this many milliseconds are logged as warnings.
    #[arg(long, env = "OMNIMAN_SLOW_REQUEST_MS", default_value_t = 1000)]
    pub(crate) slow_request_ms: u64,
    /// The URL clients reach the API at (`https://orders.example.com`), for absolute `next` and
    /// `previous` links; without it the links are relative. Never taken from request headers.
    #[arg(long, env = "OMNIMAN_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// The key the operator console (`/console`) signs its cookies with. Without it a random key
    /// is drawn at start: signing in holds until a restart, and on this instance only, so set
    /// the same secret on every instance behind one address.
    #[arg(long, env = "OMNIMAN_CONSOLE_SECRET", hide_env_values = true)]
    pub(crate) console_secret: Option<String>,
    /// Seconds a client has to send a request's body once its headers arrived (past it: 408
    /// `request_timeout`, connection closed). The headers themselves have 5 s.
    #[arg(long, env = "OMNIMAN_BODY_TIMEOUT", default_value = "10", value_parser = seconds)]
    pub(crate) body_timeout: Duration,
    /// Open client connections the server accepts at once, across its HTTP threads; more wait in
    /// the kernel's backlog. At least 64. Default: 1024, or less when the open-file limit
    /// (`ulimit -n`) would not leave room for the database pool and the log.
    #[arg(long, env = "OMNIMAN_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(64..))]
    pub(crate) max_connections: Option<u32>,
    /// Default rate limits per principal, e.g. `commit=60/min,modify=300/min` (none by default).
    #[arg(long, env = "OMNIMAN_RATE_LIMIT_DEFAULT")]
    pub(crate) rate_limit_default: Option<String>,
    /// HTTP worker threads (default: half the cores, at least one; the database connections
    /// and the directive workers run on a runtime of their own, with a thread per core).
    #[arg(long, env = "OMNIMAN_HTTP_THREADS")]
    pub(crate) http_threads: Option<usize>,
    /// ISO 4217 currency of channels without `config.currency`.
    #[arg(long, env = "OMNIMAN_CURRENCY", default_value = "BRL", value_parser = currency)]
    pub(crate) currency: String,
    /// Redis shared by every instance.
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
}

/// Where the Redis shared by every instance is (optional).
#[derive(Clone, Debug, Args)]
pub(crate) struct RedisArgs {
    /// Redis shared by every instance (`redis://host:6379`): cache invalidations reach the other
    /// instances at once, and rate limits are counted across them. Without it, each instance
    /// caches and counts alone (docs/deployment.md). Redis down: served from the database.
    #[arg(long, env = "OMNIMAN_REDIS_URL")]
    pub(crate) redis_url: Option<String>,
    /// Prefix of every Redis key and channel name (several deployments can share one Redis).
    #[arg(long, env = "OMNIMAN_REDIS_PREFIX", default_value = omniman_cache::shared::DEFAULT_PREFIX)]
    pub(crate) redis_prefix: String,
}

impl RedisArgs {
    /// The shared tier's settings, when a URL is given.
    pub(crate) fn config(&self) -> Option<omniman_cache::RedisConfig> {
        let url = self.redis_url.as_ref().filter(|url| !url.trim().is_empty())?;
        Some(omniman_cache::RedisConfig::new(url.clone()).with_prefix(self.redis_prefix.clone()))
    }
}

/// Parses `--currency`.
fn currency(code: &str) -> Result<String, String> {
    omniman_core::channel::parse_currency(code)
}

/// Where `serve` listens: every address `--bind` resolved to.
#[derive(Clone, Debug)]
pub(crate) struct BindAddr(pub(crate) Vec<SocketAddr>);

impl std::fmt::Display for BindAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&addrs.join(", "))
    }
}

/// Parses `--bind`: `HOST:PORT` with an IP address or a host name (resolved now), or a bare
/// `PORT`, which means 127.0.0.1:PORT (loopback only, like the default).
pub(crate) fn parse_bind(text: &str) -> Result<BindAddr, String> {
    const EXAMPLES: &str = "e.g. 127.0.0.1:8000, localhost:8000, 0.0.0.0:8000 or 8000";
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let port = text.parse::<u16>().map_err(|_| format!("port {text} is above 65535; {EXAMPLES}"))?;
        return Ok(BindAddr(vec![SocketAddr::from(([127, 0, 0, 1], port))]));
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(BindAddr(vec![addr]));
    }
    let Some((host, port)) = text.rsplit_once(':').filter(|(host, _)| !host.is_empty()) else {
        return Err(format!("expected HOST:PORT or PORT, {EXAMPLES}"));
    };
    let port = port.parse::<u16>().map_err(|_| format!("'{port}' is not a port (0 to 65535); {EXAMPLES}"))?;
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve '{host}' ({e}); {EXAMPLES}"))?
        .collect();
    if addrs.is_empty() {
        return Err(format!("'{host}' resolves to no address; {EXAMPLES}"));
    }
    Ok(BindAddr(addrs))
}

/// `omniman worker`.
#[derive(Debug, Args)]
pub(crate) struct WorkerArgs {
    /// Database.
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Only these topics (repeatable; default: every topic with a handler).
    #[arg(long = "topic")]
    pub(crate) topics: Vec<String>,
    /// Directives claimed per batch.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) limit: u32,
    /// Seconds between polls when idle (at least 0.5).
    #[arg(long, default_value_t = 2.0)]
    pub(crate) interval: f64,
    /// Attempts before a failing directive is given up.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..))]
    pub(crate) max_attempts: i32,
    /// Minutes a `running` directive's claim may go unrenewed before it is reaped (0: never;
    /// fractions allowed). Live workers renew theirs every quarter of this: use one value for all.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) reap_timeout: f64,
    /// Handlers running at once.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: u32,
    /// Reap, run one batch, print the counts and exit.
    #[arg(long)]
    pub(crate) once: bool,
    /// Redis shared with the instances: sessions this worker writes (check results) are dropped
    /// from their caches at once.
    #[command(flatten)]
    pub(crate) redis: RedisArgs,
}

/// `omniman channels …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ChannelsCommand {
    /// Create or update channels from a JSON or TOML file (one channel or a list).
    Apply {
        /// The file (`.toml` is read as TOML, anything else as JSON).
        file: PathBuf,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// List channels.
    List(DbArgs),
    /// Show one channel.
    Show {
        /// Channel code.
        code: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Activate or deactivate a channel.
    SetActive {
        /// Channel code.
        code: String,
        /// `true` or `false`.
        #[arg(action = clap::ArgAction::Set)]
        active: bool,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// A token's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// Sessions and orders of its channels.
    Client,
    /// Everything.
    Admin,
}

/// `omniman tokens …`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokensCommand {
    /// Create a token and print it (only the token, on stdout).
    Create {
        /// Principal name, recorded as the actor of events.
        #[arg(long)]
        name: String,
        /// Role.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Allowed channel codes, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// The token's own rate limits, e.g. `commit=60/min,modify=300/min` (classes `modify`,
        /// `commit`, `other`); they override `serve --rate-limit-default` class by class.
        #[arg(long, value_parser = omniman_http::parse_rate_limits)]
        rate_limit: Option<omniman_http::RateLimits>,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// List tokens (never their secrets).
    List(DbArgs),
    /// Revoke a token.
    Revoke {
        /// Principal name.
        name: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `omniman directives …`.
#[derive(Debug, Subcommand)]
pub(crate) enum DirectivesCommand {
    /// List directives, newest first.
    List {
        /// Only this status (`queued`, `running`, `done`, `failed`).
        #[arg(long)]
        status: Option<String>,
        /// Only this topic.
        #[arg(long)]
        topic: Option<String>,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Show one directive with its payload.
    Show {
        /// Directive id.
        id: i64,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Put a queued or failed directive (with --force, a done or running one) back in the queue,
    /// available now (attempts kept).
    Retry {
        /// Directive id.
        id: i64,
        /// Retry a `done` directive (it runs again) or take a `running` one from its worker.
        #[arg(long)]
        force: bool,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// Return directives stuck in `running` to the queue (or fail them when out of attempts).
    Reap {
        /// Minutes in `running` that count as stuck (fractions allowed).
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
        /// Attempts before giving up.
        #[arg(long, default_value_t = 5)]
        max_attempts: i32,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
}

/// `omniman stock …`.
#[derive(Debug, Subcommand)]
pub(crate) enum StockCommand {
    /// Set the quantity on hand of a SKU.
    Set {
        /// SKU.
        sku: String,
        /// Quantity on hand (up to 3 decimals; 0 means sold out).
        #[arg(allow_negative_numbers = true)]
        qty: String,
        /// Database.
        #[command(flatten)]
        db: DbArgs,
    },
    /// List stock levels with what is held.
    List(DbArgs),
}

/// `omniman cleanup`.
#[derive(Debug, Args)]
#[command(after_help = "With no flag, `omniman cleanup` runs the idempotency-key cleanup only. \
Sessions are abandoned only with an explicit --abandon-idle HOURS, and events deleted only with an explicit \
--events-older-than DAYS; give --idempotency as well to do both.")]
pub(crate) struct CleanupArgs {
    /// Delete idempotency keys past their expiry (the default when no flag is given).
    #[arg(long)]
    pub(crate) idempotency: bool,
    /// Abandon open sessions idle for longer than this many hours (without --idempotency, only
    /// this runs).
    #[arg(long, value_name = "HOURS")]
    pub(crate) abandon_idle: Option<u32>,
    /// Delete events of the event log older than this many days, keeping the newest (without
    /// --idempotency, only this runs).
    #[arg(long, value_name = "DAYS")]
    pub(crate) events_older_than: Option<u32>,
    /// Database.
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[cfg(test)]
mod tests {
    use super::parse_bind;

    #[test]
    fn bind_is_host_and_port_or_a_bare_port() {
        let bind = |text: &str| parse_bind(text).map(|b| b.to_string());
        assert_eq!(bind("8001").unwrap(), "127.0.0.1:8001");
        assert_eq!(bind("0.0.0.0:80").unwrap(), "0.0.0.0:80");
        assert_eq!(bind("[::1]:8000").unwrap(), "[::1]:8000");
        assert!(bind("localhost:8001").unwrap().contains(":8001"));
        for bad in ["", "99999", "127.0.0.1", ":8000", "localhost:http", "host:99999"] {
            let error = bind(bad).unwrap_err();
            assert!(error.ends_with("e.g. 127.0.0.1:8000, localhost:8000, 0.0.0.0:8000 or 8000"), "{bad}: {error}");
        }
    }
}
