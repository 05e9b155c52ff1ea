//! How PostgreSQL runs the hot writes (docs/storage.md, "Indexes and plans"): a session write
//! finds its row by id whatever the planner knows about the table, and a modify rewrites the
//! row in place (a HOT update: no index entry is added).

mod common;

use std::sync::Arc;

use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;

use common::t;
use omniman_core::ext::Extensions;
use omniman_core::ops::Op;
use omniman_core::ports::ChannelStore;
use omniman_core::prelude::{Caller, ManualClock, Omniman, OpenSession};
use omniman_core::testing;
use omniman_storage::test_support::TestDb;

#[derive(QueryableByName)]
struct Line {
    #[diesel(sql_type = Text)]
    line: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A fresh database has no statistics, and a prepared statement may keep a generic plan for
/// the life of its connection. The session compare-and-set (`id`, `version`, `state`, as
/// `session_cas!` writes it) must still look the row up by `id`: the plan this test found
/// before used an index led by `state`, so every write read the entries of every open session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_compare_and_set_finds_its_row_by_id() {
    let Some(test_db) = TestDb::postgres().await else { return };
    let mut conn = test_db.get_pg().await.unwrap().unwrap();
    conn.batch_execute(
        "SET plan_cache_mode = force_generic_plan; \
         PREPARE cas(bigint, bigint, text) AS UPDATE sessions SET version = version + 1 \
         WHERE id = $1 AND version = $2 AND state = $3; \
         CREATE FUNCTION pg_temp.plan_of(q text) RETURNS SETOF text LANGUAGE plpgsql AS $$ \
         DECLARE l text; BEGIN FOR l IN EXECUTE 'EXPLAIN ' || q LOOP RETURN NEXT l; END LOOP; END $$;",
    )
    .await
    .unwrap();
    let plan: Vec<Line> = diesel::sql_query("SELECT pg_temp.plan_of('EXECUTE cas(1, 0, ''open'')') AS line")
        .load(&mut conn)
        .await
        .unwrap();
    let plan: Vec<String> = plan.into_iter().map(|l| l.line).collect();
    let conditions: Vec<&String> = plan.iter().filter(|l| l.contains("Index Cond")).collect();
    assert!(
        conditions.len() == 1 && conditions[0].contains("(id = $1)"),
        "the row must be found by id:\n{}",
        plan.join("\n")
    );
}

/// Opens a session on a database of one pooled connection and runs `n` small modifies on it
/// through the service, `updated_at` moving each time.
async fn modifies(n: i64) -> Option<TestDb> {
    let test_db = TestDb::postgres_with(|config| config.with_pool_size(1)).await?;
    let db = test_db.db();
    db.upsert_channel(&serde_json::from_value(json!({"code": "pos"})).unwrap(), t(0)).await.unwrap();
    let clock = Arc::new(ManualClock::at(t(100)));
    let hub = Omniman::new(db.clone(), Extensions::default()).with_clock(clock.clone());
    let caller = Caller::external("till");
    let opened = hub.open_session(OpenSession::on(testing::code("pos")), &caller).await.unwrap();
    let at = testing::at("pos", &opened.session.session_key);
    for i in 0..n {
        clock.advance(chrono::TimeDelta::seconds(1));
        let op = if i == 0 {
            json!({"op": "add_line", "sku": "COFFEE", "qty": 1, "unit_price_q": 10})
        } else {
            json!({"op": "set_data", "path": "notes", "value": format!("n{i}")})
        };
        hub.modify(&at, &Op::parse_batch(&json!([op])).unwrap(), None, &caller).await.unwrap();
    }
    Some(test_db)
}

/// The columns a modify writes (`session_update_values!`) are in no index, neither as a key nor
/// in a partial index's condition, so PostgreSQL can rewrite the row in place: counted on a
/// real run of modifies through the service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modify_updates_the_session_in_place() {
    // Few and small: every version fits in the row's page without pruning the ones before.
    const MODIFIES: i64 = 10;
    let Some(test_db) = modifies(MODIFIES).await else { return };
    // The pool's one connection: the one the modifies ran on.
    let mut conn = test_db.get_pg().await.unwrap().unwrap();
    // The backend's pending statistics reach the shared ones at the end of this statement.
    conn.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
    let mut count = async |column: &str| -> i64 {
        let row: Count =
            diesel::sql_query(format!("SELECT {column} AS n FROM pg_stat_user_tables WHERE relname = 'sessions'"))
                .get_result(&mut conn)
                .await
                .unwrap();
        row.n
    };
    assert_eq!(count("n_tup_upd").await, MODIFIES, "one update per modify");
    assert_eq!(count("n_tup_hot_upd").await, MODIFIES, "every modify rewrites the row in place");
}

/// A modify's `UPDATE` is prepared once per connection and run again: before, Diesel prepared
/// it anew each time (it never caches an `UPDATE` it builds), a round trip of its own and a
/// parse and plan on the server for every modify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modify_is_prepared_once_per_connection() {
    const MODIFIES: i64 = 10;
    let Some(test_db) = modifies(MODIFIES).await else { return };
    let mut conn = test_db.get_pg().await.unwrap().unwrap();
    let prepared: Vec<Count> = diesel::sql_query(
        "SELECT generic_plans + custom_plans AS n FROM pg_prepared_statements \
         WHERE statement LIKE 'UPDATE \"sessions\"%'",
    )
    .load(&mut conn)
    .await
    .unwrap();
    let runs: Vec<i64> = prepared.iter().map(|p| p.n).collect();
    assert_eq!(runs, [MODIFIES], "one prepared statement, run once per modify");
}
