//! The schema's constraints behave the same on both backends.

mod common;

use common::{storage, t0};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;

/// Insert a channel; returns its id.
macro_rules! channel {
    ($conn:ident, $s:ident, $code:expr) => {
        diesel::insert_into($s::channels::table)
            .values((
                $s::channels::code.eq($code),
                $s::channels::created_at.eq(t0()),
                $s::channels::updated_at.eq(t0()),
            ))
            .returning($s::channels::id)
            .get_result::<i64>(&mut $conn)
            .await
            .unwrap()
    };
}

/// Insert a session; returns the Diesel result (id or error).
macro_rules! session {
    ($conn:ident, $s:ident, $channel:expr, $key:expr, $handle:expr, $state:expr) => {{
        let handle: (Option<&str>, Option<&str>) = $handle;
        diesel::insert_into($s::sessions::table)
            .values((
                $s::sessions::channel_id.eq($channel),
                $s::sessions::session_key.eq($key),
                $s::sessions::handle_type.eq(handle.0),
                $s::sessions::handle_ref.eq(handle.1),
                $s::sessions::state.eq($state),
                $s::sessions::opened_at.eq(t0()),
                $s::sessions::updated_at.eq(t0()),
            ))
            .returning($s::sessions::id)
            .get_result::<i64>(&mut $conn)
            .await
    }};
}

backend_test!(one_open_session_per_handle, |db, conn, s| {
    let pos = channel!(conn, s, "pos");
    let web = channel!(conn, s, "web");
    let table5 = (Some("table"), Some("5"));

    session!(conn, s, pos, "S1", table5, "open").unwrap();
    let dup = session!(conn, s, pos, "S2", table5, "open").unwrap_err();
    let dup = storage(dup);
    assert!(dup.is_unique_violation(), "{dup}");

    // Same handle on another channel, or another handle: fine.
    session!(conn, s, web, "S2", table5, "open").unwrap();
    session!(conn, s, pos, "S3", (Some("table"), Some("6")), "open").unwrap();
    session!(conn, s, pos, "S4", (Some("tab"), Some("5")), "open").unwrap();

    // Committed or abandoned sessions do not hold the handle.
    session!(conn, s, pos, "S5", (Some("table"), Some("7")), "committed").unwrap();
    session!(conn, s, pos, "S6", (Some("table"), Some("7")), "abandoned").unwrap();
    session!(conn, s, pos, "S7", (Some("table"), Some("7")), "open").unwrap();

    // Closing the open one frees the handle.
    let closed = diesel::update(
        s::sessions::table.filter(s::sessions::channel_id.eq(pos)).filter(s::sessions::session_key.eq("S1")),
    )
    .set(s::sessions::state.eq("committed"))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(closed, 1);
    session!(conn, s, pos, "S8", table5, "open").unwrap();

    // A handle with one part missing is never deduplicated.
    session!(conn, s, pos, "S9", (Some("table"), None), "open").unwrap();
    session!(conn, s, pos, "S10", (Some("table"), None), "open").unwrap();
    session!(conn, s, pos, "S11", (None, Some("5")), "open").unwrap();
    session!(conn, s, pos, "S12", (None, Some("5")), "open").unwrap();
    session!(conn, s, pos, "S13", (None, None), "open").unwrap();
    session!(conn, s, pos, "S14", (None, None), "open").unwrap();

    // Reopening a closed session while another holds its handle is refused too.
    let reopen = diesel::update(
        s::sessions::table.filter(s::sessions::channel_id.eq(pos)).filter(s::sessions::session_key.eq("S1")),
    )
    .set(s::sessions::state.eq("open"))
    .execute(&mut conn)
    .await
    .unwrap_err();
    assert!(storage(reopen).is_unique_violation());
});

backend_test!(session_key_unique_per_channel, |db, conn, s| {
    let pos = channel!(conn, s, "pos");
    let web = channel!(conn, s, "web");
    session!(conn, s, pos, "SESS-A", (None, None), "open").unwrap();
    session!(conn, s, web, "SESS-A", (None, None), "open").unwrap();
    let dup = session!(conn, s, pos, "SESS-A", (None, None), "committed").unwrap_err();
    assert!(storage(dup).is_unique_violation());
});

