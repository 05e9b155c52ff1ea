//! Wiring: the database, the service, the handler registry, the webhook dispatcher, readiness and
//! worker wake-ups.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use anyhow::Context;
use async_trait::async_trait;
use omniman_cache::{CacheConfig, CachedStore, RedisConfig, RedisTier};
use omniman_core::Omniman;
use omniman_core::commit::CommitSettings;
use omniman_core::ext::{
    ActionResolver, ChannelPrices, Extensions, ExtensionsBuilder, HandlerRegistry, ItemPricingModifier,
    SessionTotalModifier, StockBackend,
};
use omniman_http::events::{EventFeed, FeedSettings};
use omniman_http::{
    Metrics, PoolProbe, PoolUsage, Rate, RateLimitBackend, RateLimitStatus, Readiness, ReadinessCheck, RouteClass,
};
use omniman_storage::{Database, StatementCounter, StorageConfig, run_migrations};
use omniman_worker::handlers::deliver::WebhookDeliveryHandler;
use omniman_worker::handlers::payment::{MockPayments, PaymentCaptureHandler, PaymentRefundHandler};
use omniman_worker::handlers::stock::{StockCommitHandler, StockHoldHandler};
use omniman_worker::handlers::webhook::WebhookHandler;
use omniman_worker::{Dispatcher, DispatcherHandle, WorkerLiveness, WorkerState};
use tokio::sync::Notify;

use crate::cli::DbArgs;

/// Connects to the database and applies pending migrations.
pub(crate) async fn open_database(db: &DbArgs) -> anyhow::Result<Database> {
    Ok(open_and_migrate(db).await?.0)
}

/// Connects to the database and applies pending migrations; returns the names of those applied.
pub(crate) async fn open_and_migrate(db: &DbArgs) -> anyhow::Result<(Database, Vec<String>)> {
    let mut config = StorageConfig::new(db.database_url.clone()).with_wait_timeout(db.db_wait_timeout);
    if !db.db_statement_timeout.is_zero() {
        config = config.with_statement_timeout(db.db_statement_timeout);
    }
    let database = match Database::connect(&config).await {
        Ok(database) => database,
        Err(error) => {
            let context = format!("cannot open the database at {}", redact(&db.database_url));
            return Err(match connect_hint(&db.database_url, &error.to_string()).await {
                Some(hint) => anyhow::anyhow!(hint).context(context),
                None => anyhow::Error::new(error).context(context),
            });
        }
    };
    let applied = run_migrations(&database).await.context("cannot apply the migrations")?;
    for name in &applied {
        tracing::info!(migration = %name, "applied migration");
    }
    Ok((database, applied))
}

/// What to do about a failed connection, when the cause is a common one: no PostgreSQL server
/// listening (the driver only says "error connecting to server", so the address is probed), or
/// a database that was never created.
async fn connect_hint(url: &str, error: &str) -> Option<String> {
    if let Some(name) = error.split("database \"").nth(1).and_then(|rest| rest.split_once("\" does not exist")) {
        let name = name.0;
        return Some(format!(
            "database \"{name}\" does not exist; create it with `createdb {name}` \
             (or `CREATE DATABASE \"{name}\";` in psql), or point DATABASE_URL at an existing one"
        ));
    }
    let (host, port) = postgres_address(url)?;
    let probe = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(5), probe).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let address = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
            Some(format!(
                "connection refused at {address}; is PostgreSQL running? see DATABASE_URL (or --database-url)"
            ))
        }
        _ => None,
    }
}

/// The host and port of a `postgres://` URL, with libpq's defaults (`localhost`, 5432); `None`
/// for other URLs.
fn postgres_address(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(port) => port.parse().ok()?,
        None => 5432,
    };
    Some((if host.is_empty() { "localhost" } else { host }.to_owned(), port))
}

/// A database URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// A duration in (possibly fractional) minutes; negative and non-finite values are zero.
#[expect(clippy::cast_possible_truncation)] // rounded and clamped first
pub(crate) fn minutes(m: f64) -> chrono::TimeDelta {
    let millis = if m.is_finite() && m > 0.0 { (m * 60_000.0).round() } else { 0.0 };
    // Bounded by the f64 → i64 conversion's saturation; a century is plenty.
    chrono::TimeDelta::milliseconds((millis.min(3.2e12)) as i64)
}

