//! Orders, their lines and events, and the per-channel status machine (docs/reference.md §1.3, §10).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::channel::Channel;
use crate::error::{Code, DomainError, ErrorCode, StoreError, ctx};
use crate::money::Qty;
use crate::session::Item;

/// The default transition table.
const DEFAULT_TRANSITIONS: &[(&str, &[&str])] = &[
    ("new", &["confirmed", "cancelled"]),
    ("confirmed", &["processing", "ready", "cancelled"]),
    ("processing", &["ready", "cancelled"]),
    ("ready", &["dispatched", "completed"]),
    ("dispatched", &["delivered", "returned"]),
    ("delivered", &["completed", "returned"]),
    ("returned", &["completed"]),
    ("completed", &[]),
    ("cancelled", &[]),
];

const DEFAULT_TERMINAL: &[&str] = &["completed", "cancelled"];

/// Status of a new order unless the channel says otherwise.
pub const DEFAULT_INITIAL_STATUS: &str = "new";

/// The canonical statuses that carry a timestamp on the order.
pub const TIMESTAMPED_STATUSES: &[&str] =
    &["confirmed", "processing", "ready", "dispatched", "delivered", "completed", "cancelled", "returned"];

/// A channel's effective status machine: its own table or the default one.
///
/// The default table is built once; a flow shares it (and whatever a channel does not override)
/// instead of copying it, so [`OrderFlow::for_channel`] allocates nothing for a channel without
/// its own table.
///
/// ```
/// use omniman_core::order::OrderFlow;
/// let flow = OrderFlow::default_flow();
/// assert!(flow.can_transition("new", "confirmed"));
/// assert!(!flow.can_transition("new", "delivered"));
/// assert!(flow.is_terminal("completed"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderFlow {
    transitions: Arc<BTreeMap<String, Vec<String>>>,
    terminal: Arc<[String]>,
    initial: Arc<str>,
}

/// The default flow, built on first use.
static DEFAULT_FLOW: LazyLock<OrderFlow> = LazyLock::new(|| OrderFlow {
    transitions: Arc::new(
        DEFAULT_TRANSITIONS
            .iter()
            .map(|(from, to)| ((*from).to_owned(), to.iter().map(|s| (*s).to_owned()).collect()))
            .collect(),
    ),
    terminal: DEFAULT_TERMINAL.iter().map(|s| (*s).to_owned()).collect(),
    initial: DEFAULT_INITIAL_STATUS.into(),
});

impl OrderFlow {
    /// The default flow of docs/reference.md §10.
    pub fn default_flow() -> OrderFlow {
        DEFAULT_FLOW.clone()
    }

    /// The channel's flow: a configured table replaces the default entirely.
    pub fn for_channel(channel: &Channel) -> OrderFlow {
        let cfg = &channel.config.order_flow;
        let mut flow = OrderFlow::default_flow();
        if let Some(table) = &cfg.transitions {
            flow.transitions = Arc::new(table.clone());
        }
        if let Some(terminal) = &cfg.terminal_statuses {
            flow.terminal = terminal.as_slice().into();
        }
        if let Some(initial) = &cfg.initial_status {
            flow.initial = initial.as_str().into();
        }
        flow
    }

    /// Status of new orders.
    pub fn initial_status(&self) -> &str {
        &self.initial
    }

    /// Whether `status` is terminal.
    pub fn is_terminal(&self, status: &str) -> bool {
        self.terminal.iter().any(|s| s == status)
    }

    /// Statuses reachable from `from` (none from a terminal status or one missing from the table).
    pub fn allowed_transitions(&self, from: &str) -> &[String] {
        if self.is_terminal(from) {
            return &[];
        }
        self.transitions.get(from).map_or(&[], Vec::as_slice)
    }

    /// Whether `from → to` is allowed.
    pub fn can_transition(&self, from: &str, to: &str) -> bool {
        self.allowed_transitions(from).iter().any(|s| s == to)
    }

    /// Whether an order of this flow can be in `status`: the initial status, a terminal one, or
    /// one its table names (as a source or a target).
    ///
    /// ```
    /// use omniman_core::order::OrderFlow;
    /// let flow = OrderFlow::default_flow();
    /// assert!(flow.names("new") && flow.names("returned"));
    /// assert!(!flow.names("bogus"));
    /// ```
    pub fn names(&self, status: &str) -> bool {
        *self.initial == *status
            || self.is_terminal(status)
            || self.transitions.iter().any(|(from, to)| from == status || to.iter().any(|s| s == status))
    }
}

/// One line of an order, copied from the session at commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Unique within the order.
    pub line_id: String,
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Positive quantity.
    pub qty: Qty,
    /// Unit price in quanta.
    pub unit_price_q: i64,
    /// Line total in quanta.
    pub line_total_q: i64,
    /// Free-form data.
    pub meta: Map<String, Value>,
}

