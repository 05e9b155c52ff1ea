//! Concurrency on the real backends (docs/architecture.md, "Concurrency"): compare-and-set writes under contention,
//! one order per session however many commits race, claims that never overlap across pools,
//! and commits that die midway leaving nothing behind.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use diesel_async::SimpleAsyncConnection;
use serde_json::{Map, Value, json};

use common::t;
use omniman_core::directive::NewDirective;
use omniman_core::ext::Extensions;
use omniman_core::ops::Op;
use omniman_core::page::PageRequest;
use omniman_core::ports::{ChannelStore, DirectiveFilter, DirectiveQueue, IdempotencyStore, OrderFilter, OrderStore};
use omniman_core::prelude::{Caller, CommitError, Omniman, OpenSession};
use omniman_core::session::SessionState;
use omniman_core::testing;
use omniman_storage::test_support::TestDb;
use omniman_storage::{Database, StorageConfig};

db_tests!(
    fifty_concurrent_modifies_all_land,
    fifty_commits_with_one_key_make_one_order,
    fifty_commits_with_fifty_keys_make_one_order,
    two_pools_claim_each_directive_once,
    a_commit_failing_midway_leaves_nothing,
    dropped_commit_futures_never_leave_half_an_order,
);

const N: usize = 50;

fn caller() -> Caller {
    Caller::external("till")
}

fn ops(batch: &Value) -> Vec<Op> {
    Op::parse_batch(batch).unwrap()
}

async fn hub_with_session(db: &Database, config: Value, lines: usize) -> (Arc<Omniman<Database>>, String) {
    let spec = serde_json::from_value(json!({"code": "pos", "config": config})).unwrap();
    db.upsert_channel(&spec, t(0)).await.unwrap();
    let hub = Arc::new(Omniman::new(db.clone(), Extensions::default()));
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller()).await.unwrap();
    let key = opened.session.session_key;
    if lines > 0 {
        let batch: Vec<Value> = (0..lines)
            .map(|i| json!({"op": "add_line", "sku": format!("S{i}"), "qty": 1, "unit_price_q": 100}))
            .collect();
        hub.modify(&testing::at("pos", &key), &ops(&Value::Array(batch)), None, &caller()).await.unwrap();
    }
    (hub, key)
}

async fn order_count(db: &Database) -> usize {
    db.list_orders(&OrderFilter::default(), &PageRequest::new(None, 100)).await.unwrap().items.len()
}

async fn fifty_concurrent_modifies_all_land(test_db: &TestDb) {
    let (hub, key) = hub_with_session(test_db.db(), json!({"required_checks_on_commit": ["stock"]}), 0).await;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (hub, key) = (hub.clone(), key.clone());
            tokio::spawn(async move {
                let batch = ops(&json!([{"op": "add_line", "sku": format!("SKU-{i}"), "qty": 1, "unit_price_q": 10}]));
                hub.modify(&testing::at("pos", &key), &batch, None, &caller()).await.unwrap()
            })
        })
        .collect();
    let mut revs = BTreeSet::new();
    for task in tasks {
        revs.insert(task.await.unwrap().rev);
    }
    assert_eq!(revs, (1..=50).collect::<BTreeSet<i64>>(), "every modify got its own rev");
    let session = hub.get_session(Some(&testing::code("pos")), &testing::key(&key)).await.unwrap();
    assert_eq!((session.rev, session.version, session.items.len()), (50, 50, 50));
    let skus: BTreeSet<String> = session.items.iter().map(|i| i.sku.clone()).collect();
    assert_eq!(skus.len(), 50, "no lost update");
    // One check directive per successful modify, none for the attempts that lost.
    let holds = test_db
        .list_directives(
            &DirectiveFilter { topic: Some("stock.hold".into()), status: None },
            &PageRequest::new(None, 100),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(holds.len(), 50);
}

async fn fifty_commits_with_one_key_make_one_order(test_db: &TestDb) {
    let (hub, key) = hub_with_session(test_db.db(), json!({"post_commit_directives": ["stock.commit"]}), 3).await;
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (hub, key) = (hub.clone(), key.clone());
            tokio::spawn(async move {
                hub.commit(&testing::at("pos", &key), Some(&testing::idem("ONE-KEY")), None, &caller()).await
            })
        })
        .collect();
    let mut refs = BTreeSet::new();
    let mut in_progress = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(answer) => {
                assert_eq!(answer.http_status(), 201, "{answer:?}");
                refs.insert(answer.order_ref().unwrap().to_owned());
            }
            // Allowed by docs/reference.md §6 while the winner's key is being written (not with this store,
            // whose commit writes the record in the same transaction, but harmless).
            Err(CommitError::InProgress { .. }) => in_progress += 1,
            Err(e) => panic!("commit failed: {e:?}"),
        }
    }
    assert_eq!(refs.len(), 1, "every caller got the same order: {refs:?}");
    assert_eq!(in_progress, 0);
    assert_eq!(order_count(test_db).await, 1);
    let directives = test_db
        .list_directives(&DirectiveFilter { topic: Some("stock.commit".into()), status: None }, &PageRequest::default())
        .await
        .unwrap()
        .items;
    assert_eq!(directives.len(), 1, "one order, one post-commit directive");
}

