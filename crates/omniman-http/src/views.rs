//! The JSON shapes of requests and responses (docs/api.md, Routes), with their OpenAPI schemas.
//!
//! Responses are built from the core's types here and nowhere else. Timestamps are RFC 3339 in
//! UTC with a `Z`; quantities are 3-decimal strings; money is integer quanta.

use chrono::{DateTime, SecondsFormat, Utc};
use omniman_core::channel::Channel;
use omniman_core::directive::Directive;
use omniman_core::order::{Order, OrderEvent, OrderFlow, OrderItem};
use omniman_core::ports::OrderSummary;
use omniman_core::session::{Item, Session};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// RFC 3339, UTC, `Z`.
pub(crate) fn rfc3339(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

// Serde's `serialize_with` hands references in; the signatures are fixed.
#[allow(clippy::trivially_copy_pass_by_ref, clippy::ref_option)]
mod ts {
    use super::{DateTime, Serializer, Utc, rfc3339};

    pub(super) fn one<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(at))
    }

    pub(super) fn opt<S: Serializer>(at: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&rfc3339(at)),
            None => s.serialize_none(),
        }
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

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
    /// `ok` or `failing`.
    pub status: String,
    /// How long the check took, in milliseconds.
    pub latency_ms: f64,
    /// Detail when failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A channel.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: i64,
    /// Unique code.
    pub code: String,
    /// Display name (may be empty).
    pub name: String,
    /// `internal` or `external`.
    pub pricing_policy: String,
    /// `open` or `locked`.
    pub edit_policy: String,
    /// Sort key.
    pub display_order: u32,
    /// Configuration, verbatim.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Inactive channels refuse new sessions.
    pub is_active: bool,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> ChannelView {
        ChannelView {
            id: c.id,
            code: c.code.clone(),
            name: c.name.clone(),
            pricing_policy: c.pricing_policy.as_str().to_owned(),
            edit_policy: c.edit_policy.as_str().to_owned(),
            display_order: c.display_order,
            config: Value::Object(c.config.raw().clone()),
            is_active: c.is_active,
        }
    }
}

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

/// An order line.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OrderItemView {
    /// Unique in the order.
    pub line_id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Quantity, a 3-decimal string.
    pub qty: String,
    /// Unit price in quanta.
    pub unit_price_q: i64,
    /// Line total in quanta.
    pub line_total_q: i64,
    /// Free-form data.
    #[schema(value_type = Object)]
    pub meta: Map<String, Value>,
}

impl From<&OrderItem> for OrderItemView {
    fn from(i: &OrderItem) -> OrderItemView {
        OrderItemView {
            line_id: i.line_id.clone(),
            sku: i.sku.clone(),
            name: i.name.clone(),
            qty: i.qty.to_string(),
            unit_price_q: i.unit_price_q,
            line_total_q: i.line_total_q,
            meta: i.meta.clone(),
        }
    }
}

/// An order (detail).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OrderView {
    /// Id.
    pub id: i64,
    /// Unique ref, `ORD-YYYYMMDD-XXXXXXXX`.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    pub reference: String,
    /// Channel id.
    pub channel: i64,
    /// Channel code.
    pub channel_code: String,
    /// The committed session's key.
    pub session_key: String,
    /// Handle type.
    pub handle_type: Option<String>,
    /// Handle ref.
    pub handle_ref: Option<String>,
    /// Set by importers.
    pub external_ref: Option<String>,
    /// Current status.
    pub status: String,
    /// ISO 4217 currency.
    pub currency: String,
    /// Σ line totals in quanta.
    pub total_q: i64,
    /// Lines.
    pub items: Vec<OrderItemView>,
    /// Extension data.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
    /// The session at commit: `{"_v":1,"items","data","pricing","rev"}`.
    #[schema(value_type = Object)]
    pub snapshot: Value,
    /// Statuses the order may move to now.
    pub allowed_transitions: Vec<String>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
    /// First entered `confirmed`.
    #[serde(serialize_with = "ts::opt")]
    pub confirmed_at: Option<DateTime<Utc>>,
    /// First entered `processing`.
    #[serde(serialize_with = "ts::opt")]
    pub processing_at: Option<DateTime<Utc>>,
    /// First entered `ready`.
    #[serde(serialize_with = "ts::opt")]
    pub ready_at: Option<DateTime<Utc>>,
    /// First entered `dispatched`.
    #[serde(serialize_with = "ts::opt")]
    pub dispatched_at: Option<DateTime<Utc>>,
    /// First entered `delivered`.
    #[serde(serialize_with = "ts::opt")]
    pub delivered_at: Option<DateTime<Utc>>,
    /// First entered `completed`.
    #[serde(serialize_with = "ts::opt")]
    pub completed_at: Option<DateTime<Utc>>,
    /// First entered `cancelled`.
    #[serde(serialize_with = "ts::opt")]
    pub cancelled_at: Option<DateTime<Utc>>,
    /// First entered `returned`.
    #[serde(serialize_with = "ts::opt")]
    pub returned_at: Option<DateTime<Utc>>,
}

