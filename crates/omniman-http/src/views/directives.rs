//! `/api/directives…`.

use chrono::{DateTime, Utc};
use omniman_core::directive::Directive;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::common::ts;

/// A directive (detail).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DirectiveView {
    /// Id.
    pub id: i64,
    /// Topic.
    pub topic: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Claims so far.
    pub attempts: i32,
    /// Not run before.
    #[serde(serialize_with = "ts::one")]
    pub available_at: DateTime<Utc>,
    /// Latest claim time.
    #[serde(serialize_with = "ts::opt")]
    pub started_at: Option<DateTime<Utc>>,
    /// Latest failure, or empty.
    pub last_error: String,
    /// Handler input.
    #[schema(value_type = Object)]
    pub payload: Map<String, Value>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Directive> for DirectiveView {
    fn from(d: &Directive) -> DirectiveView {
        DirectiveView {
            id: d.id,
            topic: d.topic.clone(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            available_at: d.available_at,
            started_at: d.started_at,
            last_error: d.last_error.clone(),
            payload: d.payload.clone(),
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

/// A directive in a list (no `payload`, `last_error`, `started_at`).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DirectiveSummaryView {
    /// Id.
    pub id: i64,
    /// Topic.
    pub topic: String,
    /// Status.
    pub status: String,
    /// Claims so far.
    pub attempts: i32,
    /// Not run before.
    #[serde(serialize_with = "ts::one")]
    pub available_at: DateTime<Utc>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Directive> for DirectiveSummaryView {
    fn from(d: &Directive) -> DirectiveSummaryView {
        DirectiveSummaryView {
            id: d.id,
            topic: d.topic.clone(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            available_at: d.available_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

list_view!(
    /// A page of directives.
    DirectiveList,
    DirectiveSummaryView
);
