//! `/api/health…`: liveness and readiness.

use serde::Serialize;
use utoipa::ToSchema;

/// `GET /api/health`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// Always `healthy` when the process answers.
    #[schema(example = "healthy")]
    pub status: String,
    /// The server's version.
    #[schema(example = "0.1.0")]
    pub version: String,
}

/// `GET /api/health/ready`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReadyView {
    /// `ready` (200) or `not_ready` (503).
    #[schema(example = "ready")]
    pub status: String,
    /// Each check with its outcome and latency.
    pub checks: Vec<ReadyCheckView>,
}

/// One readiness check.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ReadyCheckView {
    /// Name, e.g. `database`.
    pub name: String,
    /// `ok`, `failing` (not ready) or `degraded` (still ready: e.g. `cache` when Redis is down).
    pub status: String,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// Detail when failing or degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
