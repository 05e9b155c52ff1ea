//! The port contract: one set of tests, written against `omniman_core::ports::Store`, run on the
//! in-memory reference store, on SQLite, on PostgreSQL and on the cache (`omniman-cache`) in front
//! of PostgreSQL. Whatever the reference store does,
//! the database backends must do too.

mod common;

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

use common::t;
use omniman_core::channel::{Channel, ChannelSpec};
use omniman_core::commit::{CommitOutcome, CommitSettings, plan_commit};
use omniman_core::context::{Caller, Ctx};
use omniman_core::directive::{
    Directive, DirectiveStatus, DirectiveUpdate, NewDirective, RetryPolicy, decide_reap, renew_claim,
};
use omniman_core::ext::Extensions;
use omniman_core::idempotency::{IdempotencyRecord, IdempotencyStatus};
use omniman_core::ids::RandomIds;
use omniman_core::money::Qty;
use omniman_core::ops::Op;
use omniman_core::order::{NewEvent, OrderFlow, plan_transition};
use omniman_core::page::{Page, PageRequest};
use omniman_core::ports::{
    ApiToken, CommitWrite, DirectiveFilter, InsertSession, OrderFilter, Role, SessionFilter, Store,
};
use omniman_core::prelude::{ManualClock, Omniman, OpenSession};
use omniman_core::session::{Item, Session, SessionState};
use omniman_core::testing;
use omniman_core::webhook::{NewDelivery, Webhook};

/// Generates, for each test function, `mod <name> { memory(), sqlite(), postgres() }`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(omniman_core::memory::InMemoryStore::new()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let test_db = omniman_storage::test_support::TestDb::sqlite().await;
                super::$name(test_db.db().clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(test_db) = omniman_storage::test_support::TestDb::postgres().await else { return };
                super::$name(test_db.db().clone()).await;
            }

            /// The cache in front of PostgreSQL keeps every promise of the ports.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cached_postgres() {
                let Some(test_db) = omniman_storage::test_support::TestDb::postgres().await else { return };
                let config = omniman_cache::CacheConfig::default();
                super::$name(omniman_cache::CachedStore::new(test_db.db().clone(), config)).await;
            }
        }
    )*};
}

contract!(
    channels_upsert_list_and_keep_config,
    sessions_insert_load_and_unique_rules,
    session_update_is_compare_and_set,
    sessions_list_pages_and_filters,
    idle_sessions_are_abandoned,
    commit_through_the_service,
    commit_refusals_write_nothing,
    a_commit_of_many_lines_and_directives,
    transitions_and_events,
    orders_list_stream_and_max_id,
    directive_queue,
    directive_finish_and_requeue,
    directive_claims_are_renewed,
    idempotency_records,
    api_tokens,
    webhooks_and_their_deliveries,
    webhook_dispatch_is_compare_and_set,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn obj(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn spec(value: Value) -> ChannelSpec {
    serde_json::from_value(value).expect("channel spec")
}

async fn channel<S: Store>(store: &S, code: &str, config: Value) -> Channel {
    store.upsert_channel(&spec(json!({"code": code, "config": config})), t(0)).await.unwrap()
}

fn item(line_id: &str, sku: &str, units: i64, price: i64) -> Item {
    Item {
        line_id: line_id.into(),
        sku: sku.into(),
        name: format!("{sku} name"),
        qty: Qty::from_units(units).unwrap(),
        unit_price_q: Some(price),
        line_total_q: Some(units * price),
        meta: obj(json!({"note": sku})),
    }
}

async fn insert<S: Store>(store: &S, session: &Session) -> Session {
    match store.insert_session(session).await.unwrap() {
        InsertSession::Inserted(s) => s,
        other => panic!("insert refused: {other:?}"),
    }
}

fn directive(topic: &str, at: DateTime<Utc>, payload: Value) -> NewDirective {
    NewDirective { topic: topic.into(), payload: obj(payload), available_at: at }
}

/// Every row of a keyset list, page by page forward, then back from the last page.
async fn walk<T: Clone + PartialEq + std::fmt::Debug, F, Fut>(size: usize, fetch: F) -> Vec<T>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Page<T>>,
{
    let mut pages: Vec<Page<T>> = vec![fetch(PageRequest::new(None, size)).await];
    while let Some(next) = pages.last().unwrap().next {
        pages.push(fetch(PageRequest::new(Some(next), size)).await);
        assert!(pages.len() < 100, "paging does not end");
    }
    assert!(pages[0].previous.is_none());
    // Back from the last page: each previous page is the one we saw before it.
    for i in (1..pages.len()).rev() {
        let previous = pages[i].previous.expect("a page after the first has a previous cursor");
        let back = fetch(PageRequest::new(Some(previous), size)).await;
        assert_eq!(back.items, pages[i - 1].items, "paging back to page {}", i - 1);
    }
    pages.into_iter().flat_map(|p| p.items).collect()
}

fn hub<S: Store>(store: S) -> (Omniman<S>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(t(1000)));
    let hub =
        Omniman::new(store, Extensions::default()).with_clock(clock.clone()).with_ids(Box::new(RandomIds::seeded(7)));
    (hub, clock)
}

fn ops(batch: &Value) -> Vec<Op> {
    Op::parse_batch(batch).expect("ops")
}

fn caller() -> Caller {
    Caller::external("till-1")
}

// ---------------------------------------------------------------------------------------------
// Channels

async fn channels_upsert_list_and_keep_config<S: Store>(store: S) {
    let web = store
        .upsert_channel(
            &spec(json!({
                "code": "web", "name": "Loja", "display_order": 5, "pricing_policy": "external",
                "config": {"post_commit_directives": ["stock.commit"], "colour": "blue", "nested": {"a": [1, null]}}
            })),
            t(0),
        )
        .await
        .unwrap();
    let pos = store.upsert_channel(&spec(json!({"code": "pos", "display_order": 1})), t(1)).await.unwrap();
    assert_ne!(web.id, pos.id);
    assert_eq!(web.created_at, t(0));
    assert_eq!(web.config.post_commit_directives, vec!["stock.commit".to_owned()]);
    assert_eq!(web.config.raw()["colour"], json!("blue"));
    assert_eq!(web.config.raw()["nested"], json!({"a": [1, null]}));
    assert_eq!(store.channel_by_code("web").await.unwrap(), Some(web.clone()));
    assert_eq!(store.channel_by_code("nope").await.unwrap(), None);
    let codes = |list: Vec<Channel>| list.into_iter().map(|c| c.code).collect::<Vec<_>>();
    assert_eq!(codes(store.list_channels().await.unwrap()), ["pos", "web"]);

    // Upserting an existing code keeps its id and creation time and replaces the rest.
    let updated = store
        .upsert_channel(
            &spec(
                json!({"code": "web", "name": "Web", "display_order": 0, "is_active": false, "edit_policy": "locked"}),
            ),
            t(50),
        )
        .await
        .unwrap();
    assert_eq!((updated.id, updated.created_at), (web.id, t(0)));
    assert_eq!((updated.name.as_str(), updated.display_order, updated.is_active), ("Web", 0, false));
    assert_eq!(updated.edit_policy.as_str(), "locked");
    assert_eq!(updated.pricing_policy.as_str(), "internal");
    assert!(updated.config.raw().is_empty());
    assert_eq!(store.channel_by_code("web").await.unwrap(), Some(updated));
    assert_eq!(codes(store.list_channels().await.unwrap()), ["web", "pos"], "inactive channels are listed too");

    // Ties on display_order fall back to the id.
    let a = channel(&store, "a", json!({})).await;
    let b = channel(&store, "b", json!({})).await;
    let list = store.list_channels().await.unwrap();
    let zeros: Vec<i64> = list.iter().filter(|c| c.display_order == 0).map(|c| c.id).collect();
    let mut sorted = zeros.clone();
    sorted.sort_unstable();
    assert_eq!(zeros, sorted);
    assert!(zeros.contains(&a.id) && zeros.contains(&b.id));
}

// ---------------------------------------------------------------------------------------------
// Sessions

async fn sessions_insert_load_and_unique_rules<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({})).await;
    let web = channel(&store, "web", json!({})).await;
    let table5 = || (Some("table".to_owned()), Some("Mesa #5 & ção".to_owned()));

    let mut new = Session::open(&pos, "S1".into(), table5().0, table5().1, t(10));
    new.items = vec![item("L-1", "CAFE", 2, 450)];
    new.data.insert("customer".into(), json!({"name": "Ana", "tags": [1, 2.5, null]}));
    new.pricing.insert("total_q".into(), json!(900));
    new.pricing_trace.push(json!({"line_id": "L-1"}));
    let s1 = insert(&store, &new).await;
    assert!(s1.id > 0);
    assert_eq!(s1, Session { id: s1.id, ..new.clone() });
    assert_eq!(store.load_session("pos", "S1").await.unwrap(), Some((pos.clone(), s1.clone())));
    assert_eq!(store.load_session("web", "S1").await.unwrap(), None);
    assert_eq!(store.load_session("nope", "S1").await.unwrap(), None);

    // (channel, key) is unique; the key is reported before the handle.
    let same_key = Session::open(&pos, "S1".into(), None, None, t(11));
    assert_eq!(store.insert_session(&same_key).await.unwrap(), InsertSession::KeyTaken);
    let same_both = Session::open(&pos, "S1".into(), table5().0, table5().1, t(11));
    assert_eq!(store.insert_session(&same_both).await.unwrap(), InsertSession::KeyTaken);
    // One open session per handle.
    let same_handle = Session::open(&pos, "S2".into(), table5().0, table5().1, t(11));
    assert_eq!(store.insert_session(&same_handle).await.unwrap(), InsertSession::HandleTaken);
    // The same key and handle on another channel are fine.
    let other = insert(&store, &Session::open(&web, "S1".into(), table5().0, table5().1, t(12))).await;
    // A handle with a missing half is never deduplicated.
    insert(&store, &Session::open(&pos, "S3".into(), Some("table".into()), None, t(13))).await;
    insert(&store, &Session::open(&pos, "S4".into(), Some("table".into()), None, t(13))).await;

    let by_key = store.sessions_by_key("S1").await.unwrap();
    assert_eq!(by_key.len(), 2);
    assert!(by_key.contains(&s1) && by_key.contains(&other));
    assert_eq!(store.sessions_by_key("none").await.unwrap(), vec![]);

    assert_eq!(store.open_session_by_handle(pos.id, "table", "Mesa #5 & ção").await.unwrap(), Some(s1.clone()));
    assert_eq!(store.open_session_by_handle(pos.id, "table", "6").await.unwrap(), None);

    // Once the holder is closed, the handle is free again.
    let mut closed = s1.clone();
    closed.state = SessionState::Committed;
    closed.version += 1;
    closed.updated_at = t(20);
    assert!(store.update_session(&closed, s1.version, &[]).await.unwrap());
    assert_eq!(store.open_session_by_handle(pos.id, "table", "Mesa #5 & ção").await.unwrap(), None);
    let reopened = insert(&store, &same_handle).await;
    assert_eq!(store.open_session_by_handle(pos.id, "table", "Mesa #5 & ção").await.unwrap(), Some(reopened));
}

