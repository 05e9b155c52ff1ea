//! `/api/channels…`.

use omniman_core::channel::Channel;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// A channel.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Id.
    pub id: i64,
    /// Unique code.
    pub code: String,
    /// Display name (may be empty).
    pub name: String,
    /// `internal` or `external`.
    pub pricing_policy: String,
    /// `open` or `locked`.
    pub edit_policy: String,
    /// Sort key.
    pub display_order: u32,
    /// Configuration, verbatim.
    #[schema(value_type = Object)]
    pub config: Value,
    /// Inactive channels refuse new sessions.
    pub is_active: bool,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> ChannelView {
        ChannelView {
            id: c.id,
            code: c.code.clone(),
            name: c.name.clone(),
            pricing_policy: c.pricing_policy.as_str().to_owned(),
            edit_policy: c.edit_policy.as_str().to_owned(),
            display_order: c.display_order,
            config: Value::Object(c.config.raw().clone()),
            is_active: c.is_active,
        }
    }
}

list_view!(
    /// A page of channels.
    ChannelList,
    ChannelView
);
