//! # omniman-core
//!
//! The pure domain of Omniman, a headless omnichannel order hub: every sales channel changes a
//! mutable **session** with batches of **ops**, seals it with an idempotent **commit** into an
//! immutable **order** that follows a per-channel status machine, and leaves side effects to
//! **directives**, an at-least-once task queue.
//!
//! This crate holds every rule as plain data and pure functions ([`modify::apply_ops`],
//! [`commit::plan_commit`], [`order::plan_transition`], [`directive::decide_outcome`]…), the
//! async storage [`ports`], and [`Omniman`], the application service that reads, decides and
//! writes conditionally. It depends on no async runtime, database or network library.
//!
//! ```
//! use omniman_core::prelude::*;
//! use omniman_core::memory::InMemoryStore;
//!
//! # futures_executor::block_on(async {
//! let store = InMemoryStore::new();
//! store.put_channel(omniman_core::testing::channel("pos"));
//! let hub = Omniman::new(store, Extensions::default());
//! let till = Caller::external("till-1");
//!
//! let opened = hub.open_session(OpenSession { channel_code: "pos".into(), ..Default::default() }, &till).await?;
//! let key = opened.session.session_key;
//! let ops = Op::parse_batch(&serde_json::json!([
//!     {"op": "add_line", "sku": "ESPRESSO", "qty": 2, "unit_price_q": 450},
//!     {"op": "set_data", "path": "customer.name", "value": "Ana"}
//! ])).expect("well-formed ops");
//! let session = hub.modify("pos", &key, &ops, None, &till).await?;
//! assert_eq!((session.rev, session.total_q()), (1, 900));
//!
//! let answer = hub.commit("pos", &key, Some("till-1-0001"), None, &till).await?;
//! assert_eq!(answer.code, 201);
//! // The same key again replays the same answer: one order, never two.
//! let again = hub.commit("pos", &key, Some("till-1-0001"), None, &till).await?;
//! assert_eq!(again.order_ref(), answer.order_ref());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod channel;
pub mod checks;
pub mod clock;
pub mod commit;
pub mod context;
pub mod directive;
pub mod error;
pub mod ext;
pub mod idempotency;
pub mod ids;
pub mod memory;
pub mod modify;
pub mod money;
pub mod ops;
pub mod order;
pub mod page;
pub mod ports;
pub mod service;
pub mod session;
pub mod testing;

pub use service::Omniman;

/// The names most programs need.
pub mod prelude {
    pub use crate::channel::{Channel, ChannelConfig, ChannelSpec, EditPolicy, PricingPolicy};
    pub use crate::checks::ResolveError;
    pub use crate::clock::{Clock, ManualClock, SystemClock};
    pub use crate::commit::{CommitError, CommitResponse, CommitSettings};
    pub use crate::context::{Caller, Ctx};
    pub use crate::directive::{Directive, DirectiveStatus, HandlerError, HandlerOutcome, NewDirective, RetryPolicy};
    pub use crate::error::{Code, DomainError, ErrorCode, ErrorKind, FieldErrors, Rejection, StoreError};
    pub use crate::ext::{Extensions, ExtensionsBuilder};
    pub use crate::ids::{IdGen, RandomIds};
    pub use crate::modify::{ModifyError, apply_ops};
    pub use crate::money::{Qty, monetary_mult};
    pub use crate::ops::{Op, PathRules};
    pub use crate::order::{Order, OrderEvent, TransitionError};
    pub use crate::ports::Store;
    pub use crate::service::{ImportSession, Omniman, OpenError, OpenSession, Opened, Transitioned};
    pub use crate::session::{Item, Precondition, Session, SessionState};
}
