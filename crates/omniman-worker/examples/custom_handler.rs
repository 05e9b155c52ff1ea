//! Writing, registering and running a directive handler from an embedding crate.
//!
//! Run it with `cargo run -p omniman-worker --example custom_handler`. `cargo test -p
//! omniman-worker` runs it too (the example is built with `test = true`): `main` asserts what the
//! handler did, and a second test checks that every `rust` block of `docs/directives.md` is
//! quoted from this file verbatim (but for the indentation common to a block).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use omniman_core::directive::{Directive, HandlerError, HandlerOutcome, NewDirective};
use omniman_core::ext::{DirectiveHandler, HandlerCtx, HandlerRegistry};
use omniman_core::memory::InMemoryStore;
use omniman_core::ports::{ChannelStore, DirectiveQueue};
use omniman_core::prelude::*;
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
        // A real printer call would go here; an `Err(HandlerError(..))` would be retried with backoff.
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
    let config = ChannelConfig::from_value(json!({"post_commit_directives": ["kitchen.ticket"]}))?;
    store.upsert_channel(&ChannelSpec { config, ..ChannelSpec::new("pos") }, chrono::Utc::now()).await?;
    let hub = Omniman::new(store.clone(), Extensions::default());

    let till = Caller::external("till-1");
    let pos = ChannelCode::parse("pos")?;
    let opened = hub.open_session(OpenSession::on(pos.clone()), &till).await?;
    let tab = SessionRef { channel: pos, key: SessionKey::parse(opened.session.session_key)? };
    let ops = Op::parse_batch(&json!([{"op": "add_line", "sku": "BURGER", "qty": 1, "unit_price_q": 2500}]))?;
    hub.modify(&tab, &ops, None, &till).await?;
    let outcome = hub.commit(&tab, Some(&IdempotencyKey::parse("till-1-42")?), None, &till).await?;
    let order_ref = outcome.receipt().ok_or("the commit names no order")?.order_ref;
    // And one enqueued by hand without an order ref, to show a permanent failure.
    let malformed =
        NewDirective { topic: "kitchen.ticket".into(), payload: Map::new(), available_at: chrono::Utc::now() };
    store.enqueue(&[malformed]).await?;

    // Handlers live in the registry handed to the worker.
    let ticket = Arc::new(KitchenTicket { printed: AtomicUsize::new(0) });
    let handlers = HandlerRegistry::new().register(ticket.clone())?;
    let worker = Worker::new(Arc::new(store.clone()), Arc::new(handlers), WorkerConfig::default());
    // One batch; a long-running process calls `worker.spawn()` instead and, on shutdown,
    // `.shutdown().await` on the handle it returns.
    let report = worker.run_once().await?;

    println!("done: {}, failed: {}", report.done, report.failed);
    assert_eq!((report.done, report.failed, ticket.printed.load(Ordering::SeqCst)), (1, 1, 1));
    let runs = store.all_directives();
    let printed = runs.iter().find(|d| d.status == DirectiveStatus::Done).ok_or("no ticket printed")?;
    assert_eq!(printed.payload["ticket"], json!(format!("T-{order_ref}")), "the patch is merged into the payload");
    let refused = runs.iter().find(|d| d.status == DirectiveStatus::Failed).ok_or("nothing refused")?;
    assert_eq!(refused.last_error, "payload lacks order_ref");

    // A topic has one handler.
    let twice = HandlerRegistry::new().register(ticket.clone())?.register(ticket);
    assert_eq!(twice.unwrap_err().to_string(), "handler topic 'kitchen.ticket' is already registered");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }

    /// `docs/directives.md` quotes this file: each of its `rust` blocks must appear here verbatim
    /// (but for the indentation common to the block).
    #[test]
    fn the_directives_page_quotes_this_file() {
        let page = include_str!("../../../docs/directives.md");
        let source = include_str!("custom_handler.rs");
        let mut blocks = Vec::new();
        let mut open: Option<Vec<&str>> = None;
        for line in page.lines() {
            match (open.as_mut(), line.trim_end()) {
                (None, "```rust") => open = Some(Vec::new()),
                (Some(_), "```") => blocks.push(open.take().unwrap_or_default()),
                (Some(block), _) => block.push(line),
                (None, _) => {}
            }
        }
        assert!(open.is_none(), "a rust block of the page is not closed");
        assert!(!blocks.is_empty(), "the page quotes no rust block");
        for block in &blocks {
            assert!(
                quoted(source, block),
                "not quoted verbatim from examples/custom_handler.rs:\n{}",
                block.join("\n")
            );
        }
    }

    /// Whether `block` is a run of lines of `source`, all indented alike (the page drops the
    /// indentation common to a quote).
    fn quoted(source: &str, block: &[&str]) -> bool {
        let lines: Vec<&str> = source.lines().collect();
        !block.is_empty()
            && lines.windows(block.len()).any(|window| {
                let pad = &window[0][..window[0].len() - window[0].trim_start().len()];
                window.iter().zip(block).all(|(line, quote)| {
                    if quote.is_empty() { line.is_empty() } else { line.strip_prefix(pad) == Some(*quote) }
                })
            })
    }
}
