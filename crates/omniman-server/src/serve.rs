//! `omniman serve`, `omniman worker` and `omniman demo`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use omniman_core::channel::ChannelSpec;
use omniman_core::commit::CommitSettings;
use omniman_core::directive::RetryPolicy;
use omniman_core::money::Qty;
use omniman_core::ports::{ApiToken, ChannelStore, Role, TokenStore};
use omniman_http::{AppState, ConsoleSecret, HttpConfig, generate_token, hash_token, parse_rate_limits};
use omniman_storage::Database;
use omniman_worker::{Worker, WorkerConfig, WorkerHandle};
use serde_json::json;
use tokio::sync::Notify;

use crate::cli::{DbArgs, ServeArgs, WorkerArgs};
use crate::runtime::{
    CacheMetrics, DatabasePool, DatabaseStock, RedisRateLimits, ServerReadiness, count_statements, follow_event_log,
    forward_database_wakeups, handlers, hub, minutes, open_database, start_dispatcher,
};

/// Resolves when the process receives SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}

/// The example channels of `omniman demo`, chosen to show the whole model:
///
/// - `pos`: prices its own lines from `config.prices`, demands a fresh stock check before a
///   commit (so every modify enqueues a `stock.hold` directive and a shortage becomes an issue
///   with actions), and turns held stock into sold stock with a `stock.commit` directive;
/// - `web`: the client sends every price, no check;
/// - `ifood`: a marketplace whose orders arrive ready (`edit_policy: locked`), brought in with
///   `POST /api/sessions/import`.
pub(crate) fn demo_channels() -> Vec<ChannelSpec> {
    let specs = json!([
        {"code": "pos", "name": "Point of sale", "pricing_policy": "internal", "display_order": 1,
         "config": {
             "prices": {"COFFEE": 450, "CROISSANT": 700, "JUICE": 900, "WATER": 300},
             "required_checks_on_commit": ["stock"],
             "post_commit_directives": ["stock.commit"]
         }},
        {"code": "web", "name": "Web shop", "pricing_policy": "external", "display_order": 2, "config": {}},
        {"code": "ifood", "name": "iFood", "pricing_policy": "external", "edit_policy": "locked",
         "display_order": 3, "config": {}}
    ]);
    serde_json::from_value(specs).expect("demo channels are valid")
}

/// Stock levels the demo starts with: few croissants, so that a tab of three shows a shortage.
pub(crate) const DEMO_STOCK: &[(&str, i64)] = &[("COFFEE", 100), ("CROISSANT", 2), ("JUICE", 20), ("WATER", 50)];

/// Seeds the demo channels and stock (when `only_if_empty`, only into a database without
/// channels) and creates a new client token; returns the token.
pub(crate) async fn seed_demo(database: &Database, only_if_empty: bool) -> anyhow::Result<String> {
    let now = chrono::Utc::now();
    let existing = database.list_channels().await?;
    if !only_if_empty || existing.is_empty() {
        for spec in demo_channels() {
            database.upsert_channel(&spec, now).await?;
        }
        for (sku, units) in DEMO_STOCK {
            let qty = Qty::from_units(*units).context("demo stock level")?;
            database.set_stock_level(sku, qty, now).await?;
        }
    }
    let token = generate_token();
    let record = ApiToken {
        id: 0,
        name: format!("demo-{}", now.format("%Y%m%d%H%M%S%3f")),
        token_hash: hash_token(&token),
        role: Role::Client,
        channels: None,
        created_at: now,
        revoked_at: None,
        rate_limits: None,
    };
    anyhow::ensure!(database.create_token(&record).await?, "token name {} is taken", record.name);
    Ok(token)
}

/// `omniman demo`.
pub(crate) async fn demo(db: &DbArgs) -> anyhow::Result<()> {
    let database = open_database(db).await?;
    let token = seed_demo(&database, false).await?;
    eprintln!(
        "Seeded channels 'pos' (priced, stock-checked), 'web' (client prices) and 'ifood' (imported orders), \
         and stock for COFFEE, CROISSANT, JUICE and WATER. Client token:"
    );
    println!("{token}");
    Ok(())
}

