//! `webhooks`, `webhook_deliveries` and `webhook_dispatch` rows.

use chrono::{DateTime, Utc};
use diesel::Queryable;
use omniman_core::directive::DirectiveStatus;
use omniman_core::error::StoreError;
use omniman_core::events::EventType;
use omniman_core::webhook::{Delivery, NewDelivery, Webhook};
use serde_json::Value;

use super::{DirectiveValues, corrupt, directive_values, ts};

/// The name of the dispatcher's row in `webhook_dispatch`.
pub(crate) const DISPATCHER: &str = "webhooks";

/// `webhooks.*`, in column order.
#[derive(Debug, Queryable)]
pub(crate) struct WebhookRow {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub events: Value,
    pub channels: Option<Value>,
    pub active: bool,
    pub start_after: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookRow {
    pub(crate) fn into_webhook(self) -> Result<Webhook, StoreError> {
        let events = serde_json::from_value::<Vec<EventType>>(self.events).map_err(|e| corrupt("webhook events", e))?;
        let channels = self
            .channels
            .map(serde_json::from_value::<Vec<String>>)
            .transpose()
            .map_err(|e| corrupt("webhook channels", e))?;
        Ok(Webhook {
            id: self.id,
            url: self.url,
            secret: self.secret,
            events,
            channels,
            active: self.active,
            start_after: self.start_after,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// The values a subscription's insert or update writes.
#[derive(Debug, Clone)]
pub(crate) struct WebhookValues {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub events: Value,
    pub channels: Option<Value>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookValues {
    pub(crate) fn new(w: &Webhook) -> WebhookValues {
        WebhookValues {
            id: w.id,
            url: w.url.clone(),
            secret: w.secret.clone(),
            events: Value::from(w.events.iter().map(|e| e.as_str()).collect::<Vec<_>>()),
            channels: w.channels.as_ref().map(|c| Value::from(c.clone())),
            active: w.active,
            created_at: ts(w.created_at),
            updated_at: ts(w.updated_at),
        }
    }
}

/// Deliveries to insert: their directives, and what their records say besides the directive id.
#[derive(Debug, Clone)]
pub(crate) struct DeliveryValues {
    pub directives: Vec<DirectiveValues>,
    /// `(webhook_id, event_id, event_type)`, one per directive.
    pub records: Vec<(i64, Option<i64>, String)>,
    pub created_at: DateTime<Utc>,
}

impl DeliveryValues {
    pub(crate) fn new(deliveries: &[NewDelivery]) -> DeliveryValues {
        // As the directive queue's enqueue: the batch is stamped with the first one's availability.
        let created_at = ts(deliveries.first().map_or_else(Utc::now, |d| d.directive.available_at));
        let directives: Vec<_> = deliveries.iter().map(|d| d.directive.clone()).collect();
        DeliveryValues {
            directives: directive_values(&directives, created_at),
            records: deliveries.iter().map(|d| (d.webhook_id, d.event_id, d.event_type.clone())).collect(),
            created_at,
        }
    }
}

/// A delivery record joined with its directive: `directive_id`, `webhook_id`, `event_id`,
/// `event_type`, `created_at`, then the directive's `status`, `attempts`, `last_error`,
/// `available_at`, `updated_at`.
pub(crate) type DeliveryRow =
    (i64, i64, Option<i64>, String, DateTime<Utc>, String, i32, String, DateTime<Utc>, DateTime<Utc>);

pub(crate) fn into_delivery(row: DeliveryRow) -> Result<Delivery, StoreError> {
    let (id, webhook_id, event_id, event_type, created_at, status, attempts, last_error, available_at, updated_at) =
        row;
    Ok(Delivery {
        id,
        webhook_id,
        event_id,
        event_type,
        status: DirectiveStatus::parse(&status).ok_or_else(|| corrupt("directive status", &status))?,
        attempts,
        last_error,
        available_at,
        created_at,
        updated_at,
    })
}