async fn session_update_is_compare_and_set<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({})).await;
    let s = insert(&store, &Session::open(&pos, "S1".into(), None, None, t(10))).await;

    let mut next = s.clone();
    next.rev = 1;
    next.version = 1;
    next.items = vec![item("L-1", "A", 1, 100), item("L-2", "B", 3, 250)];
    next.data.insert("notes".into(), json!("sem cebola"));
    next.updated_at = t(20);
    let hold = directive("stock.hold", t(20), json!({"session_key": "S1", "rev": 1}));
    assert!(store.update_session(&next, 0, std::slice::from_ref(&hold)).await.unwrap());
    assert_eq!(store.load_session("pos", "S1").await.unwrap().unwrap().1, next);
    let queued = store.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap().items;
    assert_eq!(queued.len(), 1);
    assert_eq!((queued[0].topic.as_str(), queued[0].status), ("stock.hold", DirectiveStatus::Queued));
    assert_eq!(queued[0].payload, hold.payload);
    assert_eq!((queued[0].created_at, queued[0].updated_at, queued[0].available_at), (t(20), t(20), t(20)));

    // A stale version writes nothing, directives included.
    let mut stale = next.clone();
    stale.rev = 2;
    stale.version = 2;
    assert!(!store.update_session(&stale, 0, std::slice::from_ref(&hold)).await.unwrap());
    assert_eq!(store.load_session("pos", "S1").await.unwrap().unwrap().1, next);
    assert_eq!(
        store.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap().items.len(),
        1
    );

    // A session that left `open` accepts no more writes.
    let mut abandoned = next.clone();
    abandoned.state = SessionState::Abandoned;
    abandoned.version = 2;
    assert!(store.update_session(&abandoned, 1, &[]).await.unwrap());
    let mut again = abandoned.clone();
    again.version = 3;
    assert!(!store.update_session(&again, 2, &[]).await.unwrap());
    assert_eq!(store.load_session("pos", "S1").await.unwrap().unwrap().1, abandoned);

    // An unknown id is no write either.
    let mut ghost = next.clone();
    ghost.id = 999_999;
    assert!(!store.update_session(&ghost, 1, &[]).await.unwrap());
}