/// Wakes this process's idle workers when directives are queued: at once after this process's
/// own writes that queued some (`Database::directive_wakeups`; the writes that queued none wake
/// nobody), and on PostgreSQL after other processes' too, through `NOTIFY` (listening again if
/// the connection drops). Workers also poll, so a lost wake-up only delays.
pub(crate) fn forward_database_wakeups(database: &Database, wakeup: Arc<Notify>) -> tokio::task::JoinHandle<()> {
    let database = database.clone();
    tokio::spawn(async move {
        let mut local = database.directive_wakeups();
        let own_writes = async {
            while local.wait().await {
                wakeup.notify_one();
            }
        };
        let other_processes = async {
            if database.backend() != omniman_storage::Backend::Postgres {
                return;
            }
            loop {
                match database.listen_directives().await {
                    Ok(Some(mut wakeups)) => {
                        while wakeups.wait().await {
                            wakeup.notify_one();
                        }
                        tracing::warn!("lost the LISTEN connection; listening again (workers keep polling)");
                    }
                    Ok(None) => return,
                    Err(error) => {
                        tracing::warn!(%error, "cannot LISTEN for new directives; retrying (workers keep polling)");
                    }
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        };
        tokio::join!(own_writes, other_processes);
    })
}

/// Follows the database's event log for `GET /api/events`. This process's writes wake the feed
/// at once; other processes' writes (other instances, `omniman worker`, the CLI) are found by
/// polling, every 20 ms on PostgreSQL and every second on SQLite, where one process owns the
/// database (docs/events.md, "Several instances"). Returns the feed and the task forwarding the
/// wake-ups.
pub(crate) async fn follow_event_log(database: &Database) -> anyhow::Result<(EventFeed, tokio::task::JoinHandle<()>)> {
    let poll = match database.backend() {
        omniman_storage::Backend::Postgres => std::time::Duration::from_millis(20),
        omniman_storage::Backend::Sqlite => std::time::Duration::from_secs(1),
    };
    let settings = FeedSettings { poll, ..FeedSettings::default() };
    let feed = EventFeed::start(Arc::new(database.clone()), settings).await?;
    let waker = feed.clone();
    let mut wakeups = database.event_wakeups();
    let task = tokio::spawn(async move {
        while wakeups.wait().await {
            waker.wake();
        }
    });
    Ok((feed, task))
}

/// The service's registry: prices from each channel's `config.prices`, totals and the `stock`
/// issue resolver.
pub(crate) fn service_extensions() -> anyhow::Result<Extensions> {
    Ok(ExtensionsBuilder::new()
        .modifier(ItemPricingModifier::new(Arc::new(ChannelPrices)))
        .modifier(SessionTotalModifier)
        .resolver(Arc::new(ActionResolver::new("stock")))?
        .build())
}

/// What the service runs on: the database behind the in-process cache (docs/performance.md).
pub(crate) type Store = CachedStore<Database>;

/// The service over `database`, with the cache in front, and the shared tier when `redis` is
/// given (must then run inside the tokio runtime).
pub(crate) fn hub(
    database: Database,
    settings: CommitSettings,
    redis: Option<&RedisConfig>,
) -> anyhow::Result<Arc<Omniman<Store>>> {
    let mut store = CachedStore::new(database, CacheConfig::default());
    if let Some(config) = redis {
        store = store.with_redis(config).context("--redis-url")?;
    }
    Ok(Arc::new(Omniman::new(store, service_extensions()?).with_settings(settings)))
}

/// Rate limits counted in Redis: one budget per principal and class for every instance.
#[derive(Debug)]
pub(crate) struct RedisRateLimits(pub(crate) RedisTier);

/// Whole seconds, rounded up.
fn ceil_secs(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[async_trait]
impl RateLimitBackend for RedisRateLimits {
    async fn acquire(&self, principal: &str, class: RouteClass, rate: Rate) -> Option<RateLimitStatus> {
        let key = format!("{}:{principal}", class.as_str());
        let outcome = self.0.gcra(&key, rate.requests, rate.per).await?;
        Some(RateLimitStatus {
            class,
            limit: rate.requests,
            remaining: outcome.remaining,
            reset_secs: ceil_secs(outcome.reset_after),
            window_secs: rate.per.as_secs(),
            retry_after_secs: (!outcome.allowed).then(|| ceil_secs(outcome.retry_after).max(1)),
        })
    }
}

/// The cache's hits, misses and invalidations on `/metrics`, read at scrape time.
#[derive(Debug)]
pub(crate) struct CacheMetrics(pub(crate) Store);

impl prometheus_client::collector::Collector for CacheMetrics {
    fn encode(&self, mut encoder: prometheus_client::encoding::DescriptorEncoder) -> std::fmt::Result {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::{MetricType, TypedMetric};
        let c = self.0.counts();
        let lookups = [
            ("token", "hit", c.token_hits),
            ("token", "miss", c.token_misses),
            ("channel", "hit", c.channel_hits),
            ("channel", "miss", c.channel_misses),
            ("session", "hit", c.session_hits),
            ("session", "miss", c.session_misses),
        ];
        let mut family = encoder.encode_descriptor(
            "cache_lookups",
            "Cache lookups by kind (token, channel, session: the session a write starts from) and result",
            None,
            MetricType::Counter,
        )?;
        for (kind, result, n) in lookups {
            ConstCounter::new(n).encode(family.encode_family(&[("kind", kind), ("result", result)])?)?;
        }
        let counter = |encoder: &mut prometheus_client::encoding::DescriptorEncoder, name, help, n: u64| {
            let metric = encoder.encode_descriptor(name, help, None, <ConstCounter<u64> as TypedMetric>::TYPE)?;
            ConstCounter::new(n).encode(metric)
        };
        counter(
            &mut encoder,
            "cache_invalidations",
            "Cache entries dropped as stale, changed by a write through this process, or changed by another instance",
            c.invalidations,
        )?;
        let Some(tier) = self.0.redis() else { return Ok(()) };
        let r = tier.counts();
        let up = prometheus_client::metrics::gauge::ConstGauge::new(i64::from(r.up));
        up.encode(encoder.encode_descriptor(
            "cache_redis_up",
            "1 while Redis answers; 0 while the instance serves without it (from the database)",
            None,
            MetricType::Gauge,
        )?)?;
        counter(
            &mut encoder,
            "cache_redis_errors",
            "Redis commands that failed or timed out, and connections lost or refused",
            r.errors,
        )?;
        let mut family = encoder.encode_descriptor(
            "cache_redis_messages",
            "Invalidations sent to, received from, or not sent (Redis down) to the other instances",
            None,
            MetricType::Counter,
        )?;
        for (direction, n) in [("published", r.published), ("received", r.received), ("unsent", r.unsent)] {
            ConstCounter::new(n).encode(family.encode_family(&[("direction", direction)])?)?;
        }
        counter(
            &mut encoder,
            "cache_redis_resyncs",
            "Times the in-process cache was dropped whole on (re)connecting to Redis (invalidations may have been missed)",
            r.resyncs,
        )?;
        counter(
            &mut encoder,
            "rate_limit_fallbacks",
            "Rate-limit decisions counted in process because Redis could not answer",
            r.rate_limit_fallbacks,
        )
    }
}

/// The stock backend the bundled handlers use.
pub(crate) fn stock_backend(database: &Database) -> Arc<dyn StockBackend> {
    Arc::new(database.clone())
}

/// The workers' registry: every bundled handler.
pub(crate) fn handlers(hub: &Arc<Omniman<Store>>) -> anyhow::Result<HandlerRegistry> {
    let stock = stock_backend(hub.store().inner());
    // The bundled payment provider is the mock; a deployment plugs its provider here.
    let payments = Arc::new(MockPayments::new());
    Ok(HandlerRegistry::new()
        .register(Arc::new(StockHoldHandler::new(hub.clone(), stock.clone())))?
        .register(Arc::new(StockCommitHandler::new(hub.clone(), stock)))?
        .register(Arc::new(PaymentCaptureHandler::new(hub.clone(), payments.clone())))?
        .register(Arc::new(PaymentRefundHandler::new(hub.clone(), payments)))?
        .register(Arc::new(WebhookHandler::new(hub.clone())))?
        .register(Arc::new(WebhookDeliveryHandler::new(hub.clone())))?)
}

/// How often the webhook dispatcher looks for new events in the log.
const DISPATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// The webhook dispatcher, beside the directive workers: it turns new events of the log into
/// `webhook.deliver` directives and wakes the workers. Several processes may run one: the
/// stored position's compare-and-set lets one of them dispatch each event.
pub(crate) fn start_dispatcher(database: &Database, wakeup: Arc<Notify>) -> DispatcherHandle {
    Dispatcher::new(Arc::new(database.clone())).with_wakeup(wakeup).spawn(DISPATCH_INTERVAL)
}

/// How long readiness waits for the database.
const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Readiness: the database answers; the in-process directive workers (when there are any) are
/// alive and cycling.
#[derive(Debug)]
pub(crate) struct ServerReadiness {
    /// The database.
    pub(crate) database: Database,
    /// The in-process workers' loop, when `serve` started one.
    pub(crate) workers: Option<WorkerLiveness>,
    /// The shared cache tier, when `--redis-url` configured one.
    pub(crate) redis: Option<RedisTier>,
}

/// The `cache` check: `ok` while Redis answers, `degraded` (still ready) while it does not.
pub(crate) fn cache_check(tier: &RedisTier) -> ReadinessCheck {
    const NAME: &str = "cache";
    let latency = std::time::Duration::ZERO;
    if tier.is_up() {
        ReadinessCheck::ok(NAME, latency)
    } else {
        ReadinessCheck::degraded(
            NAME,
            latency,
            "Redis unreachable: serving from the database, rate limits counted per instance; reconnecting",
        )
    }
}

/// The `directive_workers` check for a worker loop in `state`: failing when the loop's task has
/// ended (a panic), has shown no progress for longer than its stall threshold, or cannot write
/// the outcomes of the handlers it ran.
pub(crate) fn workers_check(state: WorkerState, stall_after: std::time::Duration) -> ReadinessCheck {
    const NAME: &str = "directive_workers";
    let latency = std::time::Duration::ZERO;
    match state {
        WorkerState::Running { .. } => ReadinessCheck::ok(NAME, latency),
        WorkerState::Stalled { since_last_beat } => ReadinessCheck::failing(
            NAME,
            latency,
            format!(
                "no worker progress for {:.1}s (stalled after {:.1}s)",
                since_last_beat.as_secs_f64(),
                stall_after.as_secs_f64()
            ),
        ),
        WorkerState::Failing { unwritten } => ReadinessCheck::failing(
            NAME,
            latency,
            format!("{unwritten} directive outcome(s) cannot be written to the database (retrying)"),
        ),
        WorkerState::Stopped => ReadinessCheck::failing(NAME, latency, "the directive worker loop has stopped"),
    }
}

#[async_trait]
impl Readiness for ServerReadiness {
    async fn check(&self) -> Vec<ReadinessCheck> {
        let started = Instant::now();
        // Readiness answers within a second whatever the database does (a full pool, a lock).
        let database = match tokio::time::timeout(READY_WITHIN, self.database.ping()).await {
            Ok(Ok(())) => ReadinessCheck::ok("database", started.elapsed()),
            Ok(Err(e)) => ReadinessCheck::failing("database", started.elapsed(), e.to_string()),
            Err(_) => ReadinessCheck::failing("database", started.elapsed(), "no answer within 1 s".to_owned()),
        };
        let mut checks = vec![database];
        if let Some(workers) = &self.workers {
            checks.push(workers_check(workers.state(), workers.stall_after()));
        }
        if let Some(tier) = &self.redis {
            checks.push(cache_check(tier));
        }
        checks
    }
}

/// The pool's usage for `GET /metrics`.
pub(crate) struct DatabasePool(pub(crate) Database);

impl PoolProbe for DatabasePool {
    fn pool_usage(&self) -> PoolUsage {
        let status = self.0.pool_status();
        PoolUsage { max: status.max_size, in_use: status.in_use(), idle: status.idle, waiting: status.waiting }
    }
}

/// The database's stock levels for the console's stock page.
pub(crate) struct DatabaseStock(pub(crate) Database);

#[async_trait]
impl omniman_http::StockLevels for DatabaseStock {
    async fn stock_levels(&self) -> Result<Vec<omniman_http::StockRow>, String> {
        let levels = self.0.stock_levels(chrono::Utc::now()).await.map_err(|e| e.to_string())?;
        Ok(levels
            .into_iter()
            .map(|l| omniman_http::StockRow { sku: l.sku, on_hand: l.on_hand, held: l.held, available: l.available })
            .collect())
    }
}

/// Middleware counting the SQL statements each request runs (token lookup included,
/// transaction control excluded) into `omniman_sql_statements_per_request`. Statements a
/// streamed body runs after the handler returns (`/api/orders/stream`) are not counted.
pub(crate) async fn count_statements(
    metrics: Arc<Metrics>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = req.method().clone();
    let counter = StatementCounter::count_only();
    let res = counter.scope(next.call(req)).await?;
    let route = omniman_http::route_pattern(res.request());
    metrics.observe_statements(&method, &route, counter.count());
    Ok(res)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use omniman_http::CheckStatus;
    use omniman_worker::WorkerState;

    use super::{ServerReadiness, postgres_address, redact, workers_check};
    use omniman_http::Readiness;

    /// Readiness answers within a second even when no pooled connection is free (the pool waits
    /// up to 30 s here).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readiness_answers_within_a_second_when_the_pool_is_exhausted() {
        let Some(test_db) = omniman_storage::test_support::TestDb::postgres_with(|config| {
            config.with_pool_size(1).with_wait_timeout(Duration::from_secs(30))
        })
        .await
        else {
            return;
        };
        let readiness = ServerReadiness { database: test_db.db().clone(), workers: None, redis: None };
        assert_eq!(readiness.check().await[0].status, CheckStatus::Ok);
        let held = test_db.get_pg().await.unwrap();
        let started = std::time::Instant::now();
        let checks = readiness.check().await;
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
        assert_eq!(checks[0].status, CheckStatus::Failing);
        assert_eq!(checks[0].message.as_deref(), Some("no answer within 1 s"));
        drop(held);
    }

    #[test]
    fn workers_check_fails_when_the_loop_stopped_or_stalled() {
        let stall_after = Duration::from_secs(66);
        let ok = workers_check(WorkerState::Running { since_last_beat: Duration::from_secs(1) }, stall_after);
        assert_eq!((ok.name.as_str(), ok.status, ok.message), ("directive_workers", CheckStatus::Ok, None));
        let stalled = workers_check(WorkerState::Stalled { since_last_beat: Duration::from_secs(90) }, stall_after);
        assert_eq!(stalled.status, CheckStatus::Failing);
        assert_eq!(stalled.message.as_deref(), Some("no worker progress for 90.0s (stalled after 66.0s)"));
        let stopped = workers_check(WorkerState::Stopped, stall_after);
        assert_eq!(stopped.status, CheckStatus::Failing);
        assert_eq!(stopped.message.as_deref(), Some("the directive worker loop has stopped"));
        let failing = workers_check(WorkerState::Failing { unwritten: 3 }, stall_after);
        assert_eq!(failing.status, CheckStatus::Failing);
        assert_eq!(
            failing.message.as_deref(),
            Some("3 directive outcome(s) cannot be written to the database (retrying)")
        );
    }

    #[test]
    fn postgres_addresses_default_like_libpq() {
        let address = |url: &str| postgres_address(url).map(|(host, port)| format!("{host} {port}"));
        assert_eq!(address("postgres://app:pw@db.internal:6432/omniman?sslmode=require").unwrap(), "db.internal 6432");
        assert_eq!(address("postgresql://app@db/omniman").unwrap(), "db 5432");
        assert_eq!(address("postgres:///omniman").unwrap(), "localhost 5432");
        assert_eq!(address("postgres://[::1]:5433/omniman").unwrap(), "::1 5433");
        assert_eq!(address("sqlite://omniman.db"), None);
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(redact("postgres://app:secret@db:5432/omniman"), "postgres://app:***@db:5432/omniman");
        assert_eq!(redact("postgres://app@db/omniman"), "postgres://app@db/omniman");
        assert_eq!(redact("sqlite://omniman.db"), "sqlite://omniman.db");
    }
}
