//! `webhook.deliver`: posts one event of the log to one webhook subscription, signed
//! (docs/webhooks.md).
//!
//! Headers: `Omniman-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed
//! with the subscription's secret, `Omniman-Delivery: <delivery id>` (the directive's id: the same
//! on every retry, so receivers can drop duplicates) and `Omniman-Event: <event type>`. The body
//! is the event's JSON. A 2xx answer is `done`; 408, 429, 5xx and network errors are retried by
//! the directive policy; any other status (redirects included: they are not followed) is a
//! permanent failure. A delivery whose subscription
//! was deleted ends `done` without sending (`skipped` in its payload).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use omniman_core::Omniman;
use omniman_core::directive::{Directive, HandlerError, HandlerOutcome};
use omniman_core::ext::{DirectiveHandler, HandlerCtx};
use omniman_core::ports::Store;
use omniman_core::service::ManageError;
use omniman_core::webhook::DELIVER_TOPIC;
use serde_json::{Map, Value};
use sha2::Sha256;

use super::webhook::outcome_of;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "Omniman-Signature";
/// The delivery id header: the same on every attempt of one delivery.
pub const DELIVERY_HEADER: &str = "Omniman-Delivery";
/// The event type header.
pub const EVENT_HEADER: &str = "Omniman-Event";
/// How old a signature's timestamp a receiver should accept, by default: 5 minutes.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// The HMAC-SHA256 of `"<timestamp>.<body>"` keyed with `secret`, before finalizing.
fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Omniman-Signature` value for `body` sent at `timestamp` (unix seconds).
///
/// ```
/// use omniman_worker::handlers::deliver::{sign, verify};
/// let header = sign("whsec_x", 1_765_000_000, b"{}");
/// assert!(header.starts_with("t=1765000000,v1="));
/// assert!(verify("whsec_x", &header, b"{}", 1_765_000_010, 300).is_ok());
/// ```
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", hex::encode(mac(secret, timestamp, body).finalize().into_bytes()))
}

/// Why a signature was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The header is not `t=…,v1=…`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or a wrong clock).
    #[error("signature timestamp outside the tolerance")]
    Expired,
    /// No `v1` matches the body and the secret.
    #[error("signature does not match")]
    Mismatch,
}

/// Checks an `Omniman-Signature` header the way a receiver should: the timestamp within
/// `tolerance_secs` of `now` (unix seconds), then a `v1` equal to the HMAC of `"<t>.<body>"`,
/// compared in constant time. Several `v1` entries may be present (while a secret is rotated).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            Some(("v1", v)) => candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp.filter(|_| !candidates.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    if (now - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Expired);
    }
    let matches = |candidate: &Vec<u8>| mac(secret, timestamp, body).verify_slice(candidate).is_ok();
    if candidates.iter().any(matches) { Ok(()) } else { Err(SignatureError::Mismatch) }
}

/// The `webhook.deliver` handler.
pub struct WebhookDeliveryHandler<S> {
    hub: Arc<Omniman<S>>,
    client: reqwest::Client,
    timeout: Duration,
}

impl<S> std::fmt::Debug for WebhookDeliveryHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookDeliveryHandler").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl<S: Store + 'static> WebhookDeliveryHandler<S> {
    /// A handler reading subscriptions through `hub`; each POST may take 10 seconds.
    pub fn new(hub: Arc<Omniman<S>>) -> WebhookDeliveryHandler<S> {
        // A redirect is not followed: it would turn the POST into a GET, and send it where the
        // subscription does not say. It fails the delivery like any other non-2xx answer.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        WebhookDeliveryHandler { hub, client, timeout: Duration::from_secs(10) }
    }

    /// The same with another time limit per POST.
    pub fn with_timeout(self, timeout: Duration) -> WebhookDeliveryHandler<S> {
        WebhookDeliveryHandler { timeout, ..self }
    }
}

#[async_trait]
impl<S: Store + 'static> DirectiveHandler for WebhookDeliveryHandler<S> {
    fn topic(&self) -> &str {
        DELIVER_TOPIC
    }

    async fn handle(&self, directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let Some(webhook_id) = directive.payload.get("webhook_id").and_then(Value::as_i64) else {
            return Ok(HandlerOutcome::failed("payload lacks webhook_id"));
        };
        let Some(event) = directive.payload.get("event") else {
            return Ok(HandlerOutcome::failed("payload lacks event"));
        };
        let webhook = match self.hub.webhook(webhook_id).await {
            Ok(webhook) => webhook,
            Err(ManageError::WebhookNotFound { .. }) => {
                let mut patch = Map::new();
                patch.insert("skipped".into(), "the subscription was deleted".into());
                return Ok(HandlerOutcome::Done { patch });
            }
            Err(e) => return Err(HandlerError(e.to_string())),
        };
        let event_type = event.get("type").and_then(Value::as_str).unwrap_or_default();
        let body = serde_json::to_vec(event).map_err(|e| HandlerError(e.to_string()))?;
        // Signed when sent, not when enqueued: a retry hours later still passes the receiver's
        // timestamp check.
        let timestamp = chrono::Utc::now().timestamp();
        let response = self
            .client
            .post(&webhook.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("user-agent", concat!("omniman-webhooks/", env!("CARGO_PKG_VERSION")))
            .header(SIGNATURE_HEADER, sign(&webhook.secret, timestamp, &body))
            .header(DELIVERY_HEADER, directive.id.to_string())
            .header(EVENT_HEADER, event_type)
            .body(body)
            .send()
            .await
            .map_err(|e| HandlerError(format!("webhook delivery failed: {e}")))?;
        outcome_of(response.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_refuse() {
        let header = sign("k", 1000, b"body");
        assert_eq!(verify("k", &header, b"body", 1000, 300), Ok(()));
        assert_eq!(verify("k", &header, b"body", 1301, 300), Err(SignatureError::Expired));
        assert_eq!(verify("other", &header, b"body", 1000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify("k", &header, b"bodY", 1000, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify("k", "v1=00", b"body", 1000, 300), Err(SignatureError::Malformed));
        let rotated = format!("{header},v1={}", "ab".repeat(32));
        assert_eq!(verify("k", &rotated, b"body", 1000, 300), Ok(()));
    }
}