async fn sessions_list_pages_and_filters<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({})).await;
    let web = channel(&store, "web", json!({})).await;
    let mut all = Vec::new();
    for i in 0..9_i64 {
        let ch = if i % 3 == 0 { &web } else { &pos };
        // Pairs share an opening time: ties are broken by id.
        let handle = (i % 2 == 0).then(|| ("table".to_owned(), format!("{i}")));
        let s = Session::open(ch, format!("S{i}"), handle.clone().map(|h| h.0), handle.map(|h| h.1), t(100 + i / 2));
        all.push(insert(&store, &s).await);
    }
    let mut expected = all.clone();
    expected.sort_by_key(|s| std::cmp::Reverse((s.opened_at, s.id)));

    let filter = SessionFilter::default();
    let listed = walk(4, |page| {
        let (store, filter) = (&store, &filter);
        async move { store.list_sessions(filter, &page).await.unwrap() }
    })
    .await;
    assert_eq!(listed, expected);
    let one_page = store.list_sessions(&filter, &PageRequest::new(None, 100)).await.unwrap();
    assert_eq!((one_page.items, one_page.next, one_page.previous), (expected.clone(), None, None));

    let only_web = SessionFilter { channel_ids: Some(vec![web.id]), ..SessionFilter::default() };
    let listed = walk(2, |page| {
        let (store, filter) = (&store, &only_web);
        async move { store.list_sessions(filter, &page).await.unwrap() }
    })
    .await;
    let want: Vec<Session> = expected.iter().filter(|s| s.channel_id == web.id).cloned().collect();
    assert_eq!(listed, want);

    let by_handle =
        SessionFilter { handle_type: Some("table".into()), handle_ref: Some("4".into()), ..SessionFilter::default() };
    let found = store.list_sessions(&by_handle, &PageRequest::default()).await.unwrap().items;
    assert_eq!(found.iter().map(|s| s.session_key.as_str()).collect::<Vec<_>>(), ["S4"]);

    let mut committed = all[1].clone();
    committed.state = SessionState::Committed;
    committed.version += 1;
    assert!(store.update_session(&committed, 0, &[]).await.unwrap());
    let committed_only = SessionFilter { state: Some(SessionState::Committed), ..SessionFilter::default() };
    let found = store.list_sessions(&committed_only, &PageRequest::default()).await.unwrap().items;
    assert_eq!(found, vec![committed]);
    let none = SessionFilter { channel_ids: Some(vec![]), ..SessionFilter::default() };
    assert!(store.list_sessions(&none, &PageRequest::default()).await.unwrap().items.is_empty());
}

async fn idle_sessions_are_abandoned<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({})).await;
    let old = insert(&store, &Session::open(&pos, "OLD".into(), None, None, t(0))).await;
    let fresh = insert(&store, &Session::open(&pos, "FRESH".into(), None, None, t(50))).await;
    let mut done = insert(&store, &Session::open(&pos, "DONE".into(), None, None, t(0))).await;
    done.state = SessionState::Committed;
    done.version = 1;
    assert!(store.update_session(&done, 0, &[]).await.unwrap());

    assert_eq!(store.abandon_idle_sessions(t(10), t(100)).await.unwrap(), 1);
    let old = store.load_session("pos", &old.session_key).await.unwrap().unwrap().1;
    assert_eq!((old.state, old.version, old.updated_at), (SessionState::Abandoned, 1, t(100)));
    assert_eq!(store.load_session("pos", "FRESH").await.unwrap().unwrap().1, fresh);
    assert_eq!(store.load_session("pos", "DONE").await.unwrap().unwrap().1.state, SessionState::Committed);
    assert_eq!(store.abandon_idle_sessions(t(10), t(200)).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Commit and orders

async fn commit_through_the_service<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({"post_commit_directives": ["stock.commit", "notify"]})).await;
    let (hub, clock) = hub(store);
    let opened = hub
        .open_session(
            OpenSession {
                handle_type: Some(omniman_core::input::HandleType::parse("table").unwrap()),
                handle_ref: Some(omniman_core::input::HandleRef::parse("7").unwrap()),
                ..OpenSession::on(testing::code("pos"))
            },
            &caller(),
        )
        .await
        .unwrap();
    assert!(opened.created);
    let key = opened.session.session_key.clone();
    clock.advance(TimeDelta::seconds(1));
    let batch = ops(&json!([
        {"op": "add_line", "sku": "CAFE", "qty": "1.5", "unit_price_q": 333},
        {"op": "add_line", "sku": "PAO", "qty": 2, "unit_price_q": 100, "name": "Pão"},
        {"op": "set_data", "path": "customer.name", "value": "Ana"}
    ]));
    let modified = hub.modify(&testing::at("pos", &key), &batch, None, &caller()).await.unwrap();
    assert_eq!((modified.rev, modified.version, modified.total_q()), (1, 1, 700), "{:#?}", modified.items);
    assert_eq!(hub.get_session(Some(&testing::code("pos")), &testing::key(&key)).await.unwrap(), modified);
    // The same handle again: the open session, not a new one.
    let again = hub
        .open_session(
            OpenSession {
                handle_type: Some(omniman_core::input::HandleType::parse("table").unwrap()),
                handle_ref: Some(omniman_core::input::HandleRef::parse("7").unwrap()),
                ..OpenSession::on(testing::code("pos"))
            },
            &caller(),
        )
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!(again.session.id, opened.session.id);

    clock.advance(TimeDelta::seconds(1));
    let answer = hub.commit(&testing::at("pos", &key), Some(&testing::idem("K-1")), None, &caller()).await.unwrap();
    assert_eq!(answer.http_status(), 201);
    assert_eq!(answer.to_json()["status"], json!("committed"));
    assert_eq!((answer.to_json()["total_q"].clone(), answer.to_json()["items_count"].clone()), (json!(700), json!(2)));
    let order_ref = answer.order_ref().unwrap().to_owned();

    let store = hub.store();
    let (channel, order) = store.order_by_ref(&order_ref).await.unwrap().unwrap();
    assert_eq!(channel, pos);
    assert_eq!(answer.to_json()["order_id"], json!(order.id));
    assert_eq!((order.status.as_str(), order.total_q, order.currency.as_str()), ("new", 700, "BRL"));
    assert_eq!((order.channel_code.as_str(), order.session_key.as_str()), ("pos", key.as_str()));
    assert_eq!((order.handle_type.as_deref(), order.handle_ref.as_deref()), (Some("table"), Some("7")));
    assert_eq!(order.created_at, t(1002));
    assert_eq!(order.items.len(), 2);
    assert_eq!(
        (order.items[0].sku.as_str(), order.items[0].qty.millis(), order.items[0].line_total_q),
        ("CAFE", 1500, 500)
    );
    assert_eq!((order.items[1].name.as_str(), order.items[1].unit_price_q), ("Pão", 100));
    assert_eq!(order.snapshot["rev"], json!(1));
    assert_eq!(order.data["customer"], json!({"name": "Ana"}));
    assert_eq!(store.order_for_session(pos.id, &key).await.unwrap(), Some(order.clone()));
    assert_eq!(store.order_by_ref("ORD-NOPE").await.unwrap(), None);

    let events = store.list_events(order.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!((events[0].seq, events[0].event_type.as_str(), events[0].actor.as_str()), (0, "created", "till-1"));
    assert_eq!(events[0].payload, obj(json!({"from_session": key})));

    let session = hub.get_session(Some(&testing::code("pos")), &testing::key(&key)).await.unwrap();
    assert_eq!(
        (session.state, session.version, session.commit_token.as_deref()),
        (SessionState::Committed, 2, Some("K-1"))
    );
    assert_eq!(session.committed_at, Some(t(1002)));

    let record = store.idempotency_record("commit:pos", "K-1").await.unwrap().unwrap();
    assert_eq!((record.status, record.response_code), (IdempotencyStatus::Done, Some(201)));
    assert_eq!(record.response_body.as_ref(), Some(&answer.to_json()));
    assert_eq!(record.session_key.as_deref(), Some(key.as_str()));

    let filter = DirectiveFilter { topic: Some("stock.commit".into()), ..DirectiveFilter::default() };
    let directives = store.list_directives(&filter, &PageRequest::default()).await.unwrap().items;
    assert_eq!(directives.len(), 1);
    assert_eq!(directives[0].payload["order_ref"], json!(order_ref));
    assert_eq!(
        store.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap().items.len(),
        2
    );

    // A replay answers the same, and writes nothing.
    let replay = hub.commit(&testing::at("pos", &key), Some(&testing::idem("K-1")), None, &caller()).await.unwrap();
    assert!(matches!(replay, CommitOutcome::Replayed(_)), "{replay:?}");
    assert_eq!((replay.http_status(), replay.to_json()), (answer.http_status(), answer.to_json()));
    // Byte for byte, as the API writes it: PostgreSQL's `jsonb` keeps keys in its own order.
    let bytes = |outcome: &CommitOutcome| serde_json::to_vec(&outcome.to_json()).unwrap();
    assert_eq!(String::from_utf8(bytes(&replay)).unwrap(), String::from_utf8(bytes(&answer)).unwrap());
    // Another key on the committed session: the same order, 200.
    let other = hub.commit(&testing::at("pos", &key), Some(&testing::idem("K-2")), None, &caller()).await.unwrap();
    assert_eq!((other.http_status(), other.order_ref()), (200, Some(order_ref.as_str())));
    assert_eq!(other.to_json()["status"], json!("already_committed"));
    assert_eq!(store.max_order_id().await.unwrap(), order.id);
}