async fn fifty_commits_with_fifty_keys_make_one_order(test_db: &TestDb) {
    let (hub, key) = hub_with_session(test_db.db(), json!({}), 2).await;
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (hub, key) = (hub.clone(), key.clone());
            tokio::spawn(async move {
                hub.commit(&testing::at("pos", &key), Some(&testing::idem(&format!("KEY-{i}"))), None, &caller())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut codes = Vec::new();
    let mut refs = BTreeSet::new();
    for task in tasks {
        let answer = task.await.unwrap();
        codes.push(answer.http_status());
        refs.insert(answer.order_ref().unwrap().to_owned());
        if answer.http_status() == 200 {
            assert_eq!(answer.to_json()["status"], json!("already_committed"));
        }
    }
    assert_eq!(codes.iter().filter(|c| **c == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), N - 1);
    assert_eq!(refs.len(), 1);
    assert_eq!(order_count(test_db).await, 1);
    // Every key remembers its answer.
    for i in 0..N {
        let record = test_db.idempotency_record("commit:pos", &format!("KEY-{i}")).await.unwrap().unwrap();
        assert_eq!(record.response_body.unwrap()["order_ref"], json!(refs.first().unwrap()));
    }
}

async fn two_pools_claim_each_directive_once(test_db: &TestDb) {
    let batch: Vec<NewDirective> = (0..1000)
        .map(|i| NewDirective {
            topic: if i % 2 == 0 { "a".into() } else { "b".into() },
            payload: Map::new(),
            available_at: t(i % 10),
        })
        .collect();
    let mut all = test_db.enqueue(&batch).await.unwrap();
    all.sort_unstable();
    assert_eq!(all.len(), 1000);
    // A second pool on the same database: another process.
    let other = Database::connect(&StorageConfig::new(test_db.url()).with_pool_size(4)).await.unwrap();
    let mut tasks = Vec::new();
    for (pool_index, db) in [test_db.db().clone(), other].into_iter().enumerate() {
        for worker in 0..4 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                let topics = (worker == 3).then(|| vec!["b".to_owned()]);
                loop {
                    let claimed = db.claim(topics.as_deref(), 7 + pool_index, t(100)).await.unwrap();
                    if claimed.is_empty() {
                        break;
                    }
                    mine.extend(claimed.into_iter().map(|d| (d.id, d.attempts)));
                }
                mine
            }));
        }
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.unwrap());
    }
    assert!(claimed.iter().all(|(_, attempts)| *attempts == 1));
    let mut ids: Vec<i64> = claimed.into_iter().map(|(id, _)| id).collect();
    ids.sort_unstable();
    assert_eq!(ids.len(), 1000, "no directive claimed twice");
    assert_eq!(ids, all, "every directive claimed");
}

/// Installs a trigger that makes the `created` event insert fail: the commit dies after the
/// session update, the order and its items were written.
async fn break_event_inserts(db: &Database, broken: bool) {
    if let Some(mut conn) = db.get_pg().await.unwrap() {
        let sql = if broken {
            "CREATE FUNCTION fail_event() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'injected failure'; END; $$; \
             CREATE TRIGGER fail_event BEFORE INSERT ON order_events FOR EACH ROW EXECUTE FUNCTION fail_event();"
        } else {
            "DROP TRIGGER fail_event ON order_events; DROP FUNCTION fail_event();"
        };
        conn.batch_execute(sql).await.unwrap();
    } else if let Some(mut conn) = db.get_sqlite().await.unwrap() {
        let sql = if broken {
            "CREATE TRIGGER fail_event BEFORE INSERT ON order_events BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
        } else {
            "DROP TRIGGER fail_event;"
        };
        conn.batch_execute(sql).await.unwrap();
    }
}

async fn assert_nothing_committed(test_db: &TestDb, hub: &Omniman<Database>, key: &str, idem: &str) {
    assert_eq!(order_count(test_db).await, 0, "no order");
    assert_eq!(test_db.max_order_id().await.unwrap(), 0);
    let session = hub.get_session(Some(&testing::code("pos")), &testing::key(key)).await.unwrap();
    assert_eq!((session.state, session.version), (SessionState::Open, 1));
    assert!(test_db.idempotency_record("commit:pos", idem).await.unwrap().is_none());
    let directives = test_db.list_directives(&DirectiveFilter::default(), &PageRequest::default()).await.unwrap();
    assert!(directives.items.is_empty(), "no post-commit directive");
    // Nor any order line (they would belong to an order that is not there).
    let lines: i64 = if let Some(mut conn) = test_db.get_pg().await.unwrap() {
        use diesel::QueryDsl;
        use diesel_async::RunQueryDsl;
        omniman_storage::schema::pg::order_items::table.count().get_result(&mut conn).await.unwrap()
    } else {
        use diesel::QueryDsl;
        use diesel_async::RunQueryDsl;
        let mut conn = test_db.get_sqlite().await.unwrap().unwrap();
        omniman_storage::schema::sqlite::order_items::table.count().get_result(&mut conn).await.unwrap()
    };
    assert_eq!(lines, 0, "no order line");
}

