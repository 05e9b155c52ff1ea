//! The bundled directive handlers and backends (docs/reference.md §7, §8).
//!
//! Handlers hold an `Arc<Omniman<S>>` to read sessions and orders and to write check results, so
//! they go in the registry given to the [`crate::Worker`], not in the service's own registry.
//! Every handler is idempotent: running it twice changes nothing the second time.

pub mod deliver;
pub mod payment;
pub mod stock;
pub mod webhook;

use omniman_core::directive::Directive;
use serde_json::Value;

/// A string field of the payload.
pub(crate) fn payload_str<'a>(directive: &'a Directive, key: &str) -> Option<&'a str> {
    directive.payload.get(key).and_then(Value::as_str)
}

/// The session a payload names by `channel_code` and `session_key`, when both are present and
/// well-formed.
pub(crate) fn payload_session(directive: &Directive) -> Option<omniman_core::input::SessionRef> {
    let (channel, key) = (payload_str(directive, "channel_code")?, payload_str(directive, "session_key")?);
    omniman_core::input::SessionRef::parse(channel, key).ok()
}
