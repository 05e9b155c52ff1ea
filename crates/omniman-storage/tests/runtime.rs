//! Behaviour that depends on the async runtime: PostgreSQL wake-ups for idle workers, and
//! store calls abandoned by their caller on a single-threaded runtime (as actix-web runs).

mod common;

use std::time::Duration;

use serde_json::Map;

use common::t;
use omniman_core::directive::NewDirective;
use omniman_core::page::PageRequest;
use omniman_core::ports::{ChannelStore, DirectiveFilter, DirectiveQueue};
use omniman_storage::test_support::TestDb;

fn directive() -> NewDirective {
    NewDirective { topic: "x".into(), payload: Map::new(), available_at: t(0) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_inserted_directives_wake_listeners() {
    let Some(test_db) = TestDb::postgres().await else { return };
    let mut wakeups = test_db.listen_directives().await.unwrap().expect("PostgreSQL listens");
    let quiet = tokio::time::timeout(Duration::from_millis(200), wakeups.wait()).await;
    assert!(quiet.is_err(), "no wake-up before anything is enqueued");

    test_db.enqueue(&[directive(), directive()]).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), wakeups.wait()).await;
    assert_eq!(woke, Ok(true), "an insert wakes the listener");

    // A rolled-back insert notifies nobody.
    {
        use diesel_async::SimpleAsyncConnection;
        let mut conn = test_db.get_pg().await.unwrap().unwrap();
        conn.batch_execute("BEGIN; INSERT INTO directives (topic) VALUES ('y'); ROLLBACK;").await.unwrap();
    }
    let quiet = tokio::time::timeout(Duration::from_millis(300), wakeups.wait()).await;
    assert!(quiet.is_err(), "a rolled-back insert wakes nobody");
}

#[tokio::test]
async fn sqlite_has_no_listener() {
    let test_db = TestDb::sqlite().await;
    assert!(test_db.listen_directives().await.unwrap().is_none());
}

/// Callers that give up (a client that disconnects) on a current-thread runtime: the store call
/// finishes in its own task, the connection goes back to the pool clean, nothing panics.
async fn abandoned_calls(test_db: &TestDb) {
    for i in 0..30_u64 {
        let batch: Vec<NewDirective> = (0..50).map(|_| directive()).collect();
        let _ = tokio::time::timeout(Duration::from_micros(i * 50), test_db.enqueue(&batch)).await;
        let _ = tokio::time::timeout(Duration::from_micros(i * 50), test_db.claim(None, 10, t(1))).await;
    }
    // Let the abandoned calls finish, then check the pool still serves and the counts add up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let listed = test_db.list_directives(&DirectiveFilter::default(), &PageRequest::new(None, 100)).await.unwrap();
    assert!(!listed.items.is_empty());
    let total: i64 = test_db.directive_counts().await.unwrap().into_iter().map(|(_, n)| n).sum();
    assert_eq!(total % 50, 0, "batches are inserted whole or not at all");
    test_db.list_channels().await.unwrap();
}

#[tokio::test]
async fn sqlite_calls_abandoned_on_a_current_thread_runtime() {
    abandoned_calls(&TestDb::sqlite().await).await;
}

#[tokio::test]
async fn postgres_calls_abandoned_on_a_current_thread_runtime() {
    let Some(test_db) = TestDb::postgres().await else { return };
    abandoned_calls(&test_db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_commit_without_directives_wakes_nobody() {
    use omniman_core::ext::Extensions;
    use omniman_core::ops::Op;
    use omniman_core::prelude::{Caller, Omniman, OpenSession};
    use omniman_core::testing;
    let Some(test_db) = TestDb::postgres().await else { return };
    test_db.upsert_channel(&serde_json::from_value(serde_json::json!({"code": "pos"})).unwrap(), t(0)).await.unwrap();
    let mut wakeups = test_db.listen_directives().await.unwrap().expect("PostgreSQL listens");
    let hub = Omniman::new(test_db.db().clone(), Extensions::default());
    let caller = Caller::external("till");
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    let batch = Op::parse_batch(&serde_json::json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}]));
    hub.modify(&at, &batch.unwrap(), None, &caller).await.unwrap();
    hub.commit(&at, Some(&testing::idem("K")), None, &caller).await.unwrap();
    // The commit statement has no `INSERT INTO directives` then: its statement-level trigger
    // would notify even for no rows.
    let quiet = tokio::time::timeout(Duration::from_millis(300), wakeups.wait()).await;
    assert!(quiet.is_err(), "a commit without post-commit directives wakes nobody");
}

/// This process's workers wake after the writes that queued directives, and only those: a
/// modify or commit that queues none, like most of a shop's traffic, costs the workers no claim.
async fn local_wakeups_follow_queued_directives(test_db: &TestDb) {
    use omniman_core::ext::Extensions;
    use omniman_core::ops::Op;
    use omniman_core::prelude::{Caller, Omniman, OpenSession};
    use omniman_core::testing;
    let channel = |code: &str, config| serde_json::from_value(serde_json::json!({"code": code, "config": config}));
    test_db.upsert_channel(&channel("web", serde_json::json!({})).unwrap(), t(0)).await.unwrap();
    let checked = serde_json::json!({"required_checks_on_commit": ["stock"], "post_commit_directives": ["notify"]});
    test_db.upsert_channel(&channel("pos", checked).unwrap(), t(0)).await.unwrap();
    let mut wakeups = test_db.directive_wakeups();
    let hub = Omniman::new(test_db.db().clone(), Extensions::default());
    let caller = Caller::external("till");
    let batch = Op::parse_batch(&serde_json::json!([{"op": "add_line", "sku": "A", "qty": 1, "unit_price_q": 1}]));
    let batch = batch.unwrap();
    let mut quiet = async |what: &str| {
        let woke = tokio::time::timeout(Duration::from_millis(200), wakeups.wait()).await;
        assert!(woke.is_err(), "{what} wakes nobody");
    };

    let opened = hub.open_session(OpenSession::on(testing::code("web")), &caller).await.unwrap();
    let web = testing::at("web", &opened.session.session_key);
    hub.modify(&web, &batch, None, &caller).await.unwrap();
    hub.commit(&web, Some(&testing::idem("W")), None, &caller).await.unwrap();
    quiet("an open, a modify and a commit that queue no directive").await;

    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();
    let pos = testing::at("pos", &opened.session.session_key);
    hub.modify(&pos, &batch, None, &caller).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), wakeups.wait()).await;
    assert_eq!(woke, Ok(true), "a modify that queues a stock check wakes the workers");
    test_db.enqueue(&[directive()]).await.unwrap();
    let woke = tokio::time::timeout(Duration::from_secs(5), wakeups.wait()).await;
    assert_eq!(woke, Ok(true), "an enqueue wakes the workers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_local_wakeups_follow_queued_directives() {
    local_wakeups_follow_queued_directives(&TestDb::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_local_wakeups_follow_queued_directives() {
    let Some(test_db) = TestDb::postgres().await else { return };
    local_wakeups_follow_queued_directives(&test_db).await;
}
