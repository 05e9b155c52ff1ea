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
//! Embedding it takes a store (here the in-memory one; `omniman-storage` provides PostgreSQL and
//! SQLite behind the same ports), a registry of extensions, and parsed input:
//!
//! ```
//! use omniman_core::prelude::*;
//! use omniman_core::memory::InMemoryStore;
//! use omniman_core::ports::ChannelStore;
//!
//! # futures_executor::block_on(async {
//! let store = InMemoryStore::new();
//! store.upsert_channel(&ChannelSpec::new("pos"), chrono::Utc::now()).await?;
//! let hub = Omniman::new(store, Extensions::default());
//! let till = Caller::external("till-1");
//!
//! // Input is parsed at the edge: past this point no unchecked string reaches a decision.
//! let pos = ChannelCode::parse("pos")?;
//! let opened = hub.open_session(OpenSession::on(pos.clone()), &till).await?;
//! let tab = SessionRef { channel: pos, key: SessionKey::parse(opened.session.session_key)? };
//! let ops = Op::parse_batch(&serde_json::json!([
//!     {"op": "add_line", "sku": "ESPRESSO", "qty": 2, "unit_price_q": 450},
//!     {"op": "set_data", "path": "customer.name", "value": "Ana"}
//! ]))?;
//! let session = hub.modify(&tab, &ops, None, &till).await?;
//! assert_eq!((session.rev, session.total_q()), (1, 900));
//!
//! let key = IdempotencyKey::parse("till-1-0001")?;
//! let CommitOutcome::Committed(receipt) = hub.commit(&tab, Some(&key), None, &till).await? else {
//!     panic!("a new order")
//! };
//! assert_eq!((receipt.total_q, receipt.items_count), (900, 1));
//! // The same key again replays the first answer: one order, never two.
//! let again = hub.commit(&tab, Some(&key), None, &till).await?;
//! assert_eq!(again.receipt(), Some(receipt));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

pub mod channel;
pub mod checks;
pub mod clock;
pub mod commit;
pub mod context;
pub mod data_path;
pub mod directive;
pub mod error;
pub mod events;
pub mod ext;
pub mod fields;
pub mod idempotency;
pub mod ids;
pub mod input;
pub mod memory;
pub mod modify;
pub mod money;
pub mod ops;
pub mod order;
pub mod page;
pub mod ports;
pub mod service;
pub mod session;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhook;

pub use service::Omniman;

/// The names most programs need.
pub mod prelude {
    pub use crate::channel::{Channel, ChannelConfig, ChannelSpec, EditPolicy, PricingPolicy};
    pub use crate::checks::ResolveError;
    pub use crate::clock::{Clock, ManualClock, SystemClock};
    pub use crate::commit::{CommitError, CommitOutcome, CommitReceipt, CommitSettings};
    pub use crate::context::{Caller, Ctx};
    pub use crate::directive::{Directive, DirectiveStatus, HandlerError, HandlerOutcome, NewDirective, RetryPolicy};
    pub use crate::error::{Code, DomainError, ErrorCode, ErrorKind, FieldErrors, Rejection, StoreError};
    pub use crate::ext::{Extensions, ExtensionsBuilder, HandlerRegistry};
    pub use crate::ids::{IdGen, RandomIds};
    pub use crate::input::{ChannelCode, HandleRef, HandleType, IdempotencyKey, SessionKey, SessionRef, Sku};
    pub use crate::modify::{ModifyError, apply_ops};
    pub use crate::money::{Qty, checked_monetary_mult, monetary_mult};
    pub use crate::ops::{MAX_OPS_PER_BATCH, Op, PathRules};
    pub use crate::order::{Order, OrderEvent, TransitionError};
    pub use crate::ports::Store;
    pub use crate::service::{ImportSession, Omniman, OpenError, OpenSession, Opened, ReadError, Transitioned};
    pub use crate::session::{Item, MAX_LINES_PER_SESSION, Precondition, Session, SessionState};
}
