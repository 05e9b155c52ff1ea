//! What every handler shares: the service, the settings, readiness checks and metrics.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use omniman_core::Omniman;
use omniman_core::context::Caller;
use omniman_core::ops::PathRules;
use omniman_core::ports::{ApiToken, StoreResult};
use omniman_core::prelude::Store;

use crate::config::HttpConfig;
use crate::console::{ConsoleKey, StockLevels};
use crate::events::EventFeed;
use crate::metrics::{Metrics, PoolProbe};
use crate::ratelimit::{RateLimitBackend, RateLimiter};

/// The outcome of one readiness check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckStatus {
    /// Working.
    Ok,
    /// Not working: the instance is not ready.
    Failing,
    /// Not working, but the instance serves without it (e.g. the shared cache tier is down: the
    /// database answers instead). Still ready.
    Degraded,
}

/// One named readiness check (the database, the cache…) with its latency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadinessCheck {
    /// Name, e.g. `database`.
    pub name: String,
    /// Outcome.
    pub status: CheckStatus,
    /// How long the check took.
    pub latency: Duration,
    /// Optional detail (an error message when failing).
    pub message: Option<String>,
}

impl ReadinessCheck {
    /// A passing check.
    pub fn ok(name: impl Into<String>, latency: Duration) -> ReadinessCheck {
        ReadinessCheck { name: name.into(), status: CheckStatus::Ok, latency, message: None }
    }

    /// A degraded check: reported, but the instance stays ready.
    pub fn degraded(name: impl Into<String>, latency: Duration, message: impl Into<String>) -> ReadinessCheck {
        ReadinessCheck { name: name.into(), status: CheckStatus::Degraded, latency, message: Some(message.into()) }
    }

    /// A failing check.
    pub fn failing(name: impl Into<String>, latency: Duration, message: impl Into<String>) -> ReadinessCheck {
        ReadinessCheck { name: name.into(), status: CheckStatus::Failing, latency, message: Some(message.into()) }
    }
}

/// What `GET /api/health/ready` asks: the server implements it for its database and cache.
#[async_trait]
pub trait Readiness: Send + Sync {
    /// Runs every check; the instance is ready when none fails (degraded ones are reported).
    async fn check(&self) -> Vec<ReadinessCheck>;
}

/// A readiness that has nothing to check and is always ready (tests, embedded use).
#[derive(Clone, Copy, Debug, Default)]
pub struct AlwaysReady;

#[async_trait]
impl Readiness for AlwaysReady {
    async fn check(&self) -> Vec<ReadinessCheck> {
        Vec::new()
    }
}

/// Token lookup without the store's type, so extractors and middleware need no generics.
pub(crate) trait TokenLookup: Send + Sync {
    fn token_by_hash<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<ApiToken>>>;
}

impl<S: Store> TokenLookup for Omniman<S> {
    fn token_by_hash<'a>(&'a self, token_hash: &'a str) -> BoxFuture<'a, StoreResult<Option<ApiToken>>> {
        Box::pin(Omniman::token_by_hash(self, token_hash))
    }
}

/// The application state: cheap to clone (everything is shared).
pub struct AppState<S> {
    pub(crate) hub: Arc<Omniman<S>>,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) path_rules: PathRules,
    pub(crate) readiness: Arc<dyn Readiness>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) limiter: Arc<RateLimiter>,
    pub(crate) pool: Option<Arc<dyn PoolProbe>>,
    pub(crate) events: Option<EventFeed>,
    pub(crate) console: Arc<ConsoleKey>,
    pub(crate) stock: Option<Arc<dyn StockLevels>>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> AppState<S> {
        AppState {
            hub: Arc::clone(&self.hub),
            config: Arc::clone(&self.config),
            path_rules: self.path_rules.clone(),
            readiness: Arc::clone(&self.readiness),
            metrics: Arc::clone(&self.metrics),
            limiter: Arc::clone(&self.limiter),
            pool: self.pool.clone(),
            events: self.events.clone(),
            console: Arc::clone(&self.console),
            stock: self.stock.clone(),
        }
    }
}

impl<S> fmt::Debug for AppState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppState").field("hub", &self.hub).field("config", &self.config).finish_non_exhaustive()
    }
}

impl<S: Store + 'static> AppState<S> {
    /// A state with [`AlwaysReady`] readiness and a fresh metrics registry.
    pub fn new(hub: Arc<Omniman<S>>, config: HttpConfig) -> AppState<S> {
        let console = Arc::new(ConsoleKey::new(config.console_secret.as_ref()));
        AppState {
            hub,
            path_rules: config.path_rules(),
            limiter: Arc::new(RateLimiter::new(config.rate_limits.clone())),
            config: Arc::new(config),
            readiness: Arc::new(AlwaysReady),
            metrics: Arc::new(Metrics::new()),
            pool: None,
            events: None,
            console,
            stock: None,
        }
    }

    /// Shows the stock levels of `source` on the console's stock page (read only).
    pub fn with_stock_levels(mut self, source: Arc<dyn StockLevels>) -> AppState<S> {
        self.stock = Some(source);
        self
    }

    /// Serves `GET /api/events` from `feed` (without one, the route answers 404
    /// `events_unavailable`).
    pub fn with_event_feed(mut self, feed: EventFeed) -> AppState<S> {
        self.metrics.register_collector(crate::events::FeedMetrics(feed.clone()));
        self.events = Some(feed);
        self
    }

    /// The live event feed, when the server keeps an event log.
    pub fn event_feed(&self) -> Option<&EventFeed> {
        self.events.as_ref()
    }

    /// Reports the database pool's usage in `GET /metrics` (`omniman_db_pool_connections`).
    pub fn with_pool_probe(mut self, probe: Arc<dyn PoolProbe>) -> AppState<S> {
        self.pool = Some(probe);
        self
    }

    /// Counts rate limits in `backend` (shared by every instance using it), in process only
    /// while it cannot answer.
    pub fn with_rate_limit_backend(mut self, backend: Arc<dyn RateLimitBackend>) -> AppState<S> {
        let limits = self.limiter.limits().clone();
        self.limiter = Arc::new(RateLimiter::new(limits).with_backend(backend));
        self
    }

    /// Replaces the readiness checks.
    pub fn with_readiness(mut self, readiness: Arc<dyn Readiness>) -> AppState<S> {
        self.readiness = readiness;
        self
    }

    /// The service.
    pub fn hub(&self) -> &Arc<Omniman<S>> {
        &self.hub
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// The metrics registry (the server may register its own metrics before starting).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The caller acting for a principal.
    pub(crate) fn caller(&self, actor: &str) -> Caller {
        Caller { actor: actor.to_owned(), path_rules: self.path_rules.clone() }
    }
}
