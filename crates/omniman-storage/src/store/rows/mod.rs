//! Rows as read from either backend, the values written, and their conversions to and from the
//! core's domain types. Everything here is backend-agnostic: the SQL types differ per backend
//! (`schema::pg` / `schema::sqlite`), the Rust types do not.

use chrono::{DateTime, SubsecRound, Utc};
use diesel::Queryable;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use omniman_core::channel::{Channel, ChannelConfig, ChannelSpec, EditPolicy, PricingPolicy};
use omniman_core::directive::{Directive, DirectiveStatus, NewDirective};
use omniman_core::error::StoreError;
use omniman_core::idempotency::{IdempotencyRecord, IdempotencyStatus};
use omniman_core::order::{Order, OrderEvent, OrderItem, StatusTimestamps};
use omniman_core::ports::OrderSummary;
use omniman_core::session::{Item, Session, SessionState};
use serde_json::{Map, Value};

use crate::error::StorageError;

// ---------------------------------------------------------------------------------------------
// Errors

impl From<StorageError> for StoreError {
    fn from(e: StorageError) -> StoreError {
        match e {
            StorageError::Query(e) => db_error(e),
            StorageError::Connect(m) | StorageError::Pool(m) => StoreError::Unavailable(m),
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// Maps a Diesel error to the core's storage error.
pub(crate) fn db_error(e: DieselError) -> StoreError {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand, _) => {
            StoreError::Unavailable(e.to_string())
        }
        // Waited too long: PostgreSQL's statement or lock timeout, SQLite's busy timeout.
        DieselError::DatabaseError(_, ref info) if is_timeout(info.message()) => StoreError::Unavailable(e.to_string()),
        DieselError::DeserializationError(_) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Other(other.to_string()),
    }
}

/// Whether a database error message says that a wait timed out rather than that the statement
/// is wrong: the request may succeed when tried again.
fn is_timeout(message: &str) -> bool {
    message.contains("due to statement timeout")
        || message.contains("due to lock timeout")
        || message.contains("database is locked")
        || message.contains("database is busy")
}

/// Whether `e` violates the unique constraint named `pg_name` on PostgreSQL, or whose SQLite
/// message names `sqlite_columns` (`"UNIQUE constraint failed: <table>.<col>, …"`).
pub(crate) fn violates(e: &DieselError, pg_name: &str, sqlite_columns: &str) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
            info.constraint_name() == Some(pg_name) || info.message().contains(sqlite_columns)
        }
        _ => false,
    }
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {detail}"))
}

/// Timestamps are stored with microsecond precision on both backends (PostgreSQL's
/// resolution), so that what is read back equals what was written and keyset cursors (which
/// carry microseconds) compare exactly.
pub(crate) fn ts(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

pub(crate) fn ts_opt(t: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    t.map(ts)
}

fn object(value: Value, what: &str) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(map) => Ok(map),
        other => Err(corrupt(what, format!("expected a JSON object, found {other}"))),
    }
}

fn array(value: Value, what: &str) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) => Ok(items),
        other => Err(corrupt(what, format!("expected a JSON array, found {other}"))),
    }
}

pub(crate) fn affected(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn pricing_policy(s: &str) -> Result<PricingPolicy, StoreError> {
    match s {
        "internal" => Ok(PricingPolicy::Internal),
        "external" => Ok(PricingPolicy::External),
        other => Err(corrupt("pricing_policy", other)),
    }
}

fn edit_policy(s: &str) -> Result<EditPolicy, StoreError> {
    match s {
        "open" => Ok(EditPolicy::Open),
        "locked" => Ok(EditPolicy::Locked),
        other => Err(corrupt("edit_policy", other)),
    }
}

// ---------------------------------------------------------------------------------------------
// Channels

/// `channels.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct ChannelRow {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub pricing_policy: String,
    pub edit_policy: String,
    pub display_order: i32,
    pub config: Value,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    #[allow(dead_code)]
    pub updated_at: DateTime<Utc>,
}

