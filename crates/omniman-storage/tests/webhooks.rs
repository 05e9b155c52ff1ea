//! Webhook subscriptions on the databases: a subscription starts at the event log's end, and
//! the dispatcher's compare-and-set lets one of two concurrent dispatchers win.

mod common;

use chrono::Utc;
use omniman_core::events::{EventCursor, EventLog, EventType};
use omniman_core::ports::{ChannelStore, WebhookStore};
use omniman_core::prelude::*;
use omniman_core::webhook::{NewWebhook, plan_deliveries};
use omniman_storage::Database;
use omniman_storage::test_support::TestDb;

async fn open(hub: &Omniman<Database>, key: &str) {
    let mut request = OpenSession::on(ChannelCode::parse("pos").unwrap());
    request.session_key = Some(SessionKey::parse(key).unwrap());
    hub.open_session(request, &Caller::external("till")).await.unwrap();
}

fn subscription() -> NewWebhook {
    NewWebhook {
        url: "https://example.com/h".into(),
        events: vec![EventType::SessionOpened],
        channels: None,
        active: None,
    }
}

async fn subscriptions_start_at_the_end_of_the_log_and_dispatch_once(db: &Database) {
    db.upsert_channel(&ChannelSpec::new("pos"), Utc::now()).await.unwrap();
    let hub = Omniman::new(db.clone(), Extensions::default());
    open(&hub, "before").await;
    let end = db.last_event_id().await.unwrap();
    assert!(end > 0);
    let hook = hub.create_webhook(subscription(), "k".into()).await.unwrap();
    assert_eq!(hook.start_after, end, "the log's end when it was created");
    open(&hub, "after").await;

    let from = db.dispatch_position().await.unwrap();
    let mut cursor = EventCursor::after(from);
    let events = cursor.advance(db.read_events(from, 100).await.unwrap());
    let planned = plan_deliveries(&events, &db.active_webhooks().await.unwrap(), Utc::now());
    let keys: Vec<_> = planned.iter().map(|d| d.directive.payload["event"]["session_key"].clone()).collect();
    assert_eq!(keys, [serde_json::json!("after")], "history is not delivered");

    // Two dispatchers that read the same position: one moves it, the other writes nothing.
    let (a, b) = tokio::join!(
        db.advance_dispatch(from, cursor.position(), &planned),
        db.advance_dispatch(from, cursor.position(), &planned)
    );
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|won| **won).count(), 1);
    assert_eq!(db.dispatch_position().await.unwrap(), cursor.position());
    let deliveries = db.list_deliveries(hook.id, &omniman_core::page::PageRequest::default()).await.unwrap();
    assert_eq!(deliveries.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let test_db = TestDb::sqlite().await;
    subscriptions_start_at_the_end_of_the_log_and_dispatch_once(&test_db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(test_db) = TestDb::postgres().await else { return };
    subscriptions_start_at_the_end_of_the_log_and_dispatch_once(&test_db).await;
}