impl OrderView {
    /// The view of an order on its channel.
    pub fn new(channel: &Channel, o: &Order) -> OrderView {
        let t = &o.timestamps;
        OrderView {
            id: o.id,
            reference: o.reference.clone(),
            channel: o.channel_id,
            channel_code: o.channel_code.clone(),
            session_key: o.session_key.clone(),
            handle_type: o.handle_type.clone(),
            handle_ref: o.handle_ref.clone(),
            external_ref: o.external_ref.clone(),
            status: o.status.clone(),
            currency: o.currency.clone(),
            total_q: o.total_q,
            items: o.items.iter().map(OrderItemView::from).collect(),
            data: o.data.clone(),
            snapshot: o.snapshot.clone(),
            allowed_transitions: OrderFlow::for_channel(channel).allowed_transitions(&o.status).to_vec(),
            created_at: o.created_at,
            updated_at: o.updated_at,
            confirmed_at: t.confirmed_at,
            processing_at: t.processing_at,
            ready_at: t.ready_at,
            dispatched_at: t.dispatched_at,
            delivered_at: t.delivered_at,
            completed_at: t.completed_at,
            cancelled_at: t.cancelled_at,
            returned_at: t.returned_at,
        }
    }
}

/// An order after a transition: the order plus the status it left.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TransitionedView {
    /// The order.
    #[serde(flatten)]
    pub order: OrderView,
    /// The status before the transition.
    pub previous_status: String,
}

/// An order in a list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OrderSummaryView {
    /// Id.
    pub id: i64,
    /// Ref.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    pub reference: String,
    /// Channel id.
    pub channel: i64,
    /// Channel code.
    pub channel_code: String,
    /// Status.
    pub status: String,
    /// Currency.
    pub currency: String,
    /// Total in quanta.
    pub total_q: i64,
    /// Number of lines.
    pub items_count: i64,
    /// Handle type.
    pub handle_type: Option<String>,
    /// Handle ref.
    pub handle_ref: Option<String>,
    /// External ref.
    pub external_ref: Option<String>,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&OrderSummary> for OrderSummaryView {
    fn from(o: &OrderSummary) -> OrderSummaryView {
        OrderSummaryView {
            id: o.id,
            reference: o.reference.clone(),
            channel: o.channel_id,
            channel_code: o.channel_code.clone(),
            status: o.status.clone(),
            currency: o.currency.clone(),
            total_q: o.total_q,
            items_count: o.items_count,
            handle_type: o.handle_type.clone(),
            handle_ref: o.handle_ref.clone(),
            external_ref: o.external_ref.clone(),
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// An order event.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct EventView {
    /// 0, 1, 2… per order.
    pub seq: i64,
    /// Event type, e.g. `status_changed`.
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// Details.
    #[schema(value_type = Object)]
    pub payload: Map<String, Value>,
    /// When.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
}

impl From<&OrderEvent> for EventView {
    fn from(e: &OrderEvent) -> EventView {
        EventView {
            seq: e.seq,
            event_type: e.event_type.clone(),
            actor: e.actor.clone(),
            payload: e.payload.clone(),
            created_at: e.created_at,
        }
    }
}

/// One entry of the polling stream.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StreamEntryView {
    /// Order id.
    pub id: i64,
    /// Order ref.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    pub reference: String,
    /// The channel's display name.
    pub channel: String,
    /// Status.
    pub status: String,
    /// Total in quanta.
    pub total_q: i64,
    /// Total with two decimals, e.g. `"25.00"`.
    #[schema(example = "25.00")]
    pub total: String,
    /// ISO 4217 currency of the totals.
    #[schema(example = "BRL")]
    pub currency: String,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Handle ref.
    pub handle_ref: Option<String>,
}

/// `GET /api/orders/stream`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct StreamView {
    /// Up to 10 orders with `id > since`, ascending.
    pub orders: Vec<StreamEntryView>,
    /// The last id returned, else `since` (or the highest id when `since` is absent).
    pub last_id: i64,
}

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

