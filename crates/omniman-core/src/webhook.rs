//! Webhook subscriptions: which events of the log a receiver wants, and the deliveries that
//! carry them (docs/webhooks.md).
//!
//! A dispatcher follows the event log and, for each event, plans one delivery per matching
//! active subscription ([`plan_deliveries`]); each delivery is a directive of topic
//! [`DELIVER_TOPIC`], so it is retried like any other directive, and its id is the delivery id a
//! receiver uses to drop duplicates.
//!
//! ```
//! use omniman_core::events::{EventRead, EventType};
//! use omniman_core::webhook::{Webhook, plan_deliveries};
//!
//! let mut hook = Webhook::fixture(1, &[EventType::SessionOpened]);
//! hook.start_after = 1;
//! let events = EventRead::fixture(&[1, 2], &[]).events;
//! // Event 1 was written before the subscription existed: only event 2 is delivered.
//! let planned = plan_deliveries(&events, &[hook], chrono::Utc::now());
//! assert_eq!(planned.iter().map(|d| d.event_id).collect::<Vec<_>>(), [Some(2)]);
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::directive::{Directive, DirectiveStatus, NewDirective};
use crate::error::FieldErrors;
use crate::events::{EventFilter, EventType, LogEvent};

/// The directive topic of a delivery.
pub const DELIVER_TOPIC: &str = "webhook.deliver";

/// The type of the synthetic event `POST /api/webhooks/{id}/test` delivers.
pub const TEST_EVENT_TYPE: &str = "webhook.test";

/// The longest URL a subscription may have.
pub const MAX_URL_CHARS: usize = 2048;

/// A subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Id (assigned by the store).
    pub id: i64,
    /// Where deliveries are posted: an absolute `http` or `https` URL.
    pub url: String,
    /// The key of each delivery's HMAC signature. Kept as is, since signing needs it; shown to a
    /// client only when the subscription is created.
    pub secret: String,
    /// The event types it receives (at least one).
    pub events: Vec<EventType>,
    /// Only events of these channels (`None`: every channel, and events of none).
    pub channels: Option<Vec<String>>,
    /// An inactive subscription receives nothing new.
    pub active: bool,
    /// It receives events with a higher id only: the log's end when it was created, so it
    /// never receives history.
    pub start_after: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl Webhook {
    /// The events it selects, as an [`EventFilter`].
    pub fn filter(&self) -> EventFilter {
        EventFilter { types: Some(self.events.clone()), channels: self.channels.clone() }
    }

    /// Whether `event` is to be delivered to it.
    pub fn wants(&self, event: &LogEvent) -> bool {
        self.active && event.id > self.start_after && self.filter().matches(event)
    }

    /// An active subscription to `events` at `http://127.0.0.1/hook`, for tests and examples.
    pub fn fixture(id: i64, events: &[EventType]) -> Webhook {
        Webhook {
            id,
            url: "http://127.0.0.1/hook".into(),
            secret: "secret".into(),
            events: events.to_vec(),
            channels: None,
            active: true,
            start_after: 0,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            updated_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// A subscription to create (its fields checked by [`check_url`] and [`parse_event_types`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhook {
    /// Absolute `http` or `https` URL.
    pub url: String,
    /// At least one event type.
    pub events: Vec<EventType>,
    /// Channel codes (each must exist); `None`: every channel.
    pub channels: Option<Vec<String>>,
    /// Default `true`.
    pub active: Option<bool>,
}

/// A change to a subscription: each field given replaces the stored one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookChange {
    /// New URL.
    pub url: Option<String>,
    /// New event types (at least one).
    pub events: Option<Vec<EventType>>,
    /// New channels: `Some(None)` lifts the restriction (JSON `null`).
    pub channels: Option<Option<Vec<String>>>,
    /// Pauses (`false`) or resumes (`true`) it.
    pub active: Option<bool>,
}

/// Whether `url` can receive deliveries: absolute, `http` or `https`, with a host, no spaces
/// or control characters, at most [`MAX_URL_CHARS`]. `Err` says why.
///
/// ```
/// use omniman_core::webhook::check_url;
/// assert!(check_url("https://example.com/hooks?x=1").is_ok());
/// assert!(check_url("ftp://example.com").is_err());
/// assert!(check_url("/relative").is_err());
/// ```
pub fn check_url(url: &str) -> Result<(), String> {
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("at most {MAX_URL_CHARS} characters"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") => rest,
        _ => return Err("must be an absolute http:// or https:// URL".into()),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return Err("must name a host".into());
    }
    Ok(())
}

/// Reads a list of event type names (`events`): non-empty, each one of [`EventType::ALL`];
/// duplicates are dropped. Problems are reported by path (`events[1]`).
///
/// ```
/// use omniman_core::webhook::parse_event_types;
/// let types = parse_event_types(&serde_json::json!(["order.created"])).unwrap();
/// assert_eq!(types[0].as_str(), "order.created");
/// assert!(parse_event_types(&serde_json::json!(["order.deleted"])).is_err());
/// ```
pub fn parse_event_types(value: &Value) -> Result<Vec<EventType>, FieldErrors> {
    let Value::Array(list) = value else {
        return Err(FieldErrors::one("events", "must be a list of event types"));
    };
    if list.is_empty() {
        return Err(FieldErrors::one("events", "must name at least one event type"));
    }
    let mut errors = FieldErrors::default();
    let mut types = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        match item.as_str().map(str::parse::<EventType>) {
            Some(Ok(kind)) if !types.contains(&kind) => types.push(kind),
            Some(Ok(_)) => {}
            Some(Err(e)) => errors.add(format!("events[{i}]"), e.to_string()),
            None => errors.add(format!("events[{i}]"), "must be a string"),
        }
    }
    errors.into_result().map(|()| types)
}