fn start_workers(
    database: &Database,
    handlers: omniman_core::ext::HandlerRegistry,
    config: WorkerConfig,
    wakeup: Arc<Notify>,
) -> WorkerHandle {
    Worker::new(Arc::new(database.clone()), Arc::new(handlers), config).with_wakeup(wakeup).spawn()
}

/// Resolves when the workers' loop has ended on its own (never, without workers). Handler
/// panics are failed attempts; only a bug in the loop itself ends it.
async fn loop_ended(workers: Option<&WorkerHandle>) {
    match workers {
        Some(handle) => {
            while handle.is_running() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Connections accepted at once without `--max-connections`: 1024, or the open-file limit less
/// what the process needs besides client connections (the pool, the log, the listener).
fn default_max_connections() -> usize {
    const DEFAULT: usize = 1024;
    const RESERVED_FILES: u64 = 128;
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    limit.map_or(DEFAULT, |files| {
        let room = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
        DEFAULT.min(room).max(64)
    })
}

/// `omniman serve`.
pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let database = open_database(&args.db).await?;
    if args.demo {
        let token = seed_demo(&database, true).await?;
        eprintln!("Demo client token (send it as 'Authorization: Bearer <token>'):");
        println!("{token}");
    } else if database.list_channels().await?.is_empty() {
        tracing::warn!(
            "the database has no channels yet: run `omniman demo` for the example channels, or `omniman channels apply FILE`"
        );
    }
    let wakeup = Arc::new(Notify::new());
    let settings = CommitSettings { currency: args.currency.clone(), ..CommitSettings::default() };
    let hub = hub(database.clone(), settings, args.redis.config().as_ref())?;
    let tier = hub.store().redis().cloned();
    let workers = (args.workers > 0).then(|| {
        let config = WorkerConfig { concurrency: args.workers, ..WorkerConfig::default() };
        handlers(&hub).map(|h| start_workers(&database, h, config, wakeup.clone()))
    });
    let workers = workers.transpose()?;
    let listener = workers.is_some().then(|| forward_database_wakeups(&database, wakeup.clone()));
    // Webhooks are dispatched where directives run.
    let dispatcher = workers.is_some().then(|| start_dispatcher(&database, wakeup.clone()));

    let rate_limits = match &args.rate_limit_default {
        Some(text) => parse_rate_limits(text).context("--rate-limit-default")?,
        None => HttpConfig::default().rate_limits,
    };
    let config = HttpConfig {
        body_limit: args.body_limit,
        slow_request: Duration::from_millis(args.slow_request_ms),
        rate_limits,
        public_url: args.public_url.clone(),
        console_secret: args.console_secret.clone().map(ConsoleSecret::new),
        body_timeout: args.body_timeout,
        ..HttpConfig::default()
    };
    let cache_metrics = CacheMetrics(hub.store().clone());
    let (feed, feed_wakeups) = follow_event_log(&database).await?;
    let mut state = AppState::new(hub, config)
        .with_event_feed(feed.clone())
        .with_readiness(Arc::new(ServerReadiness {
            database: database.clone(),
            workers: workers.as_ref().map(WorkerHandle::liveness),
            redis: tier.clone(),
        }))
        .with_pool_probe(Arc::new(DatabasePool(database.clone())))
        .with_stock_levels(Arc::new(DatabaseStock(database.clone())));
    if let Some(tier) = tier {
        state = state.with_rate_limit_backend(Arc::new(RedisRateLimits(tier)));
    }
    state.metrics().register_collector(cache_metrics);
    let mut server = actix_web::HttpServer::new(move || {
        let metrics = Arc::clone(state.metrics());
        omniman_http::app(state.clone())
            .wrap(actix_web::middleware::from_fn(move |req, next| count_statements(Arc::clone(&metrics), req, next)))
    })
    .shutdown_timeout(30)
    // Signals are handled below: event streams never end on their own, so they are closed first.
    .disable_signals()
    .bind(&args.bind.0[..])
    .map_err(|e| {
        let why =
            if e.kind() == std::io::ErrorKind::AddrInUse { "the address is in use".to_owned() } else { e.to_string() };
        anyhow::anyhow!("cannot listen on {}: {why}; choose another address with --bind or OMNIMAN_BIND", args.bind)
    })?;
    let threads = args.http_threads.unwrap_or_else(default_http_threads).max(1);
    // actix counts connections per HTTP thread.
    let max_connections =
        args.max_connections.map_or_else(default_max_connections, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let per_thread = max_connections.div_ceil(threads).max(1);
    server = server.workers(threads).max_connections(per_thread);
    for addr in server.addrs() {
        tracing::info!(%addr, workers = args.workers, backend = database.backend().as_str(), "omniman listening");
    }
    // On SIGINT/SIGTERM: close the event streams, stop accepting and finish in-flight requests;
    // then the workers drain.
    let mut running = server.run();
    let http = running.handle();
    let died = tokio::select! {
        result = &mut running => {
            result.context("HTTP server failed")?;
            false
        }
        () = shutdown_signal() => {
            feed.close();
            // The server handles the stop while it is polled: both at once.
            let ((), result) = tokio::join!(http.stop(true), running);
            result.context("HTTP server failed")?;
            false
        }
        () = loop_ended(workers.as_ref()) => {
            // Its claimed directives would wait for another process's reaper and new ones would
            // pile up: stop, and let the supervisor restart the process.
            tracing::error!("the directive worker loop stopped unexpectedly; shutting down");
            let ((), result) = tokio::join!(http.stop(true), running);
            result.context("HTTP server failed")?;
            true
        }
    };
    if let Some(dispatcher) = dispatcher {
        dispatcher.shutdown().await;
    }
    if let Some(workers) = workers {
        let totals = workers.shutdown().await;
        tracing::info!(done = totals.done, failed = totals.failed, "directive workers stopped");
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    feed.close();
    feed_wakeups.abort();
    database.close();
    anyhow::ensure!(!died, "the directive worker loop stopped unexpectedly (see the log above)");
    Ok(())
}

/// HTTP threads when `--http-threads` is not given: half the cores, at least one. Each HTTP
/// thread runs a runtime of its own beside the process's main runtime (database connections,
/// directive workers, the event feed), which has a thread per core; a thread per core for HTTP
/// too made two threads per core switch in turn, and on a machine shared with PostgreSQL that
/// cost 10 to 16 % of the server's CPU per request (docs/performance.md, "HTTP threads").
fn default_http_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |cores| usize::from(cores).div_ceil(2))
}

/// `omniman worker`.
pub(crate) async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let database = open_database(&args.db).await?;
    let wakeup = Arc::new(Notify::new());
    let hub = hub(database.clone(), CommitSettings::default(), args.redis.config().as_ref())?;
    let config = WorkerConfig {
        topics: (!args.topics.is_empty()).then(|| args.topics.clone()),
        batch_size: usize::try_from(args.limit).unwrap_or(50),
        concurrency: usize::try_from(args.concurrency).unwrap_or(2),
        interval: Duration::from_secs_f64(args.interval.max(0.5)),
        policy: RetryPolicy { max_attempts: args.max_attempts, ..RetryPolicy::default() },
        reap_timeout: minutes(args.reap_timeout),
        ..WorkerConfig::default()
    };
    let registry = handlers(&hub)?;
    if args.once {
        omniman_worker::Dispatcher::new(Arc::new(database.clone())).run_once().await?;
        let report = Worker::new(Arc::new(database.clone()), Arc::new(registry), config).run_once().await?;
        println!(
            "done: {}, failed: {}, requeued: {}, reaped: {}",
            report.done, report.failed, report.requeued, report.reaped
        );
        return Ok(());
    }
    let listener = forward_database_wakeups(&database, wakeup.clone());
    let dispatcher = start_dispatcher(&database, wakeup.clone());
    let handle = start_workers(&database, registry, config, wakeup);
    tracing::info!("directive worker running; stop with SIGINT or SIGTERM");
    // A loop that ended on its own exits non-zero, so that a supervisor restarts the process.
    let died = tokio::select! {
        () = shutdown_signal() => false,
        () = loop_ended(Some(&handle)) => true,
    };
    dispatcher.shutdown().await;
    let totals = handle.shutdown().await;
    listener.abort();
    println!(
        "done: {}, failed: {}, requeued: {}, reaped: {}",
        totals.done, totals.failed, totals.requeued, totals.reaped
    );
    anyhow::ensure!(!died, "the directive worker loop stopped unexpectedly (see the log above)");
    Ok(())
}
