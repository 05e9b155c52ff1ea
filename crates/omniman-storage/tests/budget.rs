//! The statement budget (docs/reference.md §12, `omniman_core::ports`), counted with `StatementCounter`
//! (transaction control excluded) on both backends.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use common::t;
use omniman_cache::{CacheConfig, CachedStore};
use omniman_core::directive::{DirectiveStatus, DirectiveUpdate, NewDirective};
use omniman_core::ext::{Extensions, StockBackend};
use omniman_core::money::Qty;
use omniman_core::ops::Op;
use omniman_core::order::{OrderFlow, plan_transition};
use omniman_core::page::PageRequest;
use omniman_core::ports::{
    ChannelStore, DirectiveFilter, DirectiveQueue, IdempotencyStore, OrderFilter, OrderStore, SessionFilter,
    SessionStore, TokenStore,
};
use omniman_core::prelude::{Caller, ManualClock, Omniman, OpenSession};
use omniman_core::testing;
use omniman_storage::test_support::TestDb;
use omniman_storage::{Backend, Database, StatementCounter};

db_tests!(
    session_reads_and_writes,
    commit_and_order_reads,
    list_pages,
    directive_claim,
    service_operations,
    through_the_cache,
    stock_backend
);

/// Runs `fut`, asserts it ran exactly `n` statements, returns its output.
async fn exactly<F: std::future::Future>(n: u64, what: &str, fut: F) -> F::Output {
    let (out, counter) = StatementCounter::measure(fut).await;
    assert_eq!(counter.count(), n, "{what}: {:#?}", counter.statements());
    out
}

/// Runs `fut`, asserts it ran exactly `n` statements in `trips` round trips (transaction
/// control included), returns its output.
async fn round_trips<F: std::future::Future>(n: u64, trips: u64, what: &str, fut: F) -> F::Output {
    let (out, counter) = StatementCounter::measure(fut).await;
    assert_eq!((counter.count(), counter.round_trips()), (n, trips), "{what}: {:#?}", counter.statements());
    out
}

fn hub(db: &Database, clock: &Arc<ManualClock>) -> Omniman<Database> {
    Omniman::new(db.clone(), Extensions::default()).with_clock(clock.clone())
}

fn ops(batch: &Value) -> Vec<Op> {
    Op::parse_batch(batch).unwrap()
}

fn hold(at: DateTime<Utc>) -> NewDirective {
    NewDirective { topic: "stock.hold".into(), payload: Map::new(), available_at: at }
}

async fn setup(db: &Database, config: Value) -> (Omniman<Database>, Arc<ManualClock>, String) {
    let spec = serde_json::from_value(json!({"code": "pos", "config": config})).unwrap();
    db.upsert_channel(&spec, t(0)).await.unwrap();
    let clock = Arc::new(ManualClock::at(t(100)));
    let hub = hub(db, &clock);
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &Caller::external("till")).await.unwrap();
    (hub, clock, opened.session.session_key)
}

async fn session_reads_and_writes(test_db: &TestDb) {
    let db = test_db.db();
    let (_, _, key) = setup(db, json!({})).await;
    let (_, session) = exactly(1, "load_session", db.load_session("pos", &key)).await.unwrap().unwrap();
    exactly(1, "sessions_by_key", db.sessions_by_key(&key)).await.unwrap();

    let mut next = session.clone();
    next.rev += 1;
    next.version += 1;
    assert!(exactly(1, "update_session without directives", db.update_session(&next, 0, &[])).await.unwrap());
    let mut next2 = next.clone();
    next2.version += 1;
    let directives = [hold(t(1)), hold(t(2)), hold(t(3))];
    assert!(exactly(2, "update_session with 3 directives", db.update_session(&next2, 1, &directives)).await.unwrap());
    assert!(!exactly(1, "a refused update_session", db.update_session(&next2, 1, &directives)).await.unwrap());
    exactly(1, "enqueue 3", db.enqueue(&directives)).await.unwrap();
}