/// 7,300 lines (9 values each: 65,700, past PostgreSQL's 65,535 bind parameters and SQLite's
/// 32,766) and 8,300 directives (8 each) are written, in as many statements as that takes.
async fn a_commit_of_many_lines_and_directives<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({})).await;
    let mut open = Session::open(&pos, "BIG".into(), None, None, t(0));
    open.items = (0..7_300).map(|i| item(&format!("L-{i}"), &format!("SKU-{i}"), 1, 10)).collect();
    let s = insert(&store, &open).await;
    let ctx = Ctx::new(Caller::external("till"), t(10));
    let mut plan = plan_commit(
        &s,
        &pos,
        "K-BIG",
        None,
        &Extensions::default(),
        &CommitSettings::default(),
        &ctx,
        &mut RandomIds::seeded(7),
    )
    .unwrap();
    plan.directives = (0..8_300).map(|i| directive("stock.commit", t(10), json!({"n": i}))).collect();
    let CommitWrite::Committed(order) = store.commit(&plan).await.unwrap() else { panic!("commit refused") };
    let (_, stored) = store.order_by_ref(&order.reference).await.unwrap().unwrap();
    assert_eq!((stored.items.len(), stored.total_q), (7_300, 73_000));
    assert_eq!((stored.items[7_299].line_id.as_str(), stored.items[7_299].sku.as_str()), ("L-7299", "SKU-7299"));
    let directives = walk(100, |page| {
        let store = &store;
        async move { store.list_directives(&DirectiveFilter::default(), &page).await.unwrap() }
    })
    .await;
    assert_eq!(directives.len(), 8_300);
}

async fn commit_refusals_write_nothing<S: Store>(store: S) {
    let pos = channel(&store, "pos", json!({"post_commit_directives": ["stock.commit"]})).await;
    let mut open = Session::open(&pos, "S1".into(), None, None, t(0));
    open.items = vec![item("L-1", "A", 1, 100)];
    let s = insert(&store, &open).await;
    let plan = |key: &str, seed: u64| {
        let ctx = Ctx::new(Caller::external("till"), t(10));
        plan_commit(
            &s,
            &pos,
            key,
            None,
            &Extensions::default(),
            &CommitSettings::default(),
            &ctx,
            &mut RandomIds::seeded(seed),
        )
        .unwrap()
    };

    // The session moved on: nothing is written.
    let mut stale = plan("K-1", 1);
    stale.expected_version = 5;
    assert_eq!(store.commit(&stale).await.unwrap(), CommitWrite::SessionChanged);
    assert_eq!(store.order_by_ref(&stale.order.reference).await.unwrap(), None);
    assert_eq!(store.idempotency_record("commit:pos", "K-1").await.unwrap(), None);
    assert!(
        store.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap().items.is_empty()
    );

    // A `done` record holds the key: nothing is written.
    let done = IdempotencyRecord {
        scope: "commit:pos".into(),
        key: "K-2".into(),
        status: IdempotencyStatus::Done,
        response_code: Some(201),
        response_body: Some(json!({"order_ref": "ORD-X"})),
        session_key: Some("S1".into()),
        expires_at: Some(t(86_400)),
        created_at: t(1),
    };
    assert!(store.save_idempotency_record(&done).await.unwrap());
    let taken = plan("K-2", 2);
    assert_eq!(store.commit(&taken).await.unwrap(), CommitWrite::KeyTaken);
    assert_eq!(store.order_by_ref(&taken.order.reference).await.unwrap(), None);
    assert_eq!(store.load_session("pos", "S1").await.unwrap().unwrap().1, s);
    assert_eq!(store.idempotency_record("commit:pos", "K-2").await.unwrap(), Some(done.clone()));

    // A committed plan; a second one reusing its ref collides (on another session).
    let first = plan("K-3", 3);
    let CommitWrite::Committed(order) = store.commit(&first).await.unwrap() else { panic!("commit refused") };
    assert_eq!(order, omniman_core::order::Order { id: order.id, ..first.order.clone() });
    let mut other = Session::open(&pos, "S2".into(), None, None, t(0));
    other.items = vec![item("L-1", "B", 2, 50)];
    let other = insert(&store, &other).await;
    let ctx = Ctx::new(Caller::external("till"), t(10));
    let mut same_ref = plan_commit(
        &other,
        &pos,
        "K-4",
        None,
        &Extensions::default(),
        &CommitSettings::default(),
        &ctx,
        &mut RandomIds::seeded(4),
    )
    .unwrap();
    same_ref.order.reference.clone_from(&order.reference);
    assert_eq!(store.commit(&same_ref).await.unwrap(), CommitWrite::RefTaken);
    assert_eq!(store.load_session("pos", "S2").await.unwrap().unwrap().1, other);
    assert_eq!(store.idempotency_record("commit:pos", "K-4").await.unwrap(), None);
    assert_eq!(store.max_order_id().await.unwrap(), order.id);
    let directives = store.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap().items;
    assert_eq!(directives.len(), 1, "only the committed plan's directive");

    // A commit claims a key only from a record that lets it go (`idempotency::replaceable`): an
    // unexpired `in_progress` record holds it; one past its expiry, of the same session, does not.
    let mut in_progress = done.clone();
    in_progress.key = "K-5".into();
    in_progress.status = IdempotencyStatus::InProgress;
    in_progress.response_code = None;
    in_progress.response_body = None;
    in_progress.session_key = Some("S3".into());
    in_progress.expires_at = Some(t(100));
    assert!(store.save_idempotency_record(&in_progress).await.unwrap());
    let mut third = Session::open(&pos, "S3".into(), None, None, t(0));
    third.items = vec![item("L-1", "C", 1, 10)];
    let third = insert(&store, &third).await;
    let plan5 = plan_commit(
        &third,
        &pos,
        "K-5",
        None,
        &Extensions::default(),
        &CommitSettings::default(),
        &ctx,
        &mut RandomIds::seeded(5),
    )
    .unwrap();
    assert_eq!(store.commit(&plan5).await.unwrap(), CommitWrite::KeyTaken);
    in_progress.expires_at = Some(t(5));
    assert!(store.save_idempotency_record(&in_progress).await.unwrap());
    let CommitWrite::Committed(order5) = store.commit(&plan5).await.unwrap() else { panic!("commit refused") };
    let record = store.idempotency_record("commit:pos", "K-5").await.unwrap().unwrap();
    assert_eq!(record, plan5.idempotency_record(order5.id));
}

