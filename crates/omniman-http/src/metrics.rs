//! Prometheus metrics (`GET /metrics`, admin token).

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

/// Labels of the directive queue gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectiveLabels {
    status: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~32 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The metrics registry and the adapter's own metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: RwLock<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    directives: Family<DirectiveLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry holding the request counter, the latency histogram and the directive gauge.
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
        Metrics { registry: RwLock::new(registry), requests, latency, directives }
    }

    /// Registers another metric (the server's own), prefixed `omniman_`.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.write().unwrap_or_else(PoisonError::into_inner).register(name, help, metric);
    }

    /// Records one request.
    pub(crate) fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let labels = RequestLabels { method: method.to_owned(), route: route.to_owned(), status: status.to_string() };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
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