async fn commit_and_order_reads(test_db: &TestDb) {
    let db = test_db.db();
    let (hub, clock, key) = setup(db, json!({"post_commit_directives": ["stock.commit", "notify", "audit"]})).await;
    let caller = Caller::external("till");
    let lines: Vec<Value> =
        (0..5).map(|i| json!({"op": "add_line", "sku": format!("S{i}"), "qty": 1, "unit_price_q": 10})).collect();
    hub.modify(&testing::at("pos", &key), &ops(&Value::Array(lines)), None, &caller).await.unwrap();

    // The service's commit: session read + the store's commit transaction. The key is not read
    // first: the commit transaction claims it. PostgreSQL: one statement, its own transaction;
    // SQLite: one per table, 3 directives in one insert (6, and `BEGIN IMMEDIATE` … `COMMIT`).
    let (n, trips) = match db.backend() {
        Backend::Postgres => (2, 2),
        Backend::Sqlite => (7, 9),
    };
    let answer = round_trips(
        n,
        trips,
        "service commit",
        Box::pin(hub.commit(&testing::at("pos", &key), Some(&testing::idem("K1")), None, &caller)),
    )
    .await
    .unwrap();
    let order_ref = answer.order_ref().unwrap().to_owned();
    // A replay: the session read (committed) + the key's record, which holds the answer given.
    let replay = exactly(
        2,
        "replay",
        Box::pin(hub.commit(&testing::at("pos", &key), Some(&testing::idem("K1")), None, &caller)),
    )
    .await
    .unwrap();
    assert_eq!((replay.http_status(), replay.to_json()), (answer.http_status(), answer.to_json()));
    let record = db.idempotency_record("commit:pos", "K1").await.unwrap().unwrap();
    assert_eq!(record.response_body, Some(answer.to_json()), "the record the core would write");

    let (channel, order) = exactly(1, "order_by_ref", db.order_by_ref(&order_ref)).await.unwrap().unwrap();
    assert_eq!(order.items.len(), 5);
    exactly(1, "order_for_session", db.order_for_session(channel.id, &key)).await.unwrap();
    exactly(1, "list_events", db.list_events(order.id)).await.unwrap();

    clock.advance(TimeDelta::seconds(5));
    let plan = plan_transition(&order, &OrderFlow::for_channel(&channel), "confirmed", "ana", None, t(200)).unwrap();
    assert!(exactly(2, "transition", db.transition(&plan)).await.unwrap());
    assert!(!exactly(1, "a refused transition", db.transition(&plan)).await.unwrap());
    exactly(3, "service transition", hub.transition_order(&order_ref, "processing", None, &caller)).await.unwrap();
    let event = omniman_core::order::NewEvent {
        event_type: "note".into(),
        actor: "ana".into(),
        payload: Map::new(),
        created_at: t(300),
    };
    assert_eq!(exactly(1, "append_event", db.append_event(order.id, &event)).await.unwrap().seq, 3);
}