backend_test!(idempotency_scope_and_key_unique, |db, conn, s| {
    let insert = |scope: &'static str, key: &'static str| {
        diesel::insert_into(s::idempotency_keys::table).values((
            s::idempotency_keys::scope.eq(scope),
            s::idempotency_keys::key.eq(key),
            s::idempotency_keys::created_at.eq(t0()),
            s::idempotency_keys::updated_at.eq(t0()),
        ))
    };
    insert("commit:pos", "K1").execute(&mut conn).await.unwrap();
    insert("commit:web", "K1").execute(&mut conn).await.unwrap();
    insert("commit:pos", "K2").execute(&mut conn).await.unwrap();
    let dup = insert("commit:pos", "K1").execute(&mut conn).await.unwrap_err();
    let dup = storage(dup);
    assert!(dup.is_unique_violation(), "{dup}");
    let status: String = s::idempotency_keys::table
        .filter(s::idempotency_keys::key.eq("K2"))
        .select(s::idempotency_keys::status)
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(status, "in_progress");
});

backend_test!(foreign_keys_are_enforced, |db, conn, s| {
    let orphan = session!(conn, s, 4242_i64, "S1", (None, None), "open").unwrap_err();
    let orphan = storage(orphan);
    assert!(orphan.is_foreign_key_violation(), "{orphan}");

    // Deleting an order cascades to its items and events.
    let pos = channel!(conn, s, "pos");
    let order_id: i64 = diesel::insert_into(s::orders::table)
        .values((
            s::orders::ref_.eq("ORD-1"),
            s::orders::channel_id.eq(pos),
            s::orders::session_key.eq("S1"),
            s::orders::status.eq("new"),
            s::orders::snapshot.eq(serde_json::json!({})),
            s::orders::currency.eq("BRL"),
            s::orders::total_q.eq(0_i64),
            s::orders::created_at.eq(t0()),
            s::orders::updated_at.eq(t0()),
        ))
        .returning(s::orders::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    diesel::insert_into(s::order_events::table)
        .values((
            s::order_events::order_id.eq(order_id),
            s::order_events::seq.eq(0),
            s::order_events::type_.eq("created"),
            s::order_events::created_at.eq(t0()),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::insert_into(s::order_items::table)
        .values((
            s::order_items::order_id.eq(order_id),
            s::order_items::line_id.eq("L-1"),
            s::order_items::sku.eq("X"),
            s::order_items::qty_milli.eq(1_000_i64),
            s::order_items::position.eq(0),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let dup_seq = diesel::insert_into(s::order_events::table)
        .values((
            s::order_events::order_id.eq(order_id),
            s::order_events::seq.eq(0),
            s::order_events::type_.eq("status_changed"),
            s::order_events::created_at.eq(t0()),
        ))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(storage(dup_seq).is_unique_violation());
    diesel::delete(s::orders::table.find(order_id)).execute(&mut conn).await.unwrap();
    let left: i64 = s::order_events::table.count().get_result(&mut conn).await.unwrap();
    let items: i64 = s::order_items::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!((left, items), (0, 0));
});

backend_test!(check_constraints, |db, conn, s| {
    let pos = channel!(conn, s, "pos");
    let bad_state = session!(conn, s, pos, "S1", (None, None), "closed").unwrap_err();
    let bad_state = storage(bad_state);
    assert!(bad_state.is_check_violation(), "{bad_state}");
    // The rules of the columns every write sets (domains on PostgreSQL, docs/storage.md).
    let open = session!(conn, s, pos, "S-rules", (None, None), "open").unwrap();
    let target = || s::sessions::table.find(open);
    for refused in [
        diesel::update(target()).set(s::sessions::state.eq("closed")).execute(&mut conn).await,
        diesel::update(target()).set(s::sessions::pricing_policy.eq("free")).execute(&mut conn).await,
        diesel::update(target()).set(s::sessions::edit_policy.eq("frozen")).execute(&mut conn).await,
        diesel::update(target()).set(s::sessions::rev.eq(-1_i64)).execute(&mut conn).await,
        diesel::update(target()).set(s::sessions::version.eq(-1_i64)).execute(&mut conn).await,
        diesel::insert_into(s::idempotency_keys::table)
            .values((
                s::idempotency_keys::scope.eq("commit"),
                s::idempotency_keys::key.eq("k-rules"),
                s::idempotency_keys::status.eq("lost"),
                s::idempotency_keys::created_at.eq(t0()),
                s::idempotency_keys::updated_at.eq(t0()),
            ))
            .execute(&mut conn)
            .await,
    ] {
        let refused = storage(refused.unwrap_err());
        assert!(refused.is_check_violation(), "{refused}");
    }
    let allowed = diesel::update(target())
        .set((s::sessions::state.eq("abandoned"), s::sessions::edit_policy.eq("locked"), s::sessions::rev.eq(3_i64)))
        .execute(&mut conn)
        .await;
    assert_eq!(allowed.unwrap(), 1, "values inside the rules are written");

    let bad_qty = diesel::insert_into(s::order_items::table)
        .values((
            s::order_items::order_id.eq(1_i64),
            s::order_items::line_id.eq("L-1"),
            s::order_items::sku.eq("X"),
            s::order_items::qty_milli.eq(0_i64),
            s::order_items::position.eq(0),
        ))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(storage(bad_qty).is_check_violation());

    let bad_policy = diesel::update(s::channels::table.find(pos))
        .set(s::channels::pricing_policy.eq("free"))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(storage(bad_policy).is_check_violation());

    let bad_order = diesel::update(s::channels::table.find(pos))
        .set(s::channels::display_order.eq(-1))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(storage(bad_order).is_check_violation());

    let bad_directive = diesel::insert_into(s::directives::table)
        .values((
            s::directives::topic.eq("x"),
            s::directives::status.eq("paused"),
            s::directives::available_at.eq(t0()),
            s::directives::created_at.eq(t0()),
            s::directives::updated_at.eq(t0()),
        ))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(storage(bad_directive).is_check_violation());

    let bad_role = diesel::insert_into(s::api_tokens::table)
        .values((
            s::api_tokens::name.eq("t"),
            s::api_tokens::token_hash.eq("h"),
            s::api_tokens::role.eq("root"),
            s::api_tokens::created_at.eq(t0()),
        ))
        .execute(&mut conn)
        .await
        .unwrap_err();
    assert!(storage(bad_role).is_check_violation());

    // Length limits hold on SQLite too (VARCHAR(n) on PostgreSQL, CHECK on SQLite).
    let long_code = diesel::insert_into(s::channels::table)
        .values((
            s::channels::code.eq("c".repeat(65)),
            s::channels::created_at.eq(t0()),
            s::channels::updated_at.eq(t0()),
        ))
        .execute(&mut conn)
        .await;
    assert!(long_code.is_err(), "a 65-character channel code must be refused");
    channel!(conn, s, "c".repeat(64));
});

/// Insert a stock hold; returns the Diesel result.
macro_rules! hold {
    ($conn:ident, $s:ident, $hold_id:expr, $sku:expr, $qty:expr, $status:expr) => {
        diesel::insert_into($s::stock_holds::table)
            .values((
                $s::stock_holds::hold_id.eq($hold_id),
                $s::stock_holds::sku.eq($sku),
                $s::stock_holds::qty_milli.eq($qty),
                $s::stock_holds::status.eq($status),
                $s::stock_holds::created_at.eq(t0()),
                $s::stock_holds::updated_at.eq(t0()),
            ))
            .execute(&mut $conn)
            .await
    };
}

backend_test!(stock_constraints, |db, conn, s| {
    hold!(conn, s, "HOLD-A", "X", 1_i64, "active").unwrap();
    for status in ["released", "fulfilled"] {
        hold!(conn, s, format!("HOLD-{status}"), "X", 1_i64, status).unwrap();
    }

    let taken = storage(hold!(conn, s, "HOLD-A", "Y", 1_i64, "active").unwrap_err());
    assert!(taken.is_unique_violation(), "{taken}");
    for qty in [0_i64, -1_000] {
        let bad_qty = storage(hold!(conn, s, "HOLD-B", "X", qty, "active").unwrap_err());
        assert!(bad_qty.is_check_violation(), "{bad_qty}");
    }
    let bad_status = storage(hold!(conn, s, "HOLD-B", "X", 1_i64, "expired").unwrap_err());
    assert!(bad_status.is_check_violation(), "{bad_status}");
    assert!(hold!(conn, s, "H".repeat(33), "X", 1_i64, "active").is_err(), "hold ids are at most 32 characters");
    assert!(hold!(conn, s, "HOLD-C", "x".repeat(65), 1_i64, "active").is_err(), "SKUs are at most 64 characters");

    // One level per SKU; on hand may be negative.
    let level = |sku: &'static str, on_hand: i64| {
        diesel::insert_into(s::stock_levels::table).values((
            s::stock_levels::sku.eq(sku),
            s::stock_levels::on_hand_milli.eq(on_hand),
            s::stock_levels::updated_at.eq(t0()),
        ))
    };
    level("X", -1_000).execute(&mut conn).await.unwrap();
    let taken = storage(level("X", 1_000).execute(&mut conn).await.unwrap_err());
    assert!(taken.is_unique_violation(), "{taken}");
});

backend_test!(ids_are_never_reused, |db, conn, s| {
    let a = channel!(conn, s, "a");
    let b = channel!(conn, s, "b");
    assert!(b > a);
    diesel::delete(s::channels::table.find(b)).execute(&mut conn).await.unwrap();
    let c = channel!(conn, s, "c");
    assert!(c > b, "ids must only grow (got {c} after deleting {b})");
});

#[derive(QueryableByName)]
struct Pragma {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct PragmaInt {
    #[diesel(sql_type = BigInt)]
    value: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connections_get_the_pragmas() {
    let test_db = omniman_storage::test_support::TestDb::sqlite().await;
    // Several connections, so the pragmas are checked on more than the first one.
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(test_db.get_sqlite().await.unwrap().unwrap());
    }
    for conn in &mut conns {
        let mode: Pragma =
            diesel::sql_query("SELECT journal_mode AS value FROM pragma_journal_mode").get_result(conn).await.unwrap();
        assert_eq!(mode.value, "wal");
        // (pragma, its result column, expected value); synchronous NORMAL = 1.
        for (pragma, column, want) in
            [("busy_timeout", "timeout", 5000), ("foreign_keys", "foreign_keys", 1), ("synchronous", "synchronous", 1)]
        {
            let got: PragmaInt = diesel::sql_query(format!("SELECT {column} AS value FROM pragma_{pragma}"))
                .get_result(conn)
                .await
                .unwrap();
            assert_eq!(got.value, want, "PRAGMA {pragma}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_get_the_statement_timeout() {
    use diesel_async::SimpleAsyncConnection;
    let Some(test_db) = omniman_storage::test_support::TestDb::postgres_with(|config| {
        config.with_statement_timeout(std::time::Duration::from_millis(200))
    })
    .await
    else {
        return;
    };
    let mut conn = test_db.get_pg().await.unwrap().unwrap();
    let setting: Pragma =
        diesel::sql_query("SELECT current_setting('statement_timeout') AS value").get_result(&mut conn).await.unwrap();
    assert_eq!(setting.value, "200ms");
    let slow = conn.batch_execute("SELECT pg_sleep(2)").await;
    assert!(slow.is_err(), "the statement is cancelled after 200 ms");
    // Migrations are exempt (they may take long on big tables): they ran on this database.
    let migrations =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/postgres")).unwrap().count();
    assert_eq!(omniman_storage::applied_migrations(&test_db).await.unwrap().len(), migrations, "every migration");
}

/// A statement that waits on a lock longer than the statement timeout, and a caller that waits
/// for a pooled connection longer than the pool's wait timeout, are both `Unavailable` (the API
/// answers 503 with `Retry-After`), and neither waits much longer than its timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_past_their_timeouts_are_unavailable() {
    use std::time::{Duration, Instant};

    use diesel_async::{AsyncConnection, SimpleAsyncConnection};
    use omniman_core::error::StoreError;
    use omniman_core::ports::SessionStore;

    let Some(test_db) = omniman_storage::test_support::TestDb::postgres_with(|config| {
        config
            .with_statement_timeout(Duration::from_millis(300))
            .with_pool_size(1)
            .with_wait_timeout(Duration::from_millis(300))
    })
    .await
    else {
        return;
    };
    let db = test_db.db();
    let mut locker = diesel_async::AsyncPgConnection::establish(test_db.url()).await.unwrap();
    locker.batch_execute("BEGIN; LOCK TABLE sessions IN ACCESS EXCLUSIVE MODE").await.unwrap();

    let started = Instant::now();
    let err = db.load_session("pos", "S1").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());

    // The one pooled connection is busy: the next caller gives up after the wait timeout.
    let busy = db.clone();
    let holder = tokio::spawn(async move { busy.load_session("pos", "S1").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let err = db.load_session("pos", "S2").await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let _ = holder.await;
    locker.batch_execute("ROLLBACK").await.unwrap();
}
