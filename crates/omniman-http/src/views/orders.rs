//! `/api/orders…`: orders, their lines and events, the polling stream and the transition body.

use chrono::{DateTime, Utc};
use omniman_core::channel::Channel;
use omniman_core::order::{Order, OrderEvent, OrderFlow, OrderItem};
use omniman_core::ports::OrderSummary;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::common::ts;

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