async fn list_pages(test_db: &TestDb) {
    let db = test_db.db();
    let (hub, _, key) = setup(db, json!({"post_commit_directives": ["a"]})).await;
    let caller = Caller::external("till");
    hub.modify(
        &testing::at("pos", &key),
        &ops(&json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}])),
        None,
        &caller,
    )
    .await
    .unwrap();
    hub.commit(&testing::at("pos", &key), None, None, &caller).await.unwrap();
    for _ in 0..4 {
        hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();
    }
    let page = exactly(1, "list_sessions", db.list_sessions(&SessionFilter::default(), &PageRequest::new(None, 2)))
        .await
        .unwrap();
    let filter = SessionFilter {
        channel_ids: Some(vec![1, 2]),
        state: Some(omniman_core::session::SessionState::Open),
        handle_type: Some("t".into()),
        handle_ref: Some("r".into()),
    };
    exactly(1, "list_sessions, every filter and a cursor", db.list_sessions(&filter, &PageRequest::new(page.next, 2)))
        .await
        .unwrap();
    let orders =
        exactly(1, "list_orders", db.list_orders(&OrderFilter::default(), &PageRequest::default())).await.unwrap();
    assert_eq!(orders.items[0].items_count, 1);
    let filter = OrderFilter {
        channel_ids: Some(vec![1]),
        status: Some("new".into()),
        handle_type: Some("t".into()),
        handle_ref: Some("r".into()),
        external_ref: Some("x".into()),
        created_after: Some(t(0)),
        created_before: Some(t(1_000_000)),
    };
    exactly(1, "list_orders, every filter", db.list_orders(&filter, &PageRequest::default())).await.unwrap();
    exactly(1, "orders_after", db.orders_after(0, 10)).await.unwrap();
    exactly(1, "max_order_id", db.max_order_id()).await.unwrap();
    exactly(1, "list_directives", db.list_directives(&DirectiveFilter::default(), &PageRequest::default()))
        .await
        .unwrap();
    exactly(1, "list_channels", db.list_channels()).await.unwrap();
    exactly(1, "directive_counts", db.directive_counts()).await.unwrap();
}

async fn directive_claim(test_db: &TestDb) {
    let db = test_db.db();
    let batch: Vec<NewDirective> = (0..20).map(|i| hold(t(i))).collect();
    exactly(1, "enqueue 20", db.enqueue(&batch)).await.unwrap();
    let claimed = exactly(1, "claim", db.claim(None, 5, t(100))).await.unwrap();
    assert_eq!(claimed.len(), 5);
    let topics = vec!["stock.hold".to_owned(), "other".to_owned()];
    let claimed = exactly(1, "claim with topics", db.claim(Some(&topics), 50, t(100))).await.unwrap();
    assert_eq!(claimed.len(), 15);

    // Recording a batch of outcomes: one statement on PostgreSQL; on SQLite (in-process, where
    // a statement costs microseconds) one update per directive plus a payload read for each
    // patch, the update skipped once the directive is no longer running.
    let mut patch = Map::new();
    patch.insert("hold_id".into(), json!("H-1"));
    let updates: Vec<DirectiveUpdate> = claimed
        .iter()
        .enumerate()
        .map(|(i, d)| DirectiveUpdate {
            id: d.id,
            claimed_attempts: d.attempts,
            status: if i % 2 == 0 { DirectiveStatus::Done } else { DirectiveStatus::Queued },
            attempts: d.attempts,
            available_at: t(200),
            last_error: if i % 2 == 0 { String::new() } else { format!("try {i} failed") },
            payload_patch: if i == 0 { patch.clone() } else { Map::new() },
        })
        .collect();
    let (first, again) = match db.backend() {
        Backend::Postgres => (1, 1),
        Backend::Sqlite => (16, 15),
    };
    assert_eq!(exactly(first, "finish 15", db.finish(&updates, t(150))).await.unwrap(), 15);
    assert_eq!(exactly(again, "finish again", db.finish(&updates, t(151))).await.unwrap(), 0, "no longer running");
    let first = db.directive(claimed[0].id).await.unwrap().unwrap();
    assert_eq!((first.status, first.payload.get("hold_id")), (DirectiveStatus::Done, Some(&json!("H-1"))));
    assert_eq!(first.payload.len(), claimed[0].payload.len() + 1, "merged, nothing dropped");
    let second = db.directive(claimed[1].id).await.unwrap().unwrap();
    assert_eq!((second.status, second.last_error.as_str()), (DirectiveStatus::Queued, "try 1 failed"));
    assert_eq!((second.available_at, second.payload), (t(200), claimed[1].payload.clone()));
}