/// A delivery to enqueue: the directive that posts one event to one subscription.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDelivery {
    /// The subscription.
    pub webhook_id: i64,
    /// The event's id in the log (`None` for a test event).
    pub event_id: Option<i64>,
    /// The event's type name.
    pub event_type: String,
    /// The directive (topic [`DELIVER_TOPIC`], payload `{"webhook_id", "event"}`).
    pub directive: NewDirective,
}

impl NewDelivery {
    /// The delivery of `event` (the JSON body receivers get) to subscription `webhook_id`.
    pub fn new(webhook_id: i64, event_id: Option<i64>, event_type: &str, event: Value, now: DateTime<Utc>) -> Self {
        let mut payload = Map::new();
        payload.insert("webhook_id".into(), webhook_id.into());
        payload.insert("event".into(), event);
        NewDelivery {
            webhook_id,
            event_id,
            event_type: event_type.to_owned(),
            directive: NewDirective { topic: DELIVER_TOPIC.into(), payload, available_at: now },
        }
    }

    /// A synthetic [`TEST_EVENT_TYPE`] event for subscription `webhook_id`.
    pub fn test(webhook_id: i64, now: DateTime<Utc>) -> NewDelivery {
        let event = json!({
            "id": null, "type": TEST_EVENT_TYPE, "channel_code": null, "session_key": null,
            "order_ref": null, "data": {"webhook_id": webhook_id}, "at": now,
        });
        NewDelivery::new(webhook_id, None, TEST_EVENT_TYPE, event, now)
    }
}

/// Whether `event` reports the failure of a delivery: such an event is never delivered, or a
/// receiver that keeps failing would be sent the news of its own failures, for ever.
fn reports_a_delivery(event: &LogEvent) -> bool {
    event.kind == EventType::DirectiveFailed && event.data.get("topic").and_then(Value::as_str) == Some(DELIVER_TOPIC)
}

/// The deliveries `events` make for `webhooks`: one per event and matching active
/// subscription, in event order. Failures of deliveries themselves are not delivered.
pub fn plan_deliveries(events: &[LogEvent], webhooks: &[Webhook], now: DateTime<Utc>) -> Vec<NewDelivery> {
    let mut planned = Vec::new();
    for event in events.iter().filter(|e| !reports_a_delivery(e)) {
        let mut hooks = webhooks.iter().filter(|h| h.wants(event)).peekable();
        if hooks.peek().is_none() {
            continue;
        }
        // Encoded once, for every subscription that wants it.
        let body = serde_json::to_value(event).unwrap_or(Value::Null);
        for hook in hooks {
            planned.push(NewDelivery::new(hook.id, Some(event.id), event.kind.as_str(), body.clone(), now));
        }
    }
    planned
}

