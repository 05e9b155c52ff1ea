//! Embedding Omniman in a Rust program: open a session, change it, commit it, move the order.
//!
//! Run with `cargo run -p omniman-core --example embed`. The in-memory store keeps everything in
//! the process; a real service would use `omniman-storage` (PostgreSQL or SQLite) instead, with
//! the same `Omniman` API.

use std::collections::HashMap;
use std::sync::Arc;

use omniman_core::channel::{ChannelConfig, ChannelSpec};
use omniman_core::ext::{ItemPricingModifier, PriceList, SessionTotalModifier};
use omniman_core::memory::InMemoryStore;
use omniman_core::ports::ChannelStore;
use omniman_core::prelude::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    futures_executor::block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // A point-of-sale channel whose prices come from the shop's own price list.
    let store = InMemoryStore::new();
    let config = ChannelConfig::from_value(json!({"order_flow": {"initial_status": "new"}}))?;
    let pos = ChannelSpec { name: "Café".into(), config, ..ChannelSpec::new("pos") };
    store.upsert_channel(&pos, chrono::Utc::now()).await?;
    let prices = PriceList(HashMap::from([("ESPRESSO".to_owned(), 450), ("CROISSANT".to_owned(), 700)]));
    let extensions = ExtensionsBuilder::new()
        .modifier(ItemPricingModifier::new(Arc::new(prices)))
        .modifier(SessionTotalModifier)
        .build();
    let hub = Omniman::new(store, extensions);
    let till = Caller::external("till-1");

    // A table tab: opening the same table again returns the open tab.
    // Input is parsed once, at the edge: a malformed code, key or handle never reaches the hub.
    let pos = ChannelCode::parse("pos")?;
    let request = OpenSession {
        handle_type: Some(HandleType::parse("table")?),
        handle_ref: Some(HandleRef::parse("7")?),
        ..OpenSession::on(pos.clone())
    };
    let opened = hub.open_session(request, &till).await?;
    let tab = SessionRef { channel: pos, key: SessionKey::parse(opened.session.session_key)? };

    // One batch: all or nothing. Prices are filled in by the `pricing.item` modifier.
    let ops = Op::parse_batch(&json!([
        {"op": "add_line", "sku": "ESPRESSO", "qty": 2},
        {"op": "add_line", "sku": "CROISSANT", "qty": 1},
        {"op": "set_data", "path": "customer.name", "value": "Ana"}
    ]))?;
    let session = hub.modify(&tab, &ops, None, &till).await?;
    println!("{}: rev {} · {} lines · total {}", tab.key, session.rev, session.items_count(), session.total_q());

    // A bad batch changes nothing and says why.
    let bad = Op::parse_batch(&json!([{"op": "set_qty", "line_id": "L-NOPE", "qty": 1}]))?;
    let error = hub.modify(&tab, &bad, None, &till).await.unwrap_err();
    println!("refused: {} ({})", error, error.code());

    // Commit with an idempotency key: retrying with the same key returns the same order.
    let key = IdempotencyKey::parse("till-1-0001")?;
    let CommitOutcome::Committed(receipt) = hub.commit(&tab, Some(&key), None, &till).await? else {
        return Err("the tab was committed already".into());
    };
    let again = hub.commit(&tab, Some(&key), None, &till).await?;
    assert!(matches!(again, CommitOutcome::Replayed(_)) && again.receipt().as_ref() == Some(&receipt));
    let order_ref = receipt.order_ref;
    println!("committed {order_ref} ({} quanta)", receipt.total_q);

    // The order follows the channel's status flow.
    let moved = hub.transition_order(&order_ref, "confirmed", Some("kitchen has it"), &till).await?;
    println!("{} → {}", moved.previous_status, moved.order.status);
    for event in hub.order_events(&order_ref).await? {
        println!("  #{} {} by {}", event.seq, event.event_type, event.actor);
    }
    Ok(())
}