async fn transitions_and_events<S: Store>(store: S) {
    channel(&store, "pos", json!({})).await;
    let (hub, clock) = hub(store);
    let key = hub.open_session(OpenSession::on(testing::code("pos")), &caller()).await.unwrap();
    let key = key.session.session_key;
    hub.modify(
        &testing::at("pos", &key),
        &ops(&json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 5}])),
        None,
        &caller(),
    )
    .await
    .unwrap();
    let answer = hub.commit(&testing::at("pos", &key), Some(&testing::idem("K")), None, &caller()).await.unwrap();
    let order_ref = answer.order_ref().unwrap().to_owned();

    clock.advance(TimeDelta::seconds(60));
    let done = hub.transition_order(&order_ref, "confirmed", Some("ok"), &caller()).await.unwrap();
    assert_eq!(done.previous_status, "new");
    let (channel, order) = hub.store().order_by_ref(&order_ref).await.unwrap().unwrap();
    assert_eq!(order, done.order);
    assert_eq!(
        (order.status.as_str(), order.timestamps.confirmed_at, order.updated_at),
        ("confirmed", Some(t(1060)), t(1060))
    );

    // A plan made from a stale read is refused and writes nothing.
    let mut stale_read = order.clone();
    stale_read.status = "new".into();
    let stale =
        plan_transition(&stale_read, &OrderFlow::for_channel(&channel), "cancelled", "x", None, t(2000)).unwrap();
    assert!(!hub.store().transition(&stale).await.unwrap());
    assert_eq!(hub.store().order_by_ref(&order_ref).await.unwrap().unwrap().1, order);

    clock.advance(TimeDelta::seconds(60));
    hub.transition_order(&order_ref, "ready", None, &caller()).await.unwrap();
    let emitted =
        hub.emit_event(&order_ref, "payment.captured", "payment.capture", obj(json!({"amount_q": 5}))).await.unwrap();
    assert_eq!(emitted.seq, 3);
    let direct = hub
        .store()
        .append_event(
            order.id,
            &NewEvent { event_type: "note".into(), actor: "ana".into(), payload: Map::new(), created_at: t(5000) },
        )
        .await
        .unwrap();
    assert_eq!((direct.seq, direct.created_at), (4, t(5000)));

    let events = hub.order_events(&order_ref).await.unwrap();
    let summary: Vec<(i64, &str, &str)> =
        events.iter().map(|e| (e.seq, e.event_type.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        summary,
        [
            (0, "created", "till-1"),
            (1, "status_changed", "till-1"),
            (2, "status_changed", "till-1"),
            (3, "payment.captured", "payment.capture"),
            (4, "note", "ana"),
        ]
    );
    assert_eq!(events[1].payload, obj(json!({"old_status": "new", "new_status": "confirmed", "note": "ok"})));
    assert_eq!(events[2].created_at, t(1120));
    assert!(hub.store().list_events(999_999).await.unwrap().is_empty());
}