impl From<&Item> for OrderItem {
    /// The order line for a session line, as a commit copies it (an unpriced line costs 0).
    fn from(item: &Item) -> OrderItem {
        OrderItem {
            line_id: item.line_id.clone(),
            sku: item.sku.clone(),
            name: item.name.clone(),
            qty: item.qty,
            unit_price_q: item.unit_price_q.unwrap_or(0),
            line_total_q: item.total_q(),
            meta: item.meta.clone(),
        }
    }
}

/// The status timestamps: each is set the first time its status is entered, never overwritten.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTimestamps {
    /// First entered `confirmed`.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// First entered `processing`.
    pub processing_at: Option<DateTime<Utc>>,
    /// First entered `ready`.
    pub ready_at: Option<DateTime<Utc>>,
    /// First entered `dispatched`.
    pub dispatched_at: Option<DateTime<Utc>>,
    /// First entered `delivered`.
    pub delivered_at: Option<DateTime<Utc>>,
    /// First entered `completed`.
    pub completed_at: Option<DateTime<Utc>>,
    /// First entered `cancelled`.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// First entered `returned`.
    pub returned_at: Option<DateTime<Utc>>,
}

impl StatusTimestamps {
    fn slot(&mut self, status: &str) -> Option<&mut Option<DateTime<Utc>>> {
        Some(match status {
            "confirmed" => &mut self.confirmed_at,
            "processing" => &mut self.processing_at,
            "ready" => &mut self.ready_at,
            "dispatched" => &mut self.dispatched_at,
            "delivered" => &mut self.delivered_at,
            "completed" => &mut self.completed_at,
            "cancelled" => &mut self.cancelled_at,
            "returned" => &mut self.returned_at,
            _ => return None,
        })
    }

    /// Records entering `status` at `at`, unless it was entered before.
    pub fn enter(&mut self, status: &str, at: DateTime<Utc>) {
        if let Some(slot) = self.slot(status) {
            slot.get_or_insert(at);
        }
    }
}

/// An immutable order; only its status, timestamps and `data` change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Database id (0 before insertion).
    pub id: i64,
    /// Unique reference, `ORD-YYYYMMDD-XXXXXXXX`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Channel id.
    pub channel_id: i64,
    /// Channel code.
    pub channel_code: String,
    /// The committed session's key.
    pub session_key: String,
    /// Copied from the session.
    pub handle_type: Option<String>,
    /// Copied from the session.
    pub handle_ref: Option<String>,
    /// Set by importers.
    pub external_ref: Option<String>,
    /// Current status.
    pub status: String,
    /// The session at commit: `{"_v":1,"items","data","pricing","rev"}`.
    pub snapshot: Value,
    /// Extension data.
    pub data: Map<String, Value>,
    /// ISO 4217 code.
    pub currency: String,
    /// Σ line totals.
    pub total_q: i64,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Status timestamps.
    #[serde(flatten)]
    pub timestamps: StatusTimestamps,
}

/// An append-only order event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderEvent {
    /// 0, 1, 2… per order.
    pub seq: i64,
    /// Event type (≤ 64), e.g. `status_changed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// Details.
    pub payload: Map<String, Value>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// An event to append; the store assigns its `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Who caused it.
    pub actor: String,
    /// Details.
    pub payload: Map<String, Value>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A refused order transition.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum TransitionError {
    /// No order with that ref.
    #[error("order {order_ref} not found")]
    OrderNotFound {
        /// The ref asked for.
        order_ref: String,
    },
    /// The order is in a terminal status.
    #[error("order is {current_status}, a final status; it cannot become {requested_status}")]
    TerminalStatus {
        /// Current status.
        current_status: String,
        /// Requested status.
        requested_status: String,
    },
    /// The table does not allow it.
    #[error("cannot go from {current_status} to {requested_status}")]
    InvalidTransition {
        /// Current status.
        current_status: String,
        /// Requested status.
        requested_status: String,
        /// Where it could go.
        allowed_transitions: Vec<String>,
    },
    /// Empty or over-long status or note.
    #[error("{0}")]
    Validation(crate::error::FieldErrors),
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DomainError for TransitionError {
    fn code(&self) -> ErrorCode<'_> {
        match self {
            TransitionError::OrderNotFound { .. } => Code::OrderNotFound.into(),
            TransitionError::TerminalStatus { .. } => Code::TerminalStatus.into(),
            TransitionError::InvalidTransition { .. } => Code::InvalidTransition.into(),
            TransitionError::Validation(_) => Code::ValidationError.into(),
            TransitionError::Store(e) => e.code(),
        }
    }

    fn context(&self) -> Map<String, Value> {
        match self {
            TransitionError::OrderNotFound { order_ref } => ctx([("order_ref", order_ref.as_str().into())]),
            TransitionError::TerminalStatus { current_status, requested_status } => ctx([
                ("current_status", current_status.as_str().into()),
                ("requested_status", requested_status.as_str().into()),
            ]),
            TransitionError::InvalidTransition { current_status, requested_status, allowed_transitions } => ctx([
                ("current_status", current_status.as_str().into()),
                ("requested_status", requested_status.as_str().into()),
                ("allowed_transitions", allowed_transitions.clone().into()),
            ]),
            TransitionError::Validation(f) => f.to_context(),
            TransitionError::Store(e) => e.context(),
        }
    }
}

