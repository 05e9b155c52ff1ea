//! The event log: the database writes the same events under the same conditions on both
//! backends, and a cursor following it on PostgreSQL never passes an id a transaction in flight
//! may still fill.

mod common;

use std::time::Duration;

use chrono::Utc;
use serde_json::{Map, Value, json};

use omniman_core::directive::{DirectiveStatus, DirectiveUpdate, NewDirective};
use omniman_core::events::{EventCursor, EventLog, EventType, LogEvent, read_next};
use omniman_core::ports::{ChannelStore, DirectiveQueue};
use omniman_core::prelude::*;
use omniman_storage::Database;
use omniman_storage::test_support::TestDb;

fn pos() -> ChannelCode {
    ChannelCode::parse("pos").unwrap()
}

fn at(key: &str) -> SessionRef {
    SessionRef { channel: pos(), key: SessionKey::parse(key).unwrap() }
}

async fn open(hub: &Omniman<Database>, key: &str) {
    let mut request = OpenSession::on(pos());
    request.session_key = Some(SessionKey::parse(key).unwrap());
    hub.open_session(request, &Caller::external("till")).await.unwrap();
}

fn shortage(issue_id: &str) -> Value {
    json!({
        "id": issue_id, "source": "stock", "code": "stock.insufficient", "blocking": false,
        "message": "only 1 left",
        "context": {"line_id": "L1", "sku": "CAKE", "requested_qty": "3", "available_qty": "1", "actions": []}
    })
}

/// A session's life, an order's first step, an abandoned cart and a failed directive; returns
/// the log as written.
async fn scenario(db: &Database) -> Vec<LogEvent> {
    db.upsert_channel(&ChannelSpec::new("pos"), Utc::now()).await.unwrap();
    let hub = Omniman::new(db.clone(), Extensions::default());
    let till = Caller::external("till");

    open(&hub, "tab-1").await;
    let ops =
        Op::parse_batch(&json!([{"op": "add_line", "line_id": "L1", "sku": "CAKE", "qty": 3, "unit_price_q": 500}]))
            .unwrap();
    hub.modify(&at("tab-1"), &ops, None, &till).await.unwrap();
    // A stock check reports a shortage; the same issue written again is no new shortage.
    for _ in 0..2 {
        let written = hub.apply_check_result(&at("tab-1"), 1, "stock", json!({}), vec![shortage("iss-1")]).await;
        assert!(written.unwrap());
    }
    let key = IdempotencyKey::parse("k-1").unwrap();
    let outcome = hub.commit(&at("tab-1"), Some(&key), None, &till).await.unwrap();
    let order_ref = outcome.receipt().expect("committed").order_ref;
    hub.transition_order(&order_ref, "confirmed", None, &Caller::internal("kitchen")).await.unwrap();

    open(&hub, "cart-2").await;
    hub.abandon(&at("cart-2"), None, &till).await.unwrap();

    let mut payload = Map::new();
    payload.insert("channel_code".into(), "pos".into());
    payload.insert("order_ref".into(), order_ref.clone().into());
    db.enqueue(&[NewDirective { topic: "notify".into(), payload, available_at: Utc::now() }]).await.unwrap();
    let claimed = db.claim(None, 1, Utc::now()).await.unwrap().remove(0);
    let failed = DirectiveUpdate {
        id: claimed.id,
        claimed_attempts: claimed.attempts,
        status: DirectiveStatus::Failed,
        attempts: claimed.attempts,
        available_at: Utc::now(),
        last_error: "gateway said no".into(),
        payload_patch: Map::new(),
    };
    assert_eq!(db.finish(&[failed], Utc::now()).await.unwrap(), 1);

    let read = db.read_events(0, 100).await.unwrap();
    assert!(read.in_flight.is_empty() || matches!(db, Database::Postgres(..)));
    let mut cursor = EventCursor::after(0);
    let events = cursor.advance(read);
    assert_eq!(db.last_event_id().await.unwrap(), cursor.position());
    events
}