async fn orders_list_stream_and_max_id<S: Store>(store: S) {
    channel(&store, "pos", json!({})).await;
    let web = channel(&store, "web", json!({})).await;
    assert_eq!(store.max_order_id().await.unwrap(), 0);
    assert!(store.orders_after(0, 10).await.unwrap().is_empty());
    let (hub, clock) = hub(store);
    let mut refs = Vec::new();
    for i in 0..7_i64 {
        let code = if i % 2 == 0 { "pos" } else { "web" };
        let opened = hub
            .open_session(
                OpenSession {
                    handle_type: Some(omniman_core::input::HandleType::parse("tab").unwrap()),
                    handle_ref: Some(omniman_core::input::HandleRef::parse(format!("{i}")).unwrap()),
                    ..OpenSession::on(testing::code(code))
                },
                &caller(),
            )
            .await
            .unwrap();
        let lines: Vec<Value> = (0..=i % 3)
            .map(|n| json!({"op": "add_line", "sku": format!("SKU{n}"), "qty": 1, "unit_price_q": 100}))
            .collect();
        hub.modify(&testing::at(code, &opened.session.session_key), &ops(&Value::Array(lines)), None, &caller())
            .await
            .unwrap();
        // Pairs of orders share a creation time: ties are broken by id.
        if i % 2 == 0 {
            clock.advance(TimeDelta::seconds(10));
        }
        let answer = hub.commit(&testing::at(code, &opened.session.session_key), None, None, &caller()).await.unwrap();
        refs.push(answer.order_ref().unwrap().to_owned());
    }
    let store = hub.store();
    let mut orders = Vec::new();
    for r in &refs {
        orders.push(store.order_by_ref(r).await.unwrap().unwrap().1);
    }
    let mut expected: Vec<_> = orders.clone();
    expected.sort_by_key(|o| std::cmp::Reverse((o.created_at, o.id)));
    let filter = OrderFilter::default();
    let listed = walk(3, |page| {
        let filter = &filter;
        async move { store.list_orders(filter, &page).await.unwrap() }
    })
    .await;
    assert_eq!(
        listed.iter().map(|o| o.reference.clone()).collect::<Vec<_>>(),
        expected.iter().map(|o| o.reference.clone()).collect::<Vec<_>>()
    );
    for (summary, order) in listed.iter().zip(&expected) {
        assert_eq!(summary.id, order.id);
        assert_eq!(summary.items_count, i64::try_from(order.items.len()).unwrap());
        assert_eq!(
            (summary.total_q, summary.status.as_str(), summary.currency.as_str()),
            (order.total_q, "new", "BRL")
        );
        assert_eq!(
            (summary.channel_id, summary.channel_code.as_str()),
            (order.channel_id, order.channel_code.as_str())
        );
        assert_eq!((summary.created_at, summary.updated_at), (order.created_at, order.updated_at));
        assert_eq!(summary.handle_ref, order.handle_ref);
    }

    let web_only = OrderFilter { channel_ids: Some(vec![web.id]), ..OrderFilter::default() };
    let found = store.list_orders(&web_only, &PageRequest::default()).await.unwrap().items;
    assert_eq!(found.len(), 3);
    assert!(found.iter().all(|o| o.channel_code == "web"));
    let by_handle =
        OrderFilter { handle_type: Some("tab".into()), handle_ref: Some("4".into()), ..OrderFilter::default() };
    let found = store.list_orders(&by_handle, &PageRequest::default()).await.unwrap().items;
    assert_eq!(found.iter().map(|o| o.reference.as_str()).collect::<Vec<_>>(), [refs[4].as_str()]);
    let window = OrderFilter { created_after: Some(t(1020)), created_before: Some(t(1030)), ..OrderFilter::default() };
    let found = store.list_orders(&window, &PageRequest::default()).await.unwrap().items;
    let mut want: Vec<&str> = orders
        .iter()
        .filter(|o| o.created_at >= t(1020) && o.created_at < t(1030))
        .map(|o| o.reference.as_str())
        .collect();
    want.reverse();
    assert_eq!(found.iter().map(|o| o.reference.as_str()).collect::<Vec<_>>(), want);
    assert!(!want.is_empty());
    let by_status = OrderFilter { status: Some("confirmed".into()), ..OrderFilter::default() };
    assert!(store.list_orders(&by_status, &PageRequest::default()).await.unwrap().items.is_empty());
    let by_external = OrderFilter { external_ref: Some("X".into()), ..OrderFilter::default() };
    assert!(store.list_orders(&by_external, &PageRequest::default()).await.unwrap().items.is_empty());

    // The polling stream: ascending ids after `since`.
    let mut ids: Vec<i64> = orders.iter().map(|o| o.id).collect();
    ids.sort_unstable();
    assert_eq!(store.max_order_id().await.unwrap(), *ids.last().unwrap());
    let after: Vec<i64> = store.orders_after(ids[1], 3).await.unwrap().iter().map(|o| o.id).collect();
    assert_eq!(after, ids[2..5]);
    let tail = store.orders_after(ids[5], 10).await.unwrap();
    assert_eq!(tail.iter().map(|o| o.id).collect::<Vec<_>>(), [ids[6]]);
    assert_eq!(
        tail[0].items_count,
        i64::try_from(orders.iter().find(|o| o.id == ids[6]).unwrap().items.len()).unwrap()
    );
    assert!(store.orders_after(ids[6], 10).await.unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Directives

async fn directive_queue<S: Store>(store: S) {
    assert!(store.enqueue(&[]).await.unwrap().is_empty());
    let ids = store
        .enqueue(&[
            directive("stock.hold", t(10), json!({"n": 1})),
            directive("stock.hold", t(5), json!({"n": 2})),
            directive("notify", t(5), json!({"n": 3})),
            directive("stock.hold", t(100), json!({"n": 4})),
        ])
        .await
        .unwrap();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in the order given");
    let first = store.directive(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (first.status, first.attempts, first.last_error.as_str(), first.started_at),
        (DirectiveStatus::Queued, 0, "", None)
    );
    assert_eq!((first.created_at, first.available_at), (t(10), t(10)));
    assert_eq!(store.directive(999_999).await.unwrap(), None);

    // Not before `available_at`; oldest first, then by id; only the given topics.
    assert!(store.claim(None, 10, t(4)).await.unwrap().is_empty());
    let topics = vec!["stock.hold".to_owned()];
    let claimed = store.claim(Some(&topics), 10, t(50)).await.unwrap();
    assert_eq!(claimed.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1], ids[0]]);
    for d in &claimed {
        assert_eq!(
            (d.status, d.attempts, d.started_at, d.updated_at),
            (DirectiveStatus::Running, 1, Some(t(50)), t(50))
        );
    }
    assert!(store.claim(Some(&topics), 10, t(50)).await.unwrap().is_empty(), "claimed rows are not claimed again");
    assert!(store.claim(Some(&[]), 10, t(500)).await.unwrap().is_empty(), "no topics, nothing");
    let rest = store.claim(None, 1, t(500)).await.unwrap();
    assert_eq!(rest.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[2]]);
    assert!(store.claim(None, 0, t(500)).await.unwrap().is_empty());

    let counts = store.directive_counts().await.unwrap();
    assert_eq!(counts, vec![(DirectiveStatus::Queued, 1), (DirectiveStatus::Running, 3)]);

    // Stuck: running, claimed (or renewed) before the cut.
    let stuck = store.stuck_directives(t(100)).await.unwrap();
    assert_eq!(stuck.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[0], ids[1]]);
    assert!(store.stuck_directives(t(50)).await.unwrap().is_empty());

    // Lists: newest first by (created_at, id), filtered by topic and status.
    let all = walk(3, |page| {
        let store = &store;
        async move { store.list_directives(&DirectiveFilter::default(), &page).await.unwrap() }
    })
    .await;
    let mut expected: Vec<_> = all.clone();
    expected.sort_by_key(|d| std::cmp::Reverse((d.created_at, d.id)));
    assert_eq!(all, expected);
    assert_eq!(all.len(), 4);
    let running_holds = DirectiveFilter { topic: Some("stock.hold".into()), status: Some(DirectiveStatus::Running) };
    let found = store.list_directives(&running_holds, &PageRequest::default()).await.unwrap().items;
    let mut found_ids: Vec<i64> = found.iter().map(|d| d.id).collect();
    found_ids.sort_unstable();
    assert_eq!(found_ids, [ids[0], ids[1]]);
}

