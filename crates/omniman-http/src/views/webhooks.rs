//! `/api/webhooks…`.

use chrono::{DateTime, Utc};
use omniman_core::webhook::{Delivery, Webhook};
use serde::Serialize;
use utoipa::ToSchema;

use super::common::ts;

/// A webhook subscription: never its secret, which only the creation's answer shows.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Id.
    pub id: i64,
    /// Where deliveries are posted.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<String>,
    /// Only events of these channels; null: every channel.
    pub channels: Option<Vec<String>>,
    /// An inactive subscription receives nothing new.
    pub active: bool,
    /// Creation time.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> WebhookView {
        WebhookView {
            id: w.id,
            url: w.url.clone(),
            events: w.events.iter().map(|e| e.as_str().to_owned()).collect(),
            channels: w.channels.clone(),
            active: w.active,
            created_at: w.created_at,
            updated_at: w.updated_at,
        }
    }
}

/// A subscription just created, with its signing secret: shown this once.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CreatedWebhookView {
    /// The subscription.
    #[serde(flatten)]
    pub details: WebhookView,
    /// The key of each delivery's `Omniman-Signature` (HMAC-SHA256); keep it: it is never shown
    /// again.
    pub secret: String,
}

/// A delivery of one event to one subscription.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Delivery id, sent as `Omniman-Delivery` on every attempt (the same on retries).
    pub id: i64,
    /// The subscription.
    pub webhook_id: i64,
    /// The event's id in the log; null for a test event.
    pub event_id: Option<i64>,
    /// The event's type (`webhook.test` for a test).
    pub event_type: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The last failure, or empty.
    pub last_error: String,
    /// The next attempt is not before this instant.
    #[serde(serialize_with = "ts::one")]
    pub available_at: DateTime<Utc>,
    /// When it was enqueued.
    #[serde(serialize_with = "ts::one")]
    pub created_at: DateTime<Utc>,
    /// Last change.
    #[serde(serialize_with = "ts::one")]
    pub updated_at: DateTime<Utc>,
}

impl From<&Delivery> for DeliveryView {
    fn from(d: &Delivery) -> DeliveryView {
        DeliveryView {
            id: d.id,
            webhook_id: d.webhook_id,
            event_id: d.event_id,
            event_type: d.event_type.clone(),
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            last_error: d.last_error.clone(),
            available_at: d.available_at,
            created_at: d.created_at,
            updated_at: d.updated_at,
        }
    }
}

list_view!(
    /// A page of webhook subscriptions.
    WebhookList,
    WebhookView
);

list_view!(
    /// A page of deliveries.
    DeliveryList,
    DeliveryView
);
