//! The embedded migrations apply, are idempotent, revert cleanly, and match `schema.rs`
//! (every column of every table round-trips through the Diesel definitions).

mod common;

use chrono::{DateTime, Duration, Utc};
use common::t0;
use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use omniman_storage::{Database, StorageConfig, applied_migrations, revert_all_migrations, run_migrations};
use serde_json::{Value, json};

/// Every migration, oldest first.
const ALL: [&str; 7] = [
    "20261122000001",
    "20261122000002",
    "20261201000003",
    "20261206000004",
    "20261206000005",
    "20261206000006",
    "20261206000007",
];

fn all() -> Vec<String> {
    ALL.iter().map(|v| (*v).to_owned()).collect()
}

type ChannelRow = (i64, String, String, String, String, i32, Value, bool, DateTime<Utc>, DateTime<Utc>);
type SessionRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    Value,
    Value,
    Value,
    Value,
    Option<String>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);
type OrderRow = (
    i64,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Value,
    Value,
    String,
    i64,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);
type ItemRow = (i64, i64, String, String, String, i64, i64, i64, Value, i32);
type EventRow = (i64, i64, i32, String, String, Value, DateTime<Utc>);
type DirectiveRow =
    (i64, String, String, Value, i32, DateTime<Utc>, String, DateTime<Utc>, DateTime<Utc>, Option<DateTime<Utc>>);
type KeyRow = (
    i64,
    String,
    String,
    String,
    Option<i32>,
    Option<Value>,
    Option<String>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
    DateTime<Utc>,
);
type TokenRow = (i64, String, String, String, Option<Value>, DateTime<Utc>, Option<DateTime<Utc>>, Option<String>);
type LevelRow = (String, i64, DateTime<Utc>);
type HoldRow = (i64, String, String, i64, Option<String>, String, Option<DateTime<Utc>>, DateTime<Utc>, DateTime<Utc>);

backend_test!(apply_is_idempotent_and_reverts, |db, conn, s| {
    assert_eq!(applied_migrations(db).await.unwrap(), all());
    assert!(run_migrations(db).await.unwrap().is_empty(), "second run applies nothing");

    let mut newest_first = all();
    newest_first.reverse();
    assert_eq!(revert_all_migrations(db).await.unwrap(), newest_first);
    assert!(applied_migrations(db).await.unwrap().is_empty());
    let gone = s::channels::table.count().get_result::<i64>(&mut conn).await;
    assert!(gone.is_err(), "channels must be dropped by down.sql");
    let gone = s::stock_holds::table.count().get_result::<i64>(&mut conn).await;
    assert!(gone.is_err(), "stock_holds must be dropped by down.sql");
    let gone = s::stock_levels::table.count().get_result::<i64>(&mut conn).await;
    assert!(gone.is_err(), "stock_levels must be dropped by down.sql");

    assert_eq!(run_migrations(db).await.unwrap(), all());
    assert_eq!(s::channels::table.count().get_result::<i64>(&mut conn).await.unwrap(), 0);
    assert_eq!(s::stock_holds::table.count().get_result::<i64>(&mut conn).await.unwrap(), 0);
});

