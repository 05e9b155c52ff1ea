//! Small builders for tests, doc examples and benches.

use chrono::{DateTime, Utc};

use crate::channel::{Channel, ChannelConfig, EditPolicy, PricingPolicy};
use crate::session::Session;

/// A fixed instant: 2026-11-21T12:00:00Z.
pub fn epoch() -> DateTime<Utc> {
    DateTime::from_timestamp(1_795_262_400, 0).unwrap_or_default()
}

/// An active, internally priced, open channel with an empty config and id 1.
pub fn channel(code: &str) -> Channel {
    Channel {
        id: 1,
        code: code.to_owned(),
        name: String::new(),
        pricing_policy: PricingPolicy::Internal,
        edit_policy: EditPolicy::Open,
        display_order: 0,
        config: ChannelConfig::default(),
        is_active: true,
        created_at: epoch(),
    }
}

/// `channel` with a configuration object.
pub fn channel_with(code: &str, config: serde_json::Value) -> Channel {
    Channel { config: ChannelConfig::from_value(config).expect("valid test config"), ..channel(code) }
}

/// A new open session on `channel` (id 1).
pub fn session(channel: &Channel, key: &str) -> Session {
    Session { id: 1, ..Session::open(channel, key.to_owned(), None, None, epoch()) }
}

/// A channel code from a literal; panics when malformed.
pub fn code(raw: &str) -> crate::input::ChannelCode {
    crate::input::ChannelCode::parse(raw).expect("a well-formed channel code")
}

/// A session key from a literal; panics when malformed.
pub fn key(raw: &str) -> crate::input::SessionKey {
    crate::input::SessionKey::parse(raw).expect("a well-formed session key")
}

/// A session's address from literals; panics when malformed.
pub fn at(channel: &str, key: &str) -> crate::input::SessionRef {
    crate::input::SessionRef::parse(channel, key).expect("a well-formed channel code and key")
}

/// An idempotency key from a literal; panics when malformed.
pub fn idem(raw: &str) -> crate::input::IdempotencyKey {
    crate::input::IdempotencyKey::parse(raw).expect("a well-formed idempotency key")
}