/// What a transition writes: the order as it becomes, conditional on its status as read.
#[derive(Clone, Debug, PartialEq)]
pub struct TransitionPlan {
    /// The order after the transition.
    pub order: Order,
    /// The status the write is conditional on.
    pub expected_status: String,
    /// The `status_changed` event.
    pub event: NewEvent,
}

/// Decides a transition (docs/reference.md §10): terminal check, table check, timestamps, event.
///
/// `order` is an `Order` or a `&Order`. Given by value (as the service does with the order it
/// has just loaded), it becomes the plan's order without a copy; a borrowed one is copied once.
///
/// ```
/// # use omniman_core::order::*;
/// # fn order() -> Order { serde_json::from_value(serde_json::json!({
/// #   "id": 1, "ref": "ORD-1", "channel_id": 1, "channel_code": "pos", "session_key": "S",
/// #   "handle_type": null, "handle_ref": null, "external_ref": null, "status": "new",
/// #   "snapshot": {}, "data": {}, "currency": "BRL", "total_q": 0, "items": [],
/// #   "created_at": "2026-11-21T12:00:00Z", "updated_at": "2026-11-21T12:00:00Z"})).unwrap() }
/// let now = "2026-11-21T13:00:00Z".parse().unwrap();
/// let plan = plan_transition(order(), &OrderFlow::default_flow(), "confirmed", "ana", None, now).unwrap();
/// assert_eq!(plan.order.status, "confirmed");
/// assert_eq!(plan.order.timestamps.confirmed_at, Some(now));
/// assert_eq!(plan.expected_status, "new");
/// // A borrowed order is left as it is.
/// let stored = order();
/// assert!(plan_transition(&stored, &OrderFlow::default_flow(), "delivered", "ana", None, now).is_err());
/// let cancelled = plan_transition(&stored, &OrderFlow::default_flow(), "cancelled", "ana", None, now).unwrap();
/// assert_eq!((cancelled.order.status.as_str(), stored.status.as_str()), ("cancelled", "new"));
/// ```
pub fn plan_transition<'o>(
    order: impl Into<Cow<'o, Order>>,
    flow: &OrderFlow,
    new_status: &str,
    actor: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TransitionPlan, TransitionError> {
    decide_transition(order.into(), flow, new_status, actor, note, now)
}

fn decide_transition(
    order: Cow<'_, Order>,
    flow: &OrderFlow,
    new_status: &str,
    actor: &str,
    note: Option<&str>,
    now: DateTime<Utc>,
) -> Result<TransitionPlan, TransitionError> {
    if flow.is_terminal(&order.status) {
        return Err(TransitionError::TerminalStatus {
            current_status: order.status.clone(),
            requested_status: new_status.to_owned(),
        });
    }
    if !flow.can_transition(&order.status, new_status) {
        return Err(TransitionError::InvalidTransition {
            current_status: order.status.clone(),
            requested_status: new_status.to_owned(),
            allowed_transitions: flow.allowed_transitions(&order.status).to_vec(),
        });
    }
    let mut next = order.into_owned();
    let expected_status = std::mem::replace(&mut next.status, new_status.to_owned());
    next.timestamps.enter(new_status, now);
    next.updated_at = now;
    let mut payload = ctx([("old_status", expected_status.as_str().into()), ("new_status", new_status.into())]);
    if let Some(note) = note {
        payload.insert("note".into(), note.into());
    }
    Ok(TransitionPlan {
        order: next,
        expected_status,
        event: NewEvent { event_type: "status_changed".into(), actor: actor.to_owned(), payload, created_at: now },
    })
}

/// Lets [`plan_transition`] take an order by value (no copy).
impl From<Order> for Cow<'_, Order> {
    fn from(order: Order) -> Self {
        Cow::Owned(order)
    }
}

/// Lets [`plan_transition`] take a borrowed order (copied once).
impl<'a> From<&'a Order> for Cow<'a, Order> {
    fn from(order: &'a Order) -> Self {
        Cow::Borrowed(order)
    }
}
