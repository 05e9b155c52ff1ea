//! The JSON shapes of responses (docs/api.md, Routes), with their OpenAPI schemas,
//! one module per resource as in `handlers/`.
//!
//! Responses are built from the core's types here and nowhere else. Timestamps are RFC 3339 in
//! UTC with a `Z`; quantities are 3-decimal strings; money is integer quanta.

// First, so that its `list_view!` is in scope in the modules after it.
#[macro_use]
mod common;
mod channels;
mod directives;
mod meta;
mod orders;
mod sessions;
mod tokens;
mod webhooks;

pub use channels::{ChannelList, ChannelView};
pub use directives::{DirectiveList, DirectiveSummaryView, DirectiveView};
pub use meta::{HealthView, ReadyCheckView, ReadyView};
pub use orders::{
    EventList, EventView, OrderItemView, OrderList, OrderSummaryView, OrderView, StreamEntryView, StreamView,
    TransitionedView,
};
pub use sessions::{CommitResultView, ItemView, SessionList, SessionSummaryView, SessionView};
pub use tokens::{IssuedTokenView, TokenList, TokenView};
pub use webhooks::{CreatedWebhookView, DeliveryList, DeliveryView, WebhookList, WebhookView};
