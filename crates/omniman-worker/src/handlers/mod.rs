//! The bundled directive handlers and backends (docs/reference.md §7, §8).
//!
//! Handlers hold an `Arc<Omniman<S>>` to read sessions and orders and to write check results, so
//! they go in the registry given to the [`crate::Worker`], not in the service's own registry.
//! Every handler is idempotent: running it twice changes nothing the second time.

pub mod payment;
pub mod stock;
pub mod webhook;

use omniman_core::directive::Directive;
use serde_json::Value;

/// A string field of the payload.
pub(crate) fn payload_str<'a>(directive: &'a Directive, key: &str) -> Option<&'a str> {
    directive.payload.get(key).and_then(Value::as_str)
}