backend_test!(every_column_round_trips, |db, conn, s| {
    let t = t0();
    let later = t + Duration::minutes(5);

    // channels: defaults first, then every column.
    let defaults_id: i64 = diesel::insert_into(s::channels::table)
        .values((s::channels::code.eq("defaults"), s::channels::created_at.eq(t), s::channels::updated_at.eq(t)))
        .returning(s::channels::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let (name, pricing, edit, order, config, active): (String, String, String, i32, Value, bool) = s::channels::table
        .find(defaults_id)
        .select((
            s::channels::name,
            s::channels::pricing_policy,
            s::channels::edit_policy,
            s::channels::display_order,
            s::channels::config,
            s::channels::is_active,
        ))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        (name.as_str(), pricing.as_str(), edit.as_str(), order, config, active),
        ("", "internal", "open", 0, json!({}), true)
    );

    let channel = (
        "pos",
        "Point of sale".to_owned(),
        "external".to_owned(),
        "locked".to_owned(),
        7_i32,
        json!({"order_flow": {"initial_status": "new"}, "unknown": [1, 2.5, null]}),
        false,
        t,
        later,
    );
    let channel_id: i64 = diesel::insert_into(s::channels::table)
        .values((
            s::channels::code.eq(channel.0),
            s::channels::name.eq(&channel.1),
            s::channels::pricing_policy.eq(&channel.2),
            s::channels::edit_policy.eq(&channel.3),
            s::channels::display_order.eq(channel.4),
            s::channels::config.eq(&channel.5),
            s::channels::is_active.eq(channel.6),
            s::channels::created_at.eq(channel.7),
            s::channels::updated_at.eq(channel.8),
        ))
        .returning(s::channels::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let row: ChannelRow = s::channels::table.find(channel_id).first(&mut conn).await.unwrap();
    assert_eq!(
        row,
        (
            channel_id,
            channel.0.to_owned(),
            channel.1,
            channel.2,
            channel.3,
            channel.4,
            channel.5,
            channel.6,
            channel.7,
            channel.8
        )
    );

    // sessions
    let items = json!([{"line_id": "L-AAAAAAAA", "sku": "CAFE", "qty": "1.500", "unit_price_q": 333}]);
    let session_id: i64 = diesel::insert_into(s::sessions::table)
        .values((
            s::sessions::channel_id.eq(channel_id),
            s::sessions::session_key.eq("SESS-PPBB2AH5MP84"),
            s::sessions::handle_type.eq(Some("table")),
            s::sessions::handle_ref.eq(Some("Mesa #5 & ção")),
            s::sessions::state.eq("committed"),
            s::sessions::pricing_policy.eq("external"),
            s::sessions::edit_policy.eq("locked"),
            s::sessions::rev.eq(3_i64),
            s::sessions::version.eq(5_i64),
            s::sessions::items.eq(&items),
            s::sessions::data.eq(json!({"checks": {}, "issues": []})),
            s::sessions::pricing.eq(json!({"total_q": 500})),
            s::sessions::pricing_trace.eq(json!([{"line_id": "L-AAAAAAAA"}])),
            s::sessions::commit_token.eq(Some("k".repeat(128))),
            s::sessions::opened_at.eq(t),
            s::sessions::updated_at.eq(later),
            s::sessions::committed_at.eq(Some(later)),
        ))
        .returning(s::sessions::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let row: SessionRow = s::sessions::table.find(session_id).first(&mut conn).await.unwrap();
    assert_eq!(row.1, channel_id);
    assert_eq!(row.3.as_deref(), Some("table"));
    assert_eq!(row.4.as_deref(), Some("Mesa #5 & ção"));
    assert_eq!((row.5.as_str(), row.8, row.9), ("committed", 3, 5));
    assert_eq!(row.10, items);
    assert_eq!(row.14.as_deref().map(str::len), Some(128));
    assert_eq!((row.15, row.16, row.17), (t, later, Some(later)));

    // orders
    let order_id: i64 = diesel::insert_into(s::orders::table)
        .values((
            s::orders::ref_.eq("ORD-20261122-QQPXC63W"),
            s::orders::channel_id.eq(channel_id),
            s::orders::session_key.eq("SESS-PPBB2AH5MP84"),
            s::orders::handle_type.eq(None::<String>),
            s::orders::handle_ref.eq(None::<String>),
            s::orders::external_ref.eq(Some("x".repeat(128))),
            s::orders::status.eq("new"),
            s::orders::snapshot.eq(json!({"_v": 1, "items": [], "data": {}, "pricing": {}, "rev": 3})),
            s::orders::data.eq(json!({})),
            s::orders::currency.eq("BRL"),
            s::orders::total_q.eq(99_999_999_999_i64),
            s::orders::created_at.eq(t),
            s::orders::updated_at.eq(t),
        ))
        .returning(s::orders::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    diesel::update(s::orders::table.find(order_id))
        .set((
            s::orders::status.eq("returned"),
            s::orders::confirmed_at.eq(Some(t)),
            s::orders::processing_at.eq(Some(t)),
            s::orders::ready_at.eq(Some(t)),
            s::orders::dispatched_at.eq(Some(t)),
            s::orders::delivered_at.eq(Some(later)),
            s::orders::completed_at.eq(None::<DateTime<Utc>>),
            s::orders::cancelled_at.eq(None::<DateTime<Utc>>),
            s::orders::returned_at.eq(Some(later)),
            s::orders::updated_at.eq(later),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let row: OrderRow = s::orders::table.find(order_id).first(&mut conn).await.unwrap();
    assert_eq!(row.1, "ORD-20261122-QQPXC63W");
    assert_eq!(row.6.as_deref().map(str::len), Some(128));
    assert_eq!((row.7.as_str(), row.10.as_str(), row.11), ("returned", "BRL", 99_999_999_999));
    assert_eq!(row.8["_v"], json!(1));
    assert_eq!((row.12, row.13), (t, later));
    assert_eq!(
        [row.14, row.15, row.16, row.17, row.18, row.19, row.20, row.21],
        [Some(t), Some(t), Some(t), Some(t), Some(later), None, None, Some(later)]
    );

    // order_items (position keeps the line order)
    let items = [
        ("L-2", "PAO", "Pão", 2_500_i64, -333_i64, -833_i64, json!({"note": "sem sal"}), 0_i32),
        ("L-1", "CAFE", "", 1_000, 0, 0, json!({}), 1),
    ];
    for (line_id, sku, name, qty, price, total, meta, position) in items {
        diesel::insert_into(s::order_items::table)
            .values((
                s::order_items::order_id.eq(order_id),
                s::order_items::line_id.eq(line_id),
                s::order_items::sku.eq(sku),
                s::order_items::name.eq(name),
                s::order_items::qty_milli.eq(qty),
                s::order_items::unit_price_q.eq(price),
                s::order_items::line_total_q.eq(total),
                s::order_items::meta.eq(meta),
                s::order_items::position.eq(position),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let rows: Vec<ItemRow> = s::order_items::table
        .filter(s::order_items::order_id.eq(order_id))
        .order(s::order_items::position)
        .load(&mut conn)
        .await
        .unwrap();
    let lines: Vec<(&str, i64, i64, i64, i32)> = rows.iter().map(|r| (r.2.as_str(), r.5, r.6, r.7, r.9)).collect();
    assert_eq!(lines, vec![("L-2", 2_500, -333, -833, 0), ("L-1", 1_000, 0, 0, 1)]);
    assert_eq!(rows[0].4, "Pão");
    assert_eq!(rows[0].8, json!({"note": "sem sal"}));

    // order_events
    let events = [
        (0_i32, "created", "system", json!({"from_session": "SESS-PPBB2AH5MP84"}), t),
        (1, "status_changed", "api:pos", json!({"old_status": "new", "new_status": "confirmed"}), later),
    ];
    for (seq, kind, actor, payload, at) in events {
        diesel::insert_into(s::order_events::table)
            .values((
                s::order_events::order_id.eq(order_id),
                s::order_events::seq.eq(seq),
                s::order_events::type_.eq(kind),
                s::order_events::actor.eq(actor),
                s::order_events::payload.eq(payload),
                s::order_events::created_at.eq(at),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let events: Vec<EventRow> = s::order_events::table
        .filter(s::order_events::order_id.eq(order_id))
        .order(s::order_events::seq)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!((events[1].2, events[1].3.as_str(), events[1].4.as_str()), (1, "status_changed", "api:pos"));
    assert_eq!(events[1].6, later);

    // directives
    let directive_id: i64 = diesel::insert_into(s::directives::table)
        .values((
            s::directives::topic.eq("stock.hold"),
            s::directives::payload.eq(json!({"session_key": "SESS-PPBB2AH5MP84", "rev": 1})),
            s::directives::available_at.eq(t),
            s::directives::created_at.eq(t),
            s::directives::updated_at.eq(t),
        ))
        .returning(s::directives::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let row: DirectiveRow = s::directives::table.find(directive_id).first(&mut conn).await.unwrap();
    assert_eq!((row.2.as_str(), row.4, row.6.as_str(), row.9), ("queued", 0, "", None));
    assert_eq!(row.5, t);

    // idempotency_keys
    let key_id: i64 = diesel::insert_into(s::idempotency_keys::table)
        .values((
            s::idempotency_keys::scope.eq("commit:pos"),
            s::idempotency_keys::key.eq("k".repeat(128)),
            s::idempotency_keys::session_key.eq(Some("SESS-PPBB2AH5MP84")),
            s::idempotency_keys::expires_at.eq(Some(t + Duration::hours(24))),
            s::idempotency_keys::created_at.eq(t),
            s::idempotency_keys::updated_at.eq(t),
        ))
        .returning(s::idempotency_keys::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    diesel::update(s::idempotency_keys::table.find(key_id))
        .set((
            s::idempotency_keys::status.eq("done"),
            s::idempotency_keys::response_code.eq(Some(201)),
            s::idempotency_keys::response_body.eq(Some(json!({"order_ref": "ORD-1", "status": "committed"}))),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let row: KeyRow = s::idempotency_keys::table.find(key_id).first(&mut conn).await.unwrap();
    assert_eq!((row.3.as_str(), row.4), ("done", Some(201)));
    assert_eq!(row.5, Some(json!({"order_ref": "ORD-1", "status": "committed"})));
    assert_eq!(row.7, Some(t + Duration::hours(24)));

    // api_tokens
    let token_id: i64 = diesel::insert_into(s::api_tokens::table)
        .values((
            s::api_tokens::name.eq("pos-backend"),
            s::api_tokens::token_hash.eq("a".repeat(64)),
            s::api_tokens::role.eq("client"),
            s::api_tokens::channels.eq(Some(json!(["pos", "web"]))),
            s::api_tokens::created_at.eq(t),
            s::api_tokens::rate_limits.eq(Some("modify=300/min,commit=60/min")),
        ))
        .returning(s::api_tokens::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let row: TokenRow = s::api_tokens::table.find(token_id).first(&mut conn).await.unwrap();
    assert_eq!(row.4, Some(json!(["pos", "web"])));
    assert_eq!((row.5, row.6), (t, None));
    assert_eq!(row.7.as_deref(), Some("modify=300/min,commit=60/min"));

    // stock_levels (on hand may be negative)
    for (sku, on_hand) in [("COFFEE", 120_500_i64), ("Pão", -1_000)] {
        diesel::insert_into(s::stock_levels::table)
            .values((
                s::stock_levels::sku.eq(sku),
                s::stock_levels::on_hand_milli.eq(on_hand),
                s::stock_levels::updated_at.eq(t),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let rows: Vec<LevelRow> = s::stock_levels::table.order(s::stock_levels::sku).load(&mut conn).await.unwrap();
    assert_eq!(rows, vec![("COFFEE".to_owned(), 120_500, t), ("Pão".to_owned(), -1_000, t)]);

    // stock_holds: defaults first, then every column.
    let defaults_id: i64 = diesel::insert_into(s::stock_holds::table)
        .values((
            s::stock_holds::hold_id.eq("HOLD-1"),
            s::stock_holds::sku.eq("COFFEE"),
            s::stock_holds::qty_milli.eq(1_i64),
        ))
        .returning(s::stock_holds::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let row: HoldRow = s::stock_holds::table.find(defaults_id).first(&mut conn).await.unwrap();
    assert_eq!((row.4, row.5.as_str(), row.6), (None, "active", None));
    let hold_id: i64 = diesel::insert_into(s::stock_holds::table)
        .values((
            s::stock_holds::hold_id.eq("H".repeat(32)),
            s::stock_holds::sku.eq("COFFEE"),
            s::stock_holds::qty_milli.eq(999_999_999_999_i64),
            s::stock_holds::reference.eq(Some("r".repeat(128))),
            s::stock_holds::status.eq("fulfilled"),
            s::stock_holds::expires_at.eq(Some(later)),
            s::stock_holds::created_at.eq(t),
            s::stock_holds::updated_at.eq(later),
        ))
        .returning(s::stock_holds::id)
        .get_result(&mut conn)
        .await
        .unwrap();
    let row: HoldRow = s::stock_holds::table.find(hold_id).first(&mut conn).await.unwrap();
    assert_eq!(
        row,
        (
            hold_id,
            "H".repeat(32),
            "COFFEE".to_owned(),
            999_999_999_999,
            Some("r".repeat(128)),
            "fulfilled".to_owned(),
            Some(later),
            t,
            later
        )
    );
});

backend_test!(timestamps_compare_chronologically_in_sql, |db, conn, s| {
    // Directive claiming compares `available_at <= now` in SQL: on SQLite that is a text
    // comparison, so the stored format must sort like time, whatever the sub-second digits.
    let base = t0();
    let whole = DateTime::parse_from_rfc3339("2026-11-22T10:30:01Z").unwrap().with_timezone(&Utc);
    let mut instants: Vec<DateTime<Utc>> = [0_i64, 1, 500, 876, 877, 1_000, 61_000, -1, -1_000]
        .iter()
        .map(|ms| base + Duration::milliseconds(*ms))
        .collect();
    instants.push(whole);
    instants.push(whole + Duration::nanoseconds(1_000));
    for (i, at) in instants.iter().enumerate() {
        diesel::insert_into(s::directives::table)
            .values((
                s::directives::topic.eq(format!("t{i}")),
                s::directives::available_at.eq(at),
                s::directives::created_at.eq(at),
                s::directives::updated_at.eq(at),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let mut expected: Vec<(DateTime<Utc>, String)> =
        instants.iter().enumerate().map(|(i, at)| (*at, format!("t{i}"))).collect();
    expected.sort();
    let sorted: Vec<String> = s::directives::table
        .order((s::directives::available_at, s::directives::id))
        .select(s::directives::topic)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(sorted, expected.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>());
    for (cut, _) in &expected {
        let due: i64 = s::directives::table
            .filter(s::directives::available_at.le(cut))
            .count()
            .get_result(&mut conn)
            .await
            .unwrap();
        let want = expected.iter().filter(|(at, _)| at <= cut).count();
        assert_eq!(usize::try_from(due).unwrap(), want, "available_at <= {cut}");
    }

    // A timestamp filled in by the database's default compares correctly with bound values.
    let before = Utc::now() - Duration::seconds(1);
    diesel::insert_into(s::channels::table).values(s::channels::code.eq("defaulted")).execute(&mut conn).await.unwrap();
    let after = Utc::now() + Duration::seconds(1);
    let (created, updated): (DateTime<Utc>, DateTime<Utc>) = s::channels::table
        .filter(s::channels::code.eq("defaulted"))
        .filter(s::channels::created_at.between(before, after))
        .select((s::channels::created_at, s::channels::updated_at))
        .first(&mut conn)
        .await
        .unwrap();
    assert!(before <= created && created <= after && created == updated);
});

#[tokio::test]
async fn sqlite_in_memory_database_works_with_one_connection() {
    use omniman_storage::schema::sqlite as s;
    let config = StorageConfig::new("sqlite::memory:").with_pool_size(8);
    let db = Database::connect(&config).await.unwrap();
    assert_eq!(run_migrations(&db).await.unwrap(), all());
    let mut conn = db.get_sqlite().await.unwrap().unwrap();
    diesel::insert_into(s::channels::table)
        .values((s::channels::code.eq("mem"), s::channels::created_at.eq(t0()), s::channels::updated_at.eq(t0())))
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    // The same (only) connection comes back with the data.
    let mut conn = db.get_sqlite().await.unwrap().unwrap();
    let n: i64 = s::channels::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(n, 1);
    let Database::Sqlite(pool, _) = &db else { unreachable!() };
    assert_eq!(pool.status().max_size, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_migrations_apply_once() {
    let Some(test_db) = omniman_storage::test_support::TestDb::postgres().await else {
        return;
    };
    revert_all_migrations(&test_db).await.unwrap();
    let mut handles = Vec::new();
    for _ in 0..4 {
        let url = test_db.url().to_owned();
        handles.push(tokio::spawn(async move {
            let db = Database::connect(&StorageConfig::new(url).with_pool_size(1)).await.unwrap();
            run_migrations(&db).await.unwrap()
        }));
    }
    let mut applied = Vec::new();
    for handle in handles {
        applied.extend(handle.await.unwrap());
    }
    assert_eq!(applied, all(), "exactly one process applies the migration");
}

#[tokio::test]
async fn test_db_works_on_a_current_thread_runtime() {
    let sqlite = omniman_storage::test_support::TestDb::sqlite().await;
    assert_eq!(applied_migrations(&sqlite).await.unwrap(), all());
    let path = sqlite.url().trim_start_matches("sqlite://").to_owned();
    assert!(std::path::Path::new(&path).exists());
    drop(sqlite);
    assert!(!std::path::Path::new(&path).exists(), "the temp file is removed on drop");

    if let Some(pg) = omniman_storage::test_support::TestDb::postgres().await {
        assert_eq!(applied_migrations(&pg).await.unwrap(), all());
    }
}