async fn a_commit_failing_midway_leaves_nothing(test_db: &TestDb) {
    let (hub, key) = hub_with_session(test_db.db(), json!({"post_commit_directives": ["stock.commit"]}), 3).await;
    break_event_inserts(test_db, true).await;
    let failed = hub.commit(&testing::at("pos", &key), Some(&testing::idem("K")), None, &caller()).await;
    assert!(matches!(failed, Err(CommitError::Store(_))), "{failed:?}");
    assert_nothing_committed(test_db, &hub, &key, "K").await;

    // PostgreSQL: kill the connection in the middle of the commit transaction.
    if let Some(mut admin) = test_db.get_pg().await.unwrap() {
        break_event_inserts(test_db, false).await;
        admin
            .batch_execute(
                "CREATE FUNCTION slow_items() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END; $$; \
                 CREATE TRIGGER slow_items AFTER INSERT ON order_items FOR EACH STATEMENT EXECUTE FUNCTION slow_items();",
            )
            .await
            .unwrap();
        let commit = {
            let (hub, key) = (hub.clone(), key.clone());
            tokio::spawn(async move {
                hub.commit(&testing::at("pos", &key), Some(&testing::idem("K")), None, &caller()).await
            })
        };
        let mut killed = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let pids: Vec<Pid> = {
                use diesel_async::RunQueryDsl;
                diesel::sql_query(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                     AND state = 'active' AND query LIKE 'WITH s AS (UPDATE sessions%'",
                )
                .load(&mut admin)
                .await
                .unwrap()
            };
            if let Some(Pid { pid }) = pids.first() {
                admin.batch_execute(&format!("SELECT pg_terminate_backend({pid})")).await.unwrap();
                killed = true;
                break;
            }
        }
        assert!(killed, "the commit was never seen running");
        let result = commit.await.unwrap();
        assert!(matches!(result, Err(CommitError::Store(_))), "{result:?}");
        assert_nothing_committed(test_db, &hub, &key, "K").await;
        admin.batch_execute("DROP TRIGGER slow_items ON order_items; DROP FUNCTION slow_items();").await.unwrap();
    } else {
        break_event_inserts(test_db, false).await;
    }

    // Once the fault is gone, the same key commits once.
    let answer = hub.commit(&testing::at("pos", &key), Some(&testing::idem("K")), None, &caller()).await.unwrap();
    assert_eq!(answer.http_status(), 201);
    assert_eq!(order_count(test_db).await, 1);
    let (_, order) = test_db.order_by_ref(answer.order_ref().unwrap()).await.unwrap().unwrap();
    assert_eq!(order.items.len(), 3);
}

#[derive(diesel::QueryableByName)]
struct Pid {
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pid: i32,
}

async fn dropped_commit_futures_never_leave_half_an_order(test_db: &TestDb) {
    // Callers that give up at every point of a commit: each session ends either fully committed
    // (order, lines, event, record, directive) or untouched, and a retry with the same key
    // answers with the one order.
    let spec = serde_json::from_value(json!({"code": "pos", "config": {"post_commit_directives": ["x"]}})).unwrap();
    test_db.upsert_channel(&spec, t(0)).await.unwrap();
    let hub = Arc::new(Omniman::new(test_db.db().clone(), Extensions::default()));
    let mut committed_early = 0;
    for round in 0..12_u64 {
        let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller()).await.unwrap();
        let key = opened.session.session_key;
        let batch = ops(&json!([{"op": "add_line", "sku": "A", "qty": 2, "unit_price_q": 5}]));
        hub.modify(&testing::at("pos", &key), &batch, None, &caller()).await.unwrap();
        let idem = format!("K-{round}");
        let attempt = tokio::time::timeout(
            Duration::from_micros(round * 400),
            hub.commit(&testing::at("pos", &key), Some(&testing::idem(&idem)), None, &caller()),
        )
        .await;
        if attempt.is_ok() {
            committed_early += 1;
        }
        // Whatever the caller saw, the store settles on all or nothing.
        let answer = hub.commit(&testing::at("pos", &key), Some(&testing::idem(&idem)), None, &caller()).await.unwrap();
        assert_eq!(answer.http_status(), 201);
        let orders: Vec<_> = test_db
            .list_orders(&OrderFilter::default(), &PageRequest::new(None, 100))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|o| o.reference == answer.order_ref().unwrap())
            .collect();
        assert_eq!(orders.len(), 1);
        assert_eq!(orders[0].items_count, 1);
        let events = test_db.list_events(orders[0].id).await.unwrap();
        assert_eq!(events.len(), 1);
    }
    assert_eq!(order_count(test_db).await, 12);
    let directives = test_db.list_directives(&DirectiveFilter::default(), &PageRequest::new(None, 100)).await.unwrap();
    assert_eq!(directives.items.len(), 12, "one post-commit directive per order");
    assert!(committed_early < 12, "some callers gave up before the answer");
}
