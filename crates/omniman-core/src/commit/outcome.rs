//! What a commit answers: a new order, an already committed session, or a replayed answer.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::idempotency::{IdempotencyRecord, done_record};
use crate::order::Order;

/// The order a commit produced (or found).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitReceipt {
    /// The order's ref.
    pub order_ref: String,
    /// The order's id.
    pub order_id: i64,
    /// The order's total in quanta.
    pub total_q: i64,
    /// How many lines it has.
    pub items_count: usize,
}

impl CommitReceipt {
    /// The receipt of an order already stored.
    pub fn of(order: &Order) -> CommitReceipt {
        CommitReceipt {
            order_ref: order.reference.clone(),
            order_id: order.id,
            total_q: order.total_q,
            items_count: order.items.len(),
        }
    }

    fn to_json(&self, status: &str) -> Value {
        json!({
            "order_ref": self.order_ref,
            "order_id": self.order_id,
            "status": status,
            "total_q": self.total_q,
            "items_count": self.items_count,
        })
    }
}

/// An answer stored under an idempotency key, replayed as it was first given.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAnswer {
    /// Its status code (201 for a new order, 200 for an already committed session).
    pub code: u16,
    /// Its body, verbatim.
    pub body: Value,
}

impl StoredAnswer {
    /// The body as the first answer wrote it. A store may keep JSON objects in its own key order
    /// (PostgreSQL's `jsonb` does), so a body of the usual shape is written again by the same
    /// code as the first answer, [`CommitReceipt`]'s, and serializes to the same bytes; any other
    /// body is replayed as stored.
    pub fn body_as_answered(&self) -> Value {
        let status = self.body.get("status").and_then(Value::as_str);
        match (self.receipt(), status) {
            (Some(receipt), Some(status)) => {
                let answer = receipt.to_json(status);
                // Key order aside, the same object: nothing of the stored body is dropped.
                if answer == self.body { answer } else { self.body.clone() }
            }
            _ => self.body.clone(),
        }
    }

    /// The receipt the body describes, when it has the usual shape.
    pub fn receipt(&self) -> Option<CommitReceipt> {
        let body = &self.body;
        Some(CommitReceipt {
            order_ref: body.get("order_ref")?.as_str()?.to_owned(),
            order_id: body.get("order_id")?.as_i64()?,
            total_q: body.get("total_q")?.as_i64()?,
            items_count: usize::try_from(body.get("items_count")?.as_u64()?).ok()?,
        })
    }
}

/// What a commit did.
///
/// ```
/// use omniman_core::commit::{CommitOutcome, CommitReceipt};
/// let receipt = CommitReceipt { order_ref: "ORD-1".into(), order_id: 7, total_q: 900, items_count: 1 };
/// let outcome = CommitOutcome::Committed(receipt.clone());
/// assert_eq!(outcome.http_status(), 201);
/// assert_eq!(outcome.to_json()["status"], "committed");
/// assert_eq!(outcome.receipt(), Some(receipt));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum CommitOutcome {
    /// A new order (HTTP 201).
    Committed(CommitReceipt),
    /// The session had already been committed into this order under another key (HTTP 200).
    AlreadyCommitted(CommitReceipt),
    /// The key had been used before for this session: its first answer, replayed.
    Replayed(StoredAnswer),
}

impl CommitOutcome {
    /// 201 for a new order, 200 for an already committed session; a replay keeps its code.
    pub fn http_status(&self) -> u16 {
        match self {
            CommitOutcome::Committed(_) => 201,
            CommitOutcome::AlreadyCommitted(_) => 200,
            CommitOutcome::Replayed(stored) => stored.code,
        }
    }

    /// The answer's body: `{"order_ref","order_id","status","total_q","items_count"}`, or the
    /// stored body of a replay.
    pub fn to_json(&self) -> Value {
        match self {
            CommitOutcome::Committed(receipt) => receipt.to_json("committed"),
            CommitOutcome::AlreadyCommitted(receipt) => receipt.to_json("already_committed"),
            CommitOutcome::Replayed(stored) => stored.body_as_answered(),
        }
    }

    /// The order's ref, also for a replay whose stored body names one.
    pub fn order_ref(&self) -> Option<&str> {
        match self {
            CommitOutcome::Committed(receipt) | CommitOutcome::AlreadyCommitted(receipt) => Some(&receipt.order_ref),
            CommitOutcome::Replayed(stored) => stored.body.get("order_ref").and_then(Value::as_str),
        }
    }

    /// The order, also for a replay whose stored body has the usual shape.
    pub fn receipt(&self) -> Option<CommitReceipt> {
        match self {
            CommitOutcome::Committed(receipt) | CommitOutcome::AlreadyCommitted(receipt) => Some(receipt.clone()),
            CommitOutcome::Replayed(stored) => stored.receipt(),
        }
    }

    /// The record that lets a later request with the same key replay this answer.
    pub fn record(&self, scope: String, key: String, session_key: &str, now: DateTime<Utc>) -> IdempotencyRecord {
        done_record(scope, key, session_key, self.http_status(), self.to_json(), now)
    }
}