async fn directive_finish_and_requeue<S: Store>(store: S) {
    let ids = store
        .enqueue(&[
            directive("a", t(0), json!({"keep": 1, "nested": {"x": 1}, "gone": true})),
            directive("a", t(0), json!({})),
            directive("a", t(0), json!({})),
        ])
        .await
        .unwrap();
    let claimed = store.claim(None, 10, t(1)).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let update = |id: i64, status: DirectiveStatus, patch: Value| DirectiveUpdate {
        id,
        claimed_attempts: 1,
        status,
        attempts: 1,
        available_at: t(30),
        last_error: if status == DirectiveStatus::Done { String::new() } else { "boom".into() },
        payload_patch: obj(patch),
    };
    let changed = store
        .finish(
            &[
                // Top-level keys are replaced (not merged) and nulls are kept.
                update(
                    ids[0],
                    DirectiveStatus::Done,
                    json!({"nested": {"y": 2}, "gone": null, "holds": [{"hold_id": "H1"}]}),
                ),
                update(ids[1], DirectiveStatus::Queued, json!({})),
                // A stale claim (attempts moved on) changes nothing.
                DirectiveUpdate { claimed_attempts: 7, ..update(ids[2], DirectiveStatus::Failed, json!({"x": 1})) },
            ],
            t(40),
        )
        .await
        .unwrap();
    assert_eq!(changed, 2);
    let done = store.directive(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (done.status, done.last_error.as_str(), done.updated_at, done.available_at),
        (DirectiveStatus::Done, "", t(40), t(30))
    );
    assert_eq!(
        Value::Object(done.payload),
        json!({"keep": 1, "nested": {"y": 2}, "gone": null, "holds": [{"hold_id": "H1"}]})
    );
    let retry = store.directive(ids[1]).await.unwrap().unwrap();
    assert_eq!((retry.status, retry.attempts, retry.last_error.as_str()), (DirectiveStatus::Queued, 1, "boom"));
    let untouched = store.directive(ids[2]).await.unwrap().unwrap();
    assert_eq!((untouched.status, untouched.payload.len()), (DirectiveStatus::Running, 0));
    // Finished rows are not finished twice.
    assert_eq!(store.finish(&[update(ids[0], DirectiveStatus::Failed, json!({}))], t(50)).await.unwrap(), 0);
    assert_eq!(store.finish(&[], t(50)).await.unwrap(), 0);

    // Manual retry: anything but `running`; attempts and error kept.
    let requeue = |id: i64| DirectiveUpdate {
        id,
        claimed_attempts: 0,
        status: DirectiveStatus::Queued,
        attempts: 0,
        available_at: t(60),
        last_error: String::new(),
        payload_patch: Map::new(),
    };
    assert!(!store.requeue(&requeue(ids[2]), t(60)).await.unwrap(), "running rows are not requeued");
    assert!(store.requeue(&requeue(ids[0]), t(60)).await.unwrap());
    let again = store.directive(ids[0]).await.unwrap().unwrap();
    assert_eq!(
        (again.status, again.available_at, again.updated_at, again.attempts),
        (DirectiveStatus::Queued, t(60), t(60), 1)
    );
    assert!(!store.requeue(&requeue(999_999), t(60)).await.unwrap());
    let reclaimed = store.claim(None, 10, t(60)).await.unwrap();
    assert_eq!(reclaimed.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(), [(ids[1], 2), (ids[0], 2)]);

    // One directive twice in a batch: the first update counts, as if applied in order.
    let second_claim = |status: DirectiveStatus, patch: Value| DirectiveUpdate {
        claimed_attempts: 2,
        attempts: 2,
        ..update(ids[1], status, patch)
    };
    let twice = [
        second_claim(DirectiveStatus::Done, json!({"first": true})),
        second_claim(DirectiveStatus::Failed, json!({"second": true})),
    ];
    assert_eq!(store.finish(&twice, t(70)).await.unwrap(), 1);
    let once = store.directive(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (once.status, once.payload.get("first"), once.payload.get("second")),
        (DirectiveStatus::Done, Some(&json!(true)), None)
    );
}

/// A worker renews the claims it holds: the renewal moves only `updated_at`, the claim's lease,
/// and the reaper judges a `running` directive by it, not by when it was claimed.
async fn directive_claims_are_renewed<S: Store>(store: S) {
    let ids =
        store.enqueue(&[directive("a", t(0), json!({"keep": 1})), directive("a", t(0), json!({}))]).await.unwrap();
    let claimed = store.claim(None, 10, t(10)).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let held = claimed.iter().find(|d| d.id == ids[0]).unwrap().clone();
    // Renewed at t(100) (a stale renewal of an older claim changes nothing).
    let stale = DirectiveUpdate { claimed_attempts: 0, ..renew_claim(&held) };
    assert_eq!(store.finish(&[renew_claim(&held), stale], t(100)).await.unwrap(), 1);
    let renewed = store.directive(ids[0]).await.unwrap().unwrap();
    assert_eq!(renewed, Directive { updated_at: t(100), ..held.clone() }, "only the lease moved");

    // At t(150) with a 60 s timeout: the unrenewed claim of t(10) is stuck, the renewed one is not.
    let stuck = store.stuck_directives(t(90)).await.unwrap();
    assert_eq!(stuck.iter().map(|d| d.id).collect::<Vec<_>>(), [ids[1]]);
    let policy = RetryPolicy::default();
    let reaps: Vec<DirectiveUpdate> =
        stuck.iter().filter_map(|d| decide_reap(d, &policy, TimeDelta::seconds(60), t(150))).collect();
    assert_eq!(store.finish(&reaps, t(150)).await.unwrap(), 1);
    assert_eq!(store.directive(ids[1]).await.unwrap().unwrap().status, DirectiveStatus::Queued);
    assert_eq!(store.directive(ids[0]).await.unwrap().unwrap().status, DirectiveStatus::Running);
    assert_eq!(
        store.stuck_directives(t(101)).await.unwrap().iter().map(|d| d.id).collect::<Vec<_>>(),
        [ids[0]],
        "a lease that went unrenewed lapses"
    );

    // The outcome after renewals applies as usual.
    let done = DirectiveUpdate { status: DirectiveStatus::Done, ..renew_claim(&held) };
    assert_eq!(store.finish(&[done], t(120)).await.unwrap(), 1);
    assert_eq!(store.directive(ids[0]).await.unwrap().unwrap().status, DirectiveStatus::Done);
    assert_eq!(store.finish(&[renew_claim(&held)], t(130)).await.unwrap(), 0, "nothing to renew once finished");
}

// ---------------------------------------------------------------------------------------------
// Idempotency and tokens

async fn idempotency_records<S: Store>(store: S) {
    let record = |key: &str, status: IdempotencyStatus, expires: Option<i64>| IdempotencyRecord {
        scope: "commit:pos".into(),
        key: key.into(),
        status,
        response_code: (status == IdempotencyStatus::Done).then_some(201),
        response_body: (status == IdempotencyStatus::Done).then(|| json!({"order_ref": key})),
        session_key: Some("S1".into()),
        expires_at: expires.map(t),
        created_at: t(0),
    };
    assert_eq!(store.idempotency_record("commit:pos", "A").await.unwrap(), None);
    let a = record("A", IdempotencyStatus::InProgress, Some(100));
    assert!(store.save_idempotency_record(&a).await.unwrap());
    assert_eq!(store.idempotency_record("commit:pos", "A").await.unwrap(), Some(a));
    assert_eq!(store.idempotency_record("commit:web", "A").await.unwrap(), None);
    // Not `done` yet: replaced.
    let failed = record("A", IdempotencyStatus::Failed, Some(200));
    assert!(store.save_idempotency_record(&failed).await.unwrap());
    let done = record("A", IdempotencyStatus::Done, Some(300));
    assert!(store.save_idempotency_record(&done).await.unwrap());
    assert_eq!(store.idempotency_record("commit:pos", "A").await.unwrap(), Some(done.clone()));
    // `done` is final.
    assert!(!store.save_idempotency_record(&record("A", IdempotencyStatus::InProgress, Some(400))).await.unwrap());
    assert_eq!(store.idempotency_record("commit:pos", "A").await.unwrap(), Some(done));

    assert!(store.save_idempotency_record(&record("B", IdempotencyStatus::Done, Some(100))).await.unwrap());
    assert!(store.save_idempotency_record(&record("C", IdempotencyStatus::InProgress, None)).await.unwrap());
    assert_eq!(store.delete_expired_idempotency(t(100)).await.unwrap(), 1, "expires_at <= now");
    assert_eq!(store.idempotency_record("commit:pos", "B").await.unwrap(), None);
    assert_eq!(store.delete_expired_idempotency(t(10_000)).await.unwrap(), 1);
    assert!(store.idempotency_record("commit:pos", "C").await.unwrap().is_some(), "no expiry, never deleted");
}

