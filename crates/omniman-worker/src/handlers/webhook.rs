//! `webhook.post`: delivers a directive's payload to the URL configured on its channel, signed
//! with HMAC-SHA256.
//!
//! Channel configuration: `"webhooks": {"url": "https://…", "secret": "…", "timeout_secs": 10}`.
//! The request body is the directive's payload as JSON; headers:
//! `X-Omniman-Signature: sha256=<hex HMAC of the body>`, `X-Omniman-Delivery: <directive id>` (the
//! same on every retry, so receivers can drop duplicates) and `X-Omniman-Topic`.
//! A 2xx answer is `done`; 408, 429, 5xx and network errors are retried by the policy; any other
//! status is a permanent failure.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, KeyInit, Mac};
use omniman_core::Omniman;
use omniman_core::directive::{Directive, HandlerError, HandlerOutcome};
use omniman_core::ext::{DirectiveHandler, HandlerCtx};
use omniman_core::ports::Store;
use serde_json::{Map, Value};
use sha2::Sha256;

use super::payload_str;

/// The signature header's value for `body`.
///
/// ```
/// let sig = omniman_worker::handlers::webhook::signature("secret", b"{}");
/// assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
/// ```
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The `webhook.post` handler.
pub struct WebhookHandler<S> {
    hub: Arc<Omniman<S>>,
    client: reqwest::Client,
}

impl<S> std::fmt::Debug for WebhookHandler<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookHandler")
    }
}

impl<S: Store + 'static> WebhookHandler<S> {
    /// A handler reading channel configuration through `hub`.
    pub fn new(hub: Arc<Omniman<S>>) -> WebhookHandler<S> {
        WebhookHandler { hub, client: reqwest::Client::new() }
    }
}

#[async_trait]
impl<S: Store + 'static> DirectiveHandler for WebhookHandler<S> {
    fn topic(&self) -> &str {
        "webhook.post"
    }

    async fn handle(&self, directive: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let Some(channel_code) = payload_str(directive, "channel_code") else {
            return Ok(HandlerOutcome::failed("payload lacks channel_code"));
        };
        let channel = match self.hub.channel(channel_code).await {
            Ok(c) => c,
            Err(omniman_core::service::ReadError::Store(e)) => return Err(HandlerError(e.to_string())),
            Err(_) => return Ok(HandlerOutcome::failed(format!("unknown channel {channel_code}"))),
        };
        let config = channel.config.raw().get("webhooks");
        let Some(url) = config.and_then(|c| c.get("url")).and_then(Value::as_str) else {
            return Ok(HandlerOutcome::failed(format!("no webhooks.url configured for channel {channel_code}")));
        };
        let secret = config.and_then(|c| c.get("secret")).and_then(Value::as_str).unwrap_or_default();
        let timeout = config.and_then(|c| c.get("timeout_secs")).and_then(Value::as_u64).unwrap_or(10);
        let body = serde_json::to_vec(&directive.payload).map_err(|e| HandlerError(e.to_string()))?;
        let response = self
            .client
            .post(url)
            .timeout(Duration::from_secs(timeout))
            .header("content-type", "application/json")
            .header("x-omniman-signature", signature(secret, &body))
            .header("x-omniman-delivery", directive.id.to_string())
            .header("x-omniman-topic", directive.topic.as_str())
            .body(body)
            .send()
            .await
            .map_err(|e| HandlerError(format!("webhook delivery failed: {e}")))?;
        outcome_of(response.status())
    }
}

/// What a receiver's answer makes of a delivery, for both webhook handlers: a 2xx is `done`
/// (with `delivered_status`); 408, 429 and 5xx are transient (retried by the policy); any other
/// status is a permanent failure.
pub(crate) fn outcome_of(status: reqwest::StatusCode) -> Result<HandlerOutcome, HandlerError> {
    if status.is_success() {
        let mut patch = Map::new();
        patch.insert("delivered_status".into(), status.as_u16().into());
        return Ok(HandlerOutcome::Done { patch });
    }
    let message = format!("webhook answered {status}");
    if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
        Err(HandlerError(message))
    } else {
        Ok(HandlerOutcome::failed(message))
    }
}
