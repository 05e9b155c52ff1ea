//! Writing, registering and running a directive handler from an embedding crate.
//!
//! Run with `cargo run -p omniman-worker --example custom_handler`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use omniman_core::directive::{Directive, HandlerError, HandlerOutcome};
use omniman_core::ext::{DirectiveHandler, ExtensionsBuilder, HandlerCtx};
use omniman_core::memory::InMemoryStore;
use omniman_core::prelude::*;
use omniman_core::testing::channel_with;
use omniman_worker::{Worker, WorkerConfig};
use serde_json::{Map, Value, json};

/// Prints a kitchen ticket for each new order. Idempotent: the ticket number is derived from the
/// order ref, so printing twice (at-least-once delivery) yields the same ticket.
struct KitchenTicket {
    printed: AtomicUsize,
}

#[async_trait]
impl DirectiveHandler for KitchenTicket {
    fn topic(&self) -> &str {
        "kitchen.ticket"
    }

    async fn handle(&self, directive: &Directive, ctx: &HandlerCtx) -> Result<HandlerOutcome, HandlerError> {
        let Some(order_ref) = directive.payload.get("order_ref").and_then(Value::as_str) else {
            // Permanent: retrying cannot fix a malformed payload.
            return Ok(HandlerOutcome::failed("payload lacks order_ref"));
        };
        // A real printer call would go here; an `Err` would be retried with backoff.
        println!("[{}] ticket for {order_ref} (attempt {})", ctx.actor, directive.attempts);
        self.printed.fetch_add(1, Ordering::SeqCst);
        let mut patch = Map::new();
        patch.insert("ticket".into(), format!("T-{order_ref}").into());
        Ok(HandlerOutcome::Done { patch })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = InMemoryStore::new();
    // The channel asks commit to enqueue one `kitchen.ticket` directive per order.
    store.put_channel(channel_with("pos", json!({"post_commit_directives": ["kitchen.ticket"]})));
    let hub = Omniman::new(store.clone(), Extensions::default());

    let till = Caller::external("till-1");
    let key = hub
        .open_session(OpenSession { channel_code: "pos".into(), ..Default::default() }, &till)
        .await?
        .session
        .session_key;
    let ops = Op::parse_batch(&json!([{"op": "add_line", "sku": "BURGER", "qty": 1, "unit_price_q": 2500}]))?;
    hub.modify("pos", &key, &ops, None, &till).await?;
    hub.commit("pos", &key, Some("till-1-42"), None, &till).await?;

    // Handlers live in the registry handed to the worker.
    let ticket = Arc::new(KitchenTicket { printed: AtomicUsize::new(0) });
    let handlers = ExtensionsBuilder::new().handler(ticket.clone())?.build();
    let worker = Worker::new(Arc::new(store.clone()), Arc::new(handlers), WorkerConfig::default());
    let report = worker.run_once().await?;
    assert_eq!((report.done, ticket.printed.load(Ordering::SeqCst)), (1, 1));
    println!("done: {}, failed: {}", report.done, report.failed);
    Ok(())
}