async fn api_tokens<S: Store>(store: S) {
    let token = |name: &str, hash: &str, role: Role, channels: Option<Vec<&str>>| ApiToken {
        id: 0,
        name: name.into(),
        token_hash: hash.into(),
        role,
        channels: channels.map(|c| c.into_iter().map(str::to_owned).collect()),
        created_at: t(0),
        revoked_at: None,
        rate_limits: None,
    };
    assert!(store.create_token(&token("zeta", &"a".repeat(64), Role::Client, Some(vec!["pos", "web"]))).await.unwrap());
    assert!(store.create_token(&token("alpha", &"b".repeat(64), Role::Admin, None)).await.unwrap());
    assert!(!store.create_token(&token("alpha", &"c".repeat(64), Role::Client, None)).await.unwrap(), "name taken");

    let zeta = store.token_by_hash(&"a".repeat(64)).await.unwrap().unwrap();
    assert!(zeta.id > 0);
    assert_eq!(
        zeta,
        ApiToken { id: zeta.id, ..token("zeta", &"a".repeat(64), Role::Client, Some(vec!["pos", "web"])) }
    );
    assert_eq!(store.token_by_hash("nope").await.unwrap(), None);
    let limited =
        ApiToken { rate_limits: Some("commit=60/min".into()), ..token("limited", &"d".repeat(64), Role::Client, None) };
    assert!(store.create_token(&limited).await.unwrap());
    let read = store.token_by_hash(&"d".repeat(64)).await.unwrap().unwrap();
    assert_eq!(read.rate_limits.as_deref(), Some("commit=60/min"));
    assert!(store.revoke_token("limited", t(1)).await.unwrap());
    let names: Vec<String> = store.list_tokens().await.unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["alpha", "limited", "zeta"]);

    assert!(store.revoke_token("zeta", t(5)).await.unwrap());
    assert!(!store.revoke_token("zeta", t(6)).await.unwrap(), "already revoked");
    assert!(!store.revoke_token("nobody", t(6)).await.unwrap());
    assert_eq!(store.token_by_hash(&"a".repeat(64)).await.unwrap(), None);
    let listed = store.list_tokens().await.unwrap();
    assert_eq!(listed[2].revoked_at, Some(t(5)));
    assert_eq!(listed[0].role, Role::Admin);
}

fn webhook(url: &str, at: DateTime<Utc>) -> Webhook {
    use omniman_core::events::EventType;
    Webhook {
        url: url.into(),
        channels: Some(vec!["pos".into()]),
        created_at: at,
        updated_at: at,
        ..Webhook::fixture(0, &[EventType::OrderCreated, EventType::SessionOpened])
    }
}

async fn webhooks_and_their_deliveries<S: Store>(store: S) {
    let first = store.create_webhook(&webhook("https://a.example/hook", t(1))).await.unwrap();
    assert!(first.id > 0);
    assert_eq!(first.start_after, 0, "an empty log ends at 0");
    assert_eq!(store.webhook(first.id).await.unwrap().as_ref(), Some(&first));
    assert_eq!(first, Webhook { id: first.id, ..webhook("https://a.example/hook", t(1)) });
    let mut ids = vec![first.id];
    for i in 2..=5 {
        ids.push(store.create_webhook(&webhook(&format!("https://{i}.example/"), t(i))).await.unwrap().id);
    }
    let listed = walk(2, |page| {
        let store = &store;
        async move { store.list_webhooks(&page).await.unwrap() }
    })
    .await;
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(listed.iter().map(|w| w.id).collect::<Vec<_>>(), newest_first);

    let paused = Webhook { active: false, channels: None, url: "http://b.example".into(), updated_at: t(9), ..first };
    assert!(store.update_webhook(&paused).await.unwrap());
    assert_eq!(store.webhook(paused.id).await.unwrap(), Some(paused.clone()));
    assert!(!store.update_webhook(&Webhook { id: 999_999, ..paused.clone() }).await.unwrap());
    let active: Vec<i64> = store.active_webhooks().await.unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(active, ids[1..]);

    let deliveries = [
        NewDelivery::test(ids[1], t(20)),
        NewDelivery::new(ids[1], Some(7), "order.created", json!({"id": 7}), t(20)),
        NewDelivery::new(ids[2], Some(7), "order.created", json!({"id": 7}), t(20)),
    ];
    let delivery_ids = store.enqueue_deliveries(&deliveries).await.unwrap();
    assert_eq!(delivery_ids.len(), 3);
    let directive = store.directive(delivery_ids[1]).await.unwrap().unwrap();
    assert_eq!(directive.topic, "webhook.deliver");
    assert_eq!(Value::Object(directive.payload), json!({"webhook_id": ids[1], "event": {"id": 7}}));
    let listed = store.list_deliveries(ids[1], &PageRequest::default()).await.unwrap();
    let got: Vec<_> = listed.items.iter().map(|d| (d.id, d.event_id, d.event_type.as_str(), d.status)).collect();
    assert_eq!(
        got,
        [
            (delivery_ids[1], Some(7), "order.created", DirectiveStatus::Queued),
            (delivery_ids[0], None, "webhook.test", DirectiveStatus::Queued),
        ]
    );
    assert_eq!((listed.items[0].attempts, listed.items[0].created_at), (0, t(20)));
    let hook = ids[1];
    let all = walk(1, |page| {
        let store = &store;
        async move { store.list_deliveries(hook, &page).await.unwrap() }
    })
    .await;
    assert_eq!(all, listed.items);

    assert!(store.delete_webhook(ids[1]).await.unwrap());
    assert!(!store.delete_webhook(ids[1]).await.unwrap());
    assert_eq!(store.webhook(ids[1]).await.unwrap(), None);
    assert!(store.list_deliveries(ids[1], &PageRequest::default()).await.unwrap().items.is_empty());
    assert!(store.directive(delivery_ids[1]).await.unwrap().is_some(), "queued deliveries stay");
    assert_eq!(store.list_deliveries(ids[2], &PageRequest::default()).await.unwrap().items.len(), 1);
}

async fn webhook_dispatch_is_compare_and_set<S: Store>(store: S) {
    let hook = store.create_webhook(&webhook("https://a.example/hook", t(1))).await.unwrap();
    assert_eq!(store.dispatch_position().await.unwrap(), 0);
    let delivery = NewDelivery::new(hook.id, Some(3), "order.created", json!({"id": 3}), t(2));
    assert!(store.advance_dispatch(0, 3, std::slice::from_ref(&delivery)).await.unwrap());
    assert_eq!(store.dispatch_position().await.unwrap(), 3);
    // A dispatcher that read position 0 before the move loses, and writes nothing.
    assert!(!store.advance_dispatch(0, 5, std::slice::from_ref(&delivery)).await.unwrap());
    assert_eq!(store.dispatch_position().await.unwrap(), 3);
    assert_eq!(store.list_deliveries(hook.id, &PageRequest::default()).await.unwrap().items.len(), 1);
    assert!(store.advance_dispatch(3, 9, &[]).await.unwrap());
    assert_eq!(store.dispatch_position().await.unwrap(), 9);
    let queued = store.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap();
    assert_eq!(queued.items.len(), 1);
}