/// An event without what differs between runs: type, channel, session, whether it names an
/// order, and its data.
type Shape = (EventType, Option<String>, Option<String>, bool, Value);

/// What is compared across backends: everything but ids, order refs and times.
fn shape(events: &[LogEvent]) -> Vec<Shape> {
    events
        .iter()
        .map(|e| {
            let mut data = e.data.clone();
            if let Some(fields) = data.as_object_mut() {
                fields.remove("directive_id");
            }
            (e.kind, e.channel_code.clone(), e.session_key.clone(), e.order_ref.is_some(), data)
        })
        .collect()
}

fn expected() -> Vec<Shape> {
    let pos = || Some("pos".to_owned());
    let tab = || Some("tab-1".to_owned());
    let cart = || Some("cart-2".to_owned());
    vec![
        (EventType::SessionOpened, pos(), tab(), false, json!({"rev": 0})),
        (EventType::SessionModified, pos(), tab(), false, json!({"rev": 1})),
        (
            EventType::StockShortage,
            pos(),
            tab(),
            false,
            json!({"rev": 1, "issues": [{"issue_id": "iss-1", "line_id": "L1", "sku": "CAKE",
                                          "requested_qty": "3", "available_qty": "1"}]}),
        ),
        (EventType::SessionCommitted, pos(), tab(), true, json!({})),
        (EventType::OrderCreated, pos(), tab(), true, json!({"status": "new", "total_q": 1500, "currency": "BRL"})),
        (EventType::OrderStatusChanged, pos(), tab(), true, json!({"from": "new", "to": "confirmed"})),
        (EventType::SessionOpened, pos(), cart(), false, json!({"rev": 0})),
        (EventType::SessionAbandoned, pos(), cart(), false, json!({"rev": 0})),
        (
            EventType::DirectiveFailed,
            pos(),
            None,
            true,
            json!({"topic": "notify", "attempts": 1, "last_error": "gateway said no"}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_writes_the_log() {
    let test_db = TestDb::sqlite().await;
    let events = scenario(&test_db).await;
    assert_eq!(shape(&events), expected());
    assert!(events.windows(2).all(|w| w[0].id + 1 == w[1].id), "SQLite leaves no holes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_writes_the_same_log() {
    let Some(test_db) = TestDb::postgres().await else { return };
    let events = scenario(&test_db).await;
    assert_eq!(shape(&events), expected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_wake_readers_of_the_log() {
    let test_db = TestDb::sqlite().await;
    let mut wakeups = test_db.event_wakeups();
    test_db.upsert_channel(&ChannelSpec::new("pos"), Utc::now()).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), wakeups.wait()).await;
    assert_eq!(woke, Ok(true));
}

/// The session keys of the next `n` events the cursor delivers. The transactions in flight are
/// the whole cluster's, so one of another test's databases may hold a hole a moment longer.
async fn follow(test_db: &TestDb, cursor: &mut EventCursor, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut keys = Vec::new();
    while keys.len() < n && std::time::Instant::now() < deadline {
        let (events, _) = read_next(test_db.db(), cursor, 100).await.unwrap();
        keys.extend(events.into_iter().map(|e| e.session_key.unwrap()));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    keys
}

/// Takes one read of the log after the cursor; the keys it delivers.
async fn step(test_db: &TestDb, cursor: &mut EventCursor) -> Vec<String> {
    let (events, _) = read_next(test_db.db(), cursor, 100).await.unwrap();
    events.into_iter().map(|e| e.session_key.unwrap()).collect()
}

/// A transaction that drew an event id and has not committed holds the cursor before it; the
/// cursor moves on when it commits (delivering it first) or rolls back (skipping its id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cursor_waits_for_transactions_in_flight() {
    use diesel_async::SimpleAsyncConnection;

    let Some(test_db) = TestDb::postgres().await else { return };
    test_db.upsert_channel(&ChannelSpec::new("pos"), Utc::now()).await.unwrap();
    let hub = Omniman::new(test_db.db().clone(), Extensions::default());
    let mut wakeups = test_db.event_wakeups();
    let mut cursor = EventCursor::after(test_db.last_event_id().await.unwrap());

    let open_in_flight = |key: &'static str| {
        let test_db = &test_db;
        async move {
            let mut conn = test_db.get_pg().await.unwrap().unwrap();
            conn.batch_execute(&format!(
                "BEGIN; INSERT INTO sessions (channel_id, session_key) \
                 SELECT id, '{key}' FROM channels WHERE code = 'pos';"
            ))
            .await
            .unwrap();
            conn
        }
    };

    // Committed in the end.
    let mut slow = open_in_flight("slow").await;
    open(&hub, "fast").await;
    assert_eq!(tokio::time::timeout(Duration::from_secs(5), wakeups.wait()).await, Ok(true));
    let read = test_db.read_events(cursor.position(), 100).await.unwrap();
    assert_eq!(read.events.len(), 1, "the slow session's event is not visible yet");
    assert!(step(&test_db, &mut cursor).await.is_empty(), "the cursor waits before the hole");
    slow.batch_execute("COMMIT").await.unwrap();
    let keys = follow(&test_db, &mut cursor, 2).await;
    assert_eq!(keys, ["slow", "fast"], "delivered in id order once committed");

    // Rolled back in the end.
    let mut doomed = open_in_flight("doomed").await;
    open(&hub, "after").await;
    assert!(step(&test_db, &mut cursor).await.is_empty());
    doomed.batch_execute("ROLLBACK").await.unwrap();
    let keys = follow(&test_db, &mut cursor, 1).await;
    assert_eq!(keys, ["after"], "the rolled-back id is skipped");
    assert!(!cursor.is_waiting());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_keeps_the_newest_event() {
    let test_db = TestDb::sqlite().await;
    test_db.upsert_channel(&ChannelSpec::new("pos"), Utc::now()).await.unwrap();
    let hub = Omniman::new(test_db.db().clone(), Extensions::default());
    open(&hub, "a").await;
    open(&hub, "b").await;
    let last = test_db.last_event_id().await.unwrap();
    assert_eq!(test_db.prune_events(Utc::now() + chrono::TimeDelta::hours(1)).await.unwrap(), 1);
    assert_eq!(test_db.last_event_id().await.unwrap(), last);
}

/// A transaction given its id before another draws its event id after it: when the older one
/// commits, PostgreSQL's snapshot lists no transaction in flight (its `xmax` is one past the
/// older id), yet the newer one still holds the hole before the older one's event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_cursor_waits_for_a_newer_transaction_the_snapshot_does_not_list() {
    use diesel_async::SimpleAsyncConnection;

    let Some(test_db) = TestDb::postgres().await else { return };
    test_db.upsert_channel(&ChannelSpec::new("pos"), Utc::now()).await.unwrap();
    let mut cursor = EventCursor::after(test_db.last_event_id().await.unwrap());
    let insert = |key: &str| {
        format!("INSERT INTO sessions (channel_id, session_key) SELECT id, '{key}' FROM channels WHERE code = 'pos';")
    };
    let mut older = test_db.get_pg().await.unwrap().unwrap();
    let mut newer = test_db.get_pg().await.unwrap().unwrap();
    older.batch_execute("BEGIN; SELECT pg_current_xact_id();").await.unwrap();
    newer.batch_execute(&format!("BEGIN; {}", insert("newer"))).await.unwrap();
    older.batch_execute(&format!("{} COMMIT;", insert("older"))).await.unwrap();

    assert!(step(&test_db, &mut cursor).await.is_empty(), "the newer transaction may still write the hole");
    assert!(step(&test_db, &mut cursor).await.is_empty(), "and still may");
    newer.batch_execute("COMMIT").await.unwrap();
    assert_eq!(follow(&test_db, &mut cursor, 2).await, ["newer", "older"]);
}
