//! # omniman-worker
//!
//! Runs directives (docs/reference.md §9): a claimer takes batches of queued directives, runs their handlers
//! concurrently (each with a timeout), records each outcome as soon as its handler ends
//! (retrying the write until it succeeds), renews the claims it holds, applies the retry
//! policy, reaps directives whose claims went unrenewed, and drains on shutdown so a clean stop
//! leaves nothing `running`.
//!
//! Delivery is at least once: a crash between a handler's effect and the outcome's write means
//! the directive runs again once its claim lapses (the reaper's timeout), so handlers must be
//! idempotent.
//!
//! ```
//! use std::sync::Arc;
//! use omniman_core::prelude::*;
//! use omniman_core::ext::HandlerCtx;
//! use omniman_core::memory::InMemoryStore;
//! use omniman_core::ports::DirectiveQueue;
//! use omniman_worker::{Worker, WorkerConfig};
//!
//! struct Greet;
//! #[async_trait::async_trait]
//! impl omniman_core::ext::DirectiveHandler for Greet {
//!     fn topic(&self) -> &str { "greet" }
//!     async fn handle(&self, _d: &Directive, _ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
//!         Ok(HandlerOutcome::done())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let store = Arc::new(InMemoryStore::new());
//! let now = chrono::Utc::now();
//! store.enqueue(&[NewDirective { topic: "greet".into(), payload: Default::default(), available_at: now }]).await.unwrap();
//! let handlers = Arc::new(HandlerRegistry::new().register(Arc::new(Greet)).unwrap());
//! let worker = Worker::new(store.clone(), handlers, WorkerConfig::default());
//! let report = worker.run_once().await.unwrap();
//! assert_eq!(report.done, 1);
//! # });
//! ```

mod dispatcher;
pub mod handlers;
mod liveness;
mod worker;

pub use dispatcher::{DispatchReport, Dispatcher, DispatcherHandle};
pub use liveness::{WorkerLiveness, WorkerState};
pub use worker::{CycleReport, Worker, WorkerConfig, WorkerHandle};