macro_rules! list_view {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Serialize, ToSchema)]
        pub struct $name {
            /// URL of the next page, or null.
            pub next: Option<String>,
            /// URL of the previous page, or null.
            pub previous: Option<String>,
            /// This page's rows.
            pub results: Vec<$item>,
        }
    };
}

list_view!(
    /// A page of channels.
    ChannelList,
    ChannelView
);
list_view!(
    /// A page of sessions.
    SessionList,
    SessionSummaryView
);
list_view!(
    /// A page of orders.
    OrderList,
    OrderSummaryView
);
list_view!(
    /// A page of order events.
    EventList,
    EventView
);
list_view!(
    /// A page of directives.
    DirectiveList,
    DirectiveSummaryView
);

/// `POST /api/sessions`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct CreateSessionRequest {
    /// The channel.
    pub channel_code: String,
    /// Client-chosen key (`[A-Za-z0-9_.:-]{1,64}`, not `import`); generated when absent.
    pub session_key: Option<String>,
    /// Handle type (≤ 32). With `handle_ref`, an open session holding both is returned (200).
    pub handle_type: Option<String>,
    /// Handle ref (≤ 64).
    pub handle_ref: Option<String>,
}

/// `POST /api/sessions/import` (admin).
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct ImportSessionRequest {
    /// The channel.
    pub channel_code: String,
    /// Key (`[A-Za-z0-9_.:-]{1,64}`); generated when absent.
    pub session_key: Option<String>,
    /// Handle type (≤ 32).
    pub handle_type: Option<String>,
    /// Handle ref (≤ 64).
    pub handle_ref: Option<String>,
    /// Lines: `sku`, `qty` required; `line_id`, `name`, `unit_price_q`, `line_total_q`, `meta` optional.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Session data, stored as given (including `checks` and `issues`).
    #[schema(value_type = Option<Object>)]
    pub data: Option<serde_json::Value>,
}

/// `POST /api/sessions/{key}/modify`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct ModifyRequest {
    /// The channel.
    pub channel_code: String,
    /// A non-empty batch of ops, e.g. `{"op":"add_line","sku":"TEA","qty":2,"unit_price_q":300}`.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    pub ops: Vec<Value>,
}

/// `POST /api/sessions/{key}/resolve`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct ResolveRequest {
    /// The channel.
    pub channel_code: String,
    /// The issue (≤ 64).
    pub issue_id: String,
    /// One of the issue's actions (≤ 64).
    pub action_id: String,
}

/// `POST /api/sessions/{key}/commit`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct CommitRequest {
    /// The channel.
    pub channel_code: String,
    /// 1–128 visible ASCII characters; the same key replays the same answer. Generated (and
    /// then not replayable) when absent.
    pub idempotency_key: Option<String>,
}

/// `POST /api/sessions/{key}/abandon`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct AbandonRequest {
    /// The channel.
    pub channel_code: String,
}

/// `POST /api/orders/{ref}/transition`.
#[derive(Clone, Debug, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // the route refuses fields it does not read
pub struct TransitionRequest {
    /// The status to move to.
    pub status: String,
    /// Recorded in the `status_changed` event (≤ 1000).
    pub note: Option<String>,
}