async fn service_operations(test_db: &TestDb) {
    let db = test_db.db();
    let (hub, _, key) = setup(db, json!({"required_checks_on_commit": ["stock"]})).await;
    let caller = Caller::external("till");
    exactly(1, "get_session", hub.get_session(Some(&testing::code("pos")), &testing::key(&key))).await.unwrap();
    // Read, conditional update, directive insert.
    let batch = ops(&json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}]));
    exactly(3, "modify with a check directive", hub.modify(&testing::at("pos", &key), &batch, None, &caller))
        .await
        .unwrap();
    exactly(2, "abandon", hub.abandon(&testing::at("pos", &key), None, &caller)).await.unwrap();
}

/// What a request costs with `omniman-cache` in front, as `omniman serve` runs: tokens, channels
/// and the session a write starts from come from memory.
async fn through_the_cache(test_db: &TestDb) {
    let db = test_db.db();
    db.upsert_channel(&serde_json::from_value(json!({"code": "pos"})).unwrap(), t(0)).await.unwrap();
    let store = CachedStore::new(db.clone(), CacheConfig::default());
    let clock = Arc::new(ManualClock::at(t(100)));
    let hub = Omniman::new(store.clone(), Extensions::default()).with_clock(clock);
    let caller = Caller::external("till");
    let open = || hub.open_session(OpenSession::on(testing::code("pos")), &caller);
    exactly(2, "the first open: the channel, then the insert", open()).await.unwrap();
    let opened = exactly(1, "an open: the insert", open()).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    let batch = ops(&json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}]));
    exactly(1, "a modify: the conditional update", hub.modify(&at, &batch, None, &caller)).await.unwrap();
    exactly(1, "a GET: always read from the database", hub.get_session(Some(&at.channel), &at.key)).await.unwrap();
    let key = testing::idem("K1");
    let commit = hub.commit(&at, Some(&key), None, &caller);
    // PostgreSQL: one statement, which is its own transaction; SQLite: one statement per table.
    let (n, trips) = match db.backend() {
        Backend::Postgres => (1, 1),
        Backend::Sqlite => (5, 7),
    };
    round_trips(n, trips, "a commit: the transaction", Box::pin(commit)).await.unwrap();

    let token = omniman_core::ports::ApiToken {
        id: 0,
        name: "till".into(),
        token_hash: "h".repeat(64),
        role: omniman_core::ports::Role::Client,
        channels: None,
        created_at: t(0),
        revoked_at: None,
        rate_limits: None,
    };
    assert!(db.create_token(&token).await.unwrap());
    exactly(1, "a token, the first time", store.token_by_hash(&token.token_hash)).await.unwrap().unwrap();
    exactly(0, "a token, from memory", store.token_by_hash(&token.token_hash)).await.unwrap().unwrap();
}

async fn stock_backend(test_db: &TestDb) {
    let db = test_db.db();
    let now = Utc::now();
    exactly(1, "set_stock_level", db.set_stock_level("COFFEE", Qty::ONE, now)).await.unwrap();
    exactly(1, "stock_levels", db.stock_levels(now)).await.unwrap();
    exactly(1, "check_availability", db.check_availability("COFFEE", Qty::ONE, None)).await.unwrap();
    let expires = Some(now + TimeDelta::minutes(15));
    let held = exactly(3, "create_hold", db.create_hold("COFFEE", Qty::ONE, expires, Some("S1"))).await.unwrap();
    let refused = exactly(2, "a refused create_hold", db.create_hold("COFFEE", Qty::ONE, None, None)).await.unwrap();
    assert!(held.success && !refused.success);
    exactly(1, "create_hold of an unknown SKU", db.create_hold("NONE", Qty::ONE, None, None)).await.unwrap();
    let hold_id = held.hold_id.unwrap();
    assert!(exactly(2, "fulfill_hold", db.fulfill_hold(&hold_id, Some("ORD-1"))).await.unwrap());
    assert!(exactly(2, "fulfill_hold again", db.fulfill_hold(&hold_id, None)).await.unwrap());
    assert!(!exactly(1, "release_hold", db.release_hold(&hold_id)).await.unwrap());
    exactly(1, "release_holds_for_reference", db.release_holds_for_reference("S1")).await.unwrap();
}
