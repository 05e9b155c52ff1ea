//! Prometheus metrics (`GET /metrics`, admin token).
//!
//! The adapter records request counts and latencies itself and reads the directive queue at
//! scrape time. Two families are fed by whoever knows the database: SQL statements per request
//! ([`Metrics::observe_statements`], recorded by a middleware the embedding server adds) and
//! pool usage (read at scrape time from the [`PoolProbe`] given to
//! [`AppState::with_pool_probe`](crate::AppState::with_pool_probe)).

use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use omniman_core::directive::DirectiveStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

/// Labels of the request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    /// The matched route pattern (`/api/sessions/{key}`), or `unmatched`.
    route: String,
    status: String,
}

/// Labels of the per-request statement histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

/// Labels of the pool gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: String,
}

/// How a database pool's connections are used, as a [`PoolProbe`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// The most connections the pool opens.
    pub max: usize,
    /// Connections checked out now.
    pub in_use: usize,
    /// Open connections waiting in the pool.
    pub idle: usize,
    /// Callers waiting for a connection (more than a moment: the pool is too small).
    pub waiting: usize,
}

/// Reads the database pool's usage at scrape time.
///
/// ```
/// use omniman_http::{PoolProbe, PoolUsage};
/// struct Fixed;
/// impl PoolProbe for Fixed {
///     fn pool_usage(&self) -> PoolUsage {
///         PoolUsage { max: 10, in_use: 2, idle: 3, waiting: 0 }
///     }
/// }
/// assert_eq!(Fixed.pool_usage().max, 10);
/// ```
pub trait PoolProbe: Send + Sync {
    /// The usage now.
    fn pool_usage(&self) -> PoolUsage;
}

/// Labels of the directive queue gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectiveLabels {
    status: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~32 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn statements_histogram() -> Histogram {
    // The budgets of docs/reference.md §12: load 1, modify 3, transition 3, commit 7 (plus 1 for
    // the token lookup; behind the cache, modify 1 and commit 5).
    Histogram::new([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 25.0])
}

/// A bounded label for the method (custom methods would grow the metrics without bound).
pub(crate) fn method_label(method: &actix_web::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The metrics registry and the adapter's own metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: RwLock<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    directives: Family<DirectiveLabels, Gauge>,
    statements: Family<RouteLabels, Histogram, fn() -> Histogram>,
    pool: Family<PoolLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry holding the request counter, the latency histogram, the directive gauge, the
    /// statements-per-request histogram and the pool gauge (the last two empty until fed).
    pub fn new() -> Metrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let directives = Family::<DirectiveLabels, Gauge>::default();
        let mut registry = Registry::with_prefix("omniman");
        registry.register("http_requests", "HTTP requests by route pattern and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route pattern and status",
            latency.clone(),
        );
        registry.register("directive_queue_depth", "Directives by status (read at scrape time)", directives.clone());
        let statements = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            statements_histogram as fn() -> Histogram,
        );
        registry.register(
            "sql_statements_per_request",
            "SQL statements a request ran (transaction control excluded), by route pattern",
            statements.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database pool connections by state: max, in_use, idle, waiting (read at scrape time)",
            pool.clone(),
        );
        Metrics { registry: RwLock::new(registry), requests, latency, directives, statements, pool }
    }

    /// Registers another metric (the server's own), prefixed `omniman_`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.write().unwrap_or_else(PoisonError::into_inner).register(name, help, metric);
    }

    /// Registers metrics read at scrape time (the server's cache counts…), prefixed `omniman_`.
    pub fn register_collector(&self, collector: impl prometheus_client::collector::Collector) {
        self.registry.write().unwrap_or_else(PoisonError::into_inner).register_collector(Box::new(collector));
    }

    /// Records one request.
    pub(crate) fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { method: method.to_owned(), route: route.to_owned(), status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// Records how many SQL statements one request ran. `route` is the matched route pattern
    /// (`/api/sessions/{key}/modify`), as [`HttpRequest::match_pattern`] gives it, or
    /// `unmatched`.
    ///
    /// [`HttpRequest::match_pattern`]: actix_web::HttpRequest::match_pattern
    pub fn observe_statements(&self, method: &actix_web::http::Method, route: &str, statements: u64) {
        let labels = RouteLabels { method: method_label(method).to_owned(), route: route.to_owned() };
        // Counts are small integers: the conversion is exact.
        #[expect(clippy::cast_precision_loss)]
        self.statements.get_or_create(&labels).observe(statements as f64);
    }

    /// Sets the pool gauge.
    pub(crate) fn set_pool_usage(&self, usage: PoolUsage) {
        for (state, n) in
            [("max", usage.max), ("in_use", usage.in_use), ("idle", usage.idle), ("waiting", usage.waiting)]
        {
            self.pool.get_or_create(&PoolLabels { state: state.to_owned() }).set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Sets the directive gauge from the queue's counts (statuses absent from `counts` read 0).
    pub(crate) fn set_directive_counts(&self, counts: &[(DirectiveStatus, i64)]) {
        for status in
            [DirectiveStatus::Queued, DirectiveStatus::Running, DirectiveStatus::Done, DirectiveStatus::Failed]
        {
            let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
            self.directives.get_or_create(&DirectiveLabels { status: status.as_str().to_owned() }).set(n);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.read().unwrap_or_else(PoisonError::into_inner);
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            tracing::error!("metrics could not be encoded");
        }
        out
    }
}
