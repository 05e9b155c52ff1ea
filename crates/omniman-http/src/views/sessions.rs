//! `/api/sessions…`: sessions, their lines and the commit answer.

use chrono::{DateTime, Utc};
use omniman_core::session::{Item, Session};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::common::{count, ts};

/// A session line.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// Unique in the session.
    pub line_id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Quantity, a 3-decimal string.
    #[schema(example = "1.500")]
    pub qty: String,
    /// Unit price in quanta.
    pub unit_price_q: i64,
    /// Line total in quanta.
    pub line_total_q: i64,
    /// Free-form data.
    #[schema(value_type = Object)]
    pub meta: Map<String, Value>,
}

impl From<&Item> for ItemView {
    fn from(i: &Item) -> ItemView {
        ItemView {
            line_id: i.line_id.clone(),
            sku: i.sku.clone(),
            name: i.name.clone(),
            qty: i.qty.to_string(),
            unit_price_q: i.unit_price_q.unwrap_or(0),
            line_total_q: i.total_q(),
            meta: i.meta.clone(),
        }
    }
}

/// A session (detail).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// Id.
    pub id: i64,
    /// Key, unique per channel.
    pub session_key: String,
    /// Channel id.
    pub channel: i64,
    /// Channel code.
    pub channel_code: String,
    /// Handle type.
    pub handle_type: Option<String>,
    /// Handle ref.
    pub handle_ref: Option<String>,
    /// `open`, `committed` or `abandoned`.
    pub state: String,
    /// `internal` or `external`.
    pub pricing_policy: String,
    /// `open` or `locked`.
    pub edit_policy: String,
    /// +1 per successful modify.
    pub rev: i64,
    /// +1 per persisted change.
    pub version: i64,
    /// Lines in insertion order.
    pub items: Vec<ItemView>,
    /// Free-form data with the system keys `checks` and `issues`.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// Written by modifiers.
    #[schema(value_type = Object)]
    pub pricing: Map<String, Value>,
    /// Σ line totals.
    pub total_q: i64,
    /// Number of lines (not units).
    pub items_count: i64,
    /// The successful commit's idempotency key.
    pub commit_token: Option<String>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub opened_at: DateTime<Utc>,
    /// Commit time.
    #[serde(serialize_with = "ts::opt")]
    pub committed_at: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Session> for SessionView {
    fn from(s: &Session) -> SessionView {
        SessionView {
            id: s.id,
            session_key: s.session_key.clone(),
            channel: s.channel_id,
            channel_code: s.channel_code.clone(),
            handle_type: s.handle_type.clone(),
            handle_ref: s.handle_ref.clone(),
            state: s.state.as_str().to_owned(),
            pricing_policy: s.pricing_policy.as_str().to_owned(),
            edit_policy: s.edit_policy.as_str().to_owned(),
            rev: s.rev,
            version: s.version,
            items: s.items.iter().map(ItemView::from).collect(),
            data: s.data.clone(),
            pricing: s.pricing.clone(),
            total_q: s.total_q(),
            items_count: count(s.items_count()),
            commit_token: s.commit_token.clone(),
            opened_at: s.opened_at,
            committed_at: s.committed_at,
            updated_at: s.updated_at,
        }
    }
}

/// A session in a list: the detail without `items`, `data` and `pricing`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SessionSummaryView {
    /// Id.
    pub id: i64,
    /// Key.
    pub session_key: String,
    /// Channel id.
    pub channel: i64,
    /// Channel code.
    pub channel_code: String,
    /// Handle type.
    pub handle_type: Option<String>,
    /// Handle ref.
    pub handle_ref: Option<String>,
    /// State.
    pub state: String,
    /// Pricing policy.
    pub pricing_policy: String,
    /// Edit policy.
    pub edit_policy: String,
    /// Rev.
    pub rev: i64,
    /// Version.
    pub version: i64,
    /// Σ line totals.
    pub total_q: i64,
    /// Number of lines.
    pub items_count: i64,
    /// The successful commit's idempotency key.
    pub commit_token: Option<String>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub opened_at: DateTime<Utc>,
    /// Commit time.
    #[serde(serialize_with = "ts::opt")]
    pub committed_at: Option<DateTime<Utc>>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Session> for SessionSummaryView {
    fn from(s: &Session) -> SessionSummaryView {
        SessionSummaryView {
            id: s.id,
            session_key: s.session_key.clone(),
            channel: s.channel_id,
            channel_code: s.channel_code.clone(),
            handle_type: s.handle_type.clone(),
            handle_ref: s.handle_ref.clone(),
            state: s.state.as_str().to_owned(),
            pricing_policy: s.pricing_policy.as_str().to_owned(),
            edit_policy: s.edit_policy.as_str().to_owned(),
            rev: s.rev,
            version: s.version,
            total_q: s.total_q(),
            items_count: count(s.items_count()),
            commit_token: s.commit_token.clone(),
            opened_at: s.opened_at,
            committed_at: s.committed_at,
            updated_at: s.updated_at,
        }
    }
}

/// The answer of a commit (201 new order, 200 already committed; replays keep theirs).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommitResultView {
    /// The order's ref.
    pub order_ref: String,
    /// The order's id.
    pub order_id: i64,
    /// `committed` or `already_committed`.
    #[schema(example = "committed")]
    pub status: String,
    /// Order total in quanta.
    pub total_q: i64,
    /// Number of lines.
    pub items_count: i64,
}

list_view!(
    /// A page of sessions.
    SessionList,
    SessionSummaryView
);