impl ChannelRow {
    pub(crate) fn into_channel(self) -> Result<Channel, StoreError> {
        Ok(Channel {
            id: self.id,
            pricing_policy: pricing_policy(&self.pricing_policy)?,
            edit_policy: edit_policy(&self.edit_policy)?,
            display_order: u32::try_from(self.display_order).map_err(|e| corrupt("display_order", e))?,
            config: ChannelConfig::from_value(self.config).map_err(|e| corrupt("channel config", e))?,
            is_active: self.is_active,
            created_at: self.created_at,
            code: self.code,
            name: self.name,
        })
    }
}

/// The values an upsert writes.
#[derive(Debug, Clone)]
pub(crate) struct ChannelValues {
    pub code: String,
    pub name: String,
    pub pricing_policy: &'static str,
    pub edit_policy: &'static str,
    pub display_order: i32,
    pub config: Value,
    pub is_active: bool,
    pub now: DateTime<Utc>,
}

impl ChannelValues {
    pub(crate) fn new(spec: &ChannelSpec, now: DateTime<Utc>) -> Result<ChannelValues, StoreError> {
        Ok(ChannelValues {
            code: spec.code.clone(),
            name: spec.name.clone(),
            pricing_policy: spec.pricing_policy.as_str(),
            edit_policy: spec.edit_policy.as_str(),
            display_order: i32::try_from(spec.display_order)
                .map_err(|_| StoreError::Other(format!("display_order {} is too large", spec.display_order)))?,
            config: Value::from(spec.config.clone()),
            is_active: spec.is_active,
            now: ts(now),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

/// `sessions.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct SessionRow {
    pub id: i64,
    pub channel_id: i64,
    pub session_key: String,
    pub handle_type: Option<String>,
    pub handle_ref: Option<String>,
    pub state: String,
    pub pricing_policy: String,
    pub edit_policy: String,
    pub rev: i64,
    pub version: i64,
    pub items: Value,
    pub data: Value,
    pub pricing: Value,
    pub pricing_trace: Value,
    pub commit_token: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
}

impl SessionRow {
    pub(crate) fn into_session(self, channel_code: String) -> Result<Session, StoreError> {
        Ok(Session {
            id: self.id,
            channel_id: self.channel_id,
            channel_code,
            state: SessionState::parse(&self.state).ok_or_else(|| corrupt("session state", &self.state))?,
            pricing_policy: pricing_policy(&self.pricing_policy)?,
            edit_policy: edit_policy(&self.edit_policy)?,
            rev: self.rev,
            version: self.version,
            items: serde_json::from_value::<Vec<Item>>(self.items).map_err(|e| corrupt("session items", e))?,
            data: object(self.data, "session data")?,
            pricing: object(self.pricing, "session pricing")?,
            pricing_trace: array(self.pricing_trace, "session pricing_trace")?,
            commit_token: self.commit_token,
            opened_at: self.opened_at,
            updated_at: self.updated_at,
            committed_at: self.committed_at,
            session_key: self.session_key,
            handle_type: self.handle_type,
            handle_ref: self.handle_ref,
        })
    }
}

/// Every column a session write sets (all but `id`).
#[derive(Debug, Clone)]
pub(crate) struct SessionValues {
    pub channel_id: i64,
    pub session_key: String,
    pub handle_type: Option<String>,
    pub handle_ref: Option<String>,
    pub state: &'static str,
    pub pricing_policy: &'static str,
    pub edit_policy: &'static str,
    pub rev: i64,
    pub version: i64,
    pub items: Value,
    pub data: Value,
    pub pricing: Value,
    pub pricing_trace: Value,
    pub commit_token: Option<String>,
    pub opened_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub committed_at: Option<DateTime<Utc>>,
}

impl SessionValues {
    pub(crate) fn new(s: &Session) -> SessionValues {
        SessionValues {
            channel_id: s.channel_id,
            session_key: s.session_key.clone(),
            handle_type: s.handle_type.clone(),
            handle_ref: s.handle_ref.clone(),
            state: s.state.as_str(),
            pricing_policy: s.pricing_policy.as_str(),
            edit_policy: s.edit_policy.as_str(),
            rev: s.rev,
            version: s.version,
            items: s.items_json(),
            data: Value::Object(s.data.clone()),
            pricing: Value::Object(s.pricing.clone()),
            pricing_trace: Value::Array(s.pricing_trace.clone()),
            commit_token: s.commit_token.clone(),
            opened_at: ts(s.opened_at),
            updated_at: ts(s.updated_at),
            committed_at: ts_opt(s.committed_at),
        }
    }
}

/// `session` as stored (timestamps at microsecond precision) with its new id.
pub(crate) fn stored_session(session: &Session, id: i64) -> Session {
    Session {
        id,
        opened_at: ts(session.opened_at),
        updated_at: ts(session.updated_at),
        committed_at: ts_opt(session.committed_at),
        ..session.clone()
    }
}

// ---------------------------------------------------------------------------------------------
// Orders

/// `orders.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct OrderRow {
    pub id: i64,
    pub reference: String,
    pub channel_id: i64,
    pub session_key: String,
    pub handle_type: Option<String>,
    pub handle_ref: Option<String>,
    pub external_ref: Option<String>,
    pub status: String,
    pub snapshot: Value,
    pub data: Value,
    pub currency: String,
    pub total_q: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub processing_at: Option<DateTime<Utc>>,
    pub ready_at: Option<DateTime<Utc>>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
}

/// The committed lines, from `orders.snapshot.items`.
///
/// The snapshot holds the session's lines exactly as committed, so reading them from it keeps
/// `order_by_ref` to one statement; `order_items` holds the same lines as rows for reporting.
fn snapshot_items(snapshot: &Value) -> Result<Vec<OrderItem>, StoreError> {
    let Some(items) = snapshot.get("items") else {
        return Ok(Vec::new());
    };
    let items: Vec<Item> = serde_json::from_value(items.clone()).map_err(|e| corrupt("order snapshot items", e))?;
    Ok(items.iter().map(OrderItem::from).collect())
}

impl OrderRow {
    pub(crate) fn into_order(self, channel_code: String) -> Result<Order, StoreError> {
        Ok(Order {
            id: self.id,
            channel_id: self.channel_id,
            channel_code,
            items: snapshot_items(&self.snapshot)?,
            data: object(self.data, "order data")?,
            timestamps: StatusTimestamps {
                confirmed_at: self.confirmed_at,
                processing_at: self.processing_at,
                ready_at: self.ready_at,
                dispatched_at: self.dispatched_at,
                delivered_at: self.delivered_at,
                completed_at: self.completed_at,
                cancelled_at: self.cancelled_at,
                returned_at: self.returned_at,
            },
            reference: self.reference,
            session_key: self.session_key,
            handle_type: self.handle_type,
            handle_ref: self.handle_ref,
            external_ref: self.external_ref,
            status: self.status,
            snapshot: self.snapshot,
            currency: self.currency,
            total_q: self.total_q,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// An order as stored: timestamps at microsecond precision.
pub(crate) fn stored_order(order: &Order, id: i64) -> Order {
    let t = &order.timestamps;
    Order {
        id,
        created_at: ts(order.created_at),
        updated_at: ts(order.updated_at),
        timestamps: StatusTimestamps {
            confirmed_at: ts_opt(t.confirmed_at),
            processing_at: ts_opt(t.processing_at),
            ready_at: ts_opt(t.ready_at),
            dispatched_at: ts_opt(t.dispatched_at),
            delivered_at: ts_opt(t.delivered_at),
            completed_at: ts_opt(t.completed_at),
            cancelled_at: ts_opt(t.cancelled_at),
            returned_at: ts_opt(t.returned_at),
        },
        ..order.clone()
    }
}

/// The summary columns of an order list, in select order.
#[derive(Debug, Queryable)]
pub(crate) struct SummaryRow {
    pub id: i64,
    pub reference: String,
    pub channel_id: i64,
    pub channel_code: String,
    pub status: String,
    pub currency: String,
    pub total_q: i64,
    pub items_count: i64,
    pub handle_type: Option<String>,
    pub handle_ref: Option<String>,
    pub external_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SummaryRow> for OrderSummary {
    fn from(r: SummaryRow) -> OrderSummary {
        OrderSummary {
            id: r.id,
            reference: r.reference,
            channel_id: r.channel_id,
            channel_code: r.channel_code,
            status: r.status,
            currency: r.currency,
            total_q: r.total_q,
            items_count: r.items_count,
            handle_type: r.handle_type,
            handle_ref: r.handle_ref,
            external_ref: r.external_ref,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// `order_events.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct EventRow {
    #[allow(dead_code)]
    pub id: i64,
    #[allow(dead_code)]
    pub order_id: i64,
    pub seq: i32,
    pub event_type: String,
    pub actor: String,
    pub payload: Value,
    pub created_at: DateTime<Utc>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> Result<OrderEvent, StoreError> {
        Ok(OrderEvent {
            seq: i64::from(self.seq),
            event_type: self.event_type,
            actor: self.actor,
            payload: object(self.payload, "event payload")?,
            created_at: self.created_at,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Directives

/// `directives.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct DirectiveRow {
    pub id: i64,
    pub topic: String,
    pub status: String,
    pub payload: Value,
    pub attempts: i32,
    pub available_at: DateTime<Utc>,
    pub last_error: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
}

impl DirectiveRow {
    pub(crate) fn into_directive(self) -> Result<Directive, StoreError> {
        Ok(Directive {
            id: self.id,
            status: DirectiveStatus::parse(&self.status).ok_or_else(|| corrupt("directive status", &self.status))?,
            payload: object(self.payload, "directive payload")?,
            attempts: self.attempts,
            available_at: self.available_at,
            last_error: self.last_error,
            created_at: self.created_at,
            started_at: self.started_at,
            updated_at: self.updated_at,
            topic: self.topic,
        })
    }
}

/// One directive to insert.
#[derive(Debug, Clone)]
pub(crate) struct DirectiveValues {
    pub topic: String,
    pub payload: Value,
    pub available_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

pub(crate) fn directive_values(directives: &[NewDirective], created_at: DateTime<Utc>) -> Vec<DirectiveValues> {
    directives
        .iter()
        .map(|d| DirectiveValues {
            topic: d.topic.clone(),
            payload: Value::Object(d.payload.clone()),
            available_at: ts(d.available_at),
            created_at: ts(created_at),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Idempotency

/// `idempotency_keys.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct IdempotencyRow {
    #[allow(dead_code)]
    pub id: i64,
    pub scope: String,
    pub key: String,
    pub status: String,
    pub response_code: Option<i32>,
    pub response_body: Option<Value>,
    pub session_key: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    #[allow(dead_code)]
    pub updated_at: DateTime<Utc>,
}

impl IdempotencyRow {
    pub(crate) fn into_record(self) -> Result<IdempotencyRecord, StoreError> {
        Ok(IdempotencyRecord {
            status: IdempotencyStatus::parse(&self.status)
                .ok_or_else(|| corrupt("idempotency status", &self.status))?,
            response_code: self
                .response_code
                .map(|c| u16::try_from(c).map_err(|e| corrupt("response_code", e)))
                .transpose()?,
            response_body: self.response_body,
            session_key: self.session_key,
            expires_at: self.expires_at,
            created_at: self.created_at,
            scope: self.scope,
            key: self.key,
        })
    }
}

/// The values an idempotency upsert writes.
#[derive(Debug, Clone)]
pub(crate) struct IdempotencyValues {
    pub scope: String,
    pub key: String,
    pub status: &'static str,
    pub response_code: Option<i32>,
    pub response_body: Option<Value>,
    pub session_key: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl IdempotencyValues {
    pub(crate) fn new(r: &IdempotencyRecord) -> IdempotencyValues {
        IdempotencyValues {
            scope: r.scope.clone(),
            key: r.key.clone(),
            status: r.status.as_str(),
            response_code: r.response_code.map(i32::from),
            response_body: r.response_body.clone(),
            session_key: r.session_key.clone(),
            expires_at: ts_opt(r.expires_at),
            created_at: ts(r.created_at),
        }
    }
}

mod holds;
mod log;
mod tokens;
mod webhooks;

pub(crate) use holds::*;
pub(crate) use log::*;
pub(crate) use tokens::*;
pub(crate) use webhooks::*;