/// A delivery as listed: what was sent and how its directive fares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The delivery id: its directive's id, sent as the delivery header on every attempt.
    pub id: i64,
    /// The subscription.
    pub webhook_id: i64,
    /// The event's id in the log (`None` for a test event).
    pub event_id: Option<i64>,
    /// The event's type name.
    pub event_type: String,
    /// The directive's status.
    pub status: DirectiveStatus,
    /// Attempts so far.
    pub attempts: i32,
    /// The last failure, or empty.
    pub last_error: String,
    /// The next attempt is not before this instant.
    pub available_at: DateTime<Utc>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Last change of its directive.
    pub updated_at: DateTime<Utc>,
}

impl Delivery {
    /// The delivery `directive` carries, with what its record says.
    pub fn of(directive: &Directive, webhook_id: i64, event_id: Option<i64>, event_type: &str) -> Delivery {
        Delivery {
            id: directive.id,
            webhook_id,
            event_id,
            event_type: event_type.to_owned(),
            status: directive.status,
            attempts: directive.attempts,
            last_error: directive.last_error.clone(),
            available_at: directive.available_at,
            created_at: directive.created_at,
            updated_at: directive.updated_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventRead;

    #[test]
    fn urls() {
        for ok in ["http://a", "https://a.b:8443/x?y#z", "HTTPS://user@host/"] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a.b", "mailto:x@y", "http://", "http:///x", "https://a b", "http://:80/"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn event_types() {
        assert_eq!(
            parse_event_types(&json!(["order.created", "order.created", "stock.shortage"])).unwrap(),
            [EventType::OrderCreated, EventType::StockShortage]
        );
        let errors = parse_event_types(&json!(["x", 1])).unwrap_err();
        assert_eq!(errors.0.keys().collect::<Vec<_>>(), ["events[0]", "events[1]"]);
        assert!(parse_event_types(&json!([])).is_err());
        assert!(parse_event_types(&json!("order.created")).is_err());
    }

    #[test]
    fn plans_one_delivery_per_matching_active_subscription() {
        let mut events = EventRead::fixture(&[1, 2], &[]).events;
        events[1].kind = EventType::OrderCreated;
        events[1].channel_code = Some("pos".into());
        let all = Webhook::fixture(1, &[EventType::SessionOpened, EventType::OrderCreated]);
        let mut web_only = Webhook::fixture(2, &[EventType::OrderCreated]);
        web_only.channels = Some(vec!["web".into()]);
        let mut paused = Webhook::fixture(3, &[EventType::OrderCreated]);
        paused.active = false;
        let planned = plan_deliveries(&events, &[all, web_only, paused], DateTime::<Utc>::UNIX_EPOCH);
        let got: Vec<_> = planned.iter().map(|d| (d.webhook_id, d.event_id, d.event_type.as_str())).collect();
        assert_eq!(got, [(1, Some(1), "session.opened"), (1, Some(2), "order.created")]);
        assert_eq!(planned[1].directive.topic, DELIVER_TOPIC);
        assert_eq!(planned[1].directive.payload["event"]["type"], json!("order.created"));
        assert_eq!(planned[1].directive.payload["webhook_id"], json!(1));
    }

    #[test]
    fn the_failure_of_a_delivery_is_not_delivered() {
        let mut events = EventRead::fixture(&[1, 2], &[]).events;
        for (event, topic) in events.iter_mut().zip([DELIVER_TOPIC, "stock.hold"]) {
            event.kind = EventType::DirectiveFailed;
            event.data = json!({"topic": topic});
        }
        let hook = Webhook::fixture(1, &[EventType::DirectiveFailed]);
        let planned = plan_deliveries(&events, &[hook], DateTime::<Utc>::UNIX_EPOCH);
        assert_eq!(planned.iter().map(|d| d.event_id).collect::<Vec<_>>(), [Some(2)]);
    }
}
