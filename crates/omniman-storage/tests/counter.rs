//! The statement counter counts what a scope runs, without transaction control.

mod common;

use common::t0;
use diesel::prelude::*;
use diesel_async::{AsyncConnection, RunQueryDsl};
use omniman_storage::StatementCounter;

backend_test!(a_select_counts_one, |db, conn, s| {
    drop(conn);
    let counter = StatementCounter::new();
    let n = counter
        .scope(async {
            let mut conn = checkout!();
            s::channels::table.count().get_result::<i64>(&mut conn).await.unwrap()
        })
        .await;
    assert_eq!(n, 0);
    assert_eq!(counter.count(), 1, "{:#?}", counter.statements());
    assert!(counter.statements()[0].to_uppercase().contains("SELECT"));
});

backend_test!(transaction_control_is_not_counted, |db, conn, s| {
    drop(conn);
    // The count-only counter (the server's per-request metric) reads only each statement's
    // head, and must count exactly what the full one does.
    for (counter, code) in [(StatementCounter::new(), "pos"), (StatementCounter::count_only(), "web")] {
        counter
            .scope(async {
                let mut conn = checkout!();
                conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                    diesel::insert_into(s::channels::table)
                        .values((
                            s::channels::code.eq(code),
                            s::channels::created_at.eq(t0()),
                            s::channels::updated_at.eq(t0()),
                        ))
                        .execute(conn)
                        .await?;
                    // A nested transaction (SAVEPOINT / RELEASE) is not counted either.
                    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                        s::channels::table.count().get_result::<i64>(conn).await
                    })
                    .await
                })
                .await
                .unwrap();
                // A rolled-back transaction: the failing statement counts, ROLLBACK does not.
                let failed = conn
                    .transaction::<(), diesel::result::Error, _>(async |conn| {
                        diesel::insert_into(s::channels::table)
                            .values((
                                s::channels::code.eq(code),
                                s::channels::created_at.eq(t0()),
                                s::channels::updated_at.eq(t0()),
                            ))
                            .execute(conn)
                            .await?;
                        Ok(())
                    })
                    .await;
                assert!(failed.is_err());
            })
            .await;
        assert_eq!(counter.count(), 3, "{code}: {:#?}", counter.statements());
    }
});

backend_test!(pool_status_tells_checked_out_and_idle_connections, |db, conn, s| {
    let before = db.pool_status();
    assert!(before.max_size >= 2, "{before:?}");
    assert_eq!((before.in_use(), before.waiting), (1, 0), "`conn` is out: {before:?}");
    let second = checkout!();
    assert_eq!(db.pool_status().in_use(), 2);
    drop((conn, second));
    let after = db.pool_status();
    assert_eq!(after.in_use(), 0, "{after:?}");
    assert_eq!(after.idle, after.open, "returned connections wait in the pool: {after:?}");
});

backend_test!(only_the_scope_is_counted, |db, conn, s| {
    // `conn` was checked out outside any scope: never counted.
    s::channels::table.count().get_result::<i64>(&mut conn).await.unwrap();
    drop(conn);

    let a = StatementCounter::new();
    a.scope(async {
        let mut conn = checkout!();
        s::channels::table.count().get_result::<i64>(&mut conn).await.unwrap();
        s::sessions::table.count().get_result::<i64>(&mut conn).await.unwrap();
    })
    .await;
    assert_eq!(a.count(), 2);

    // The connection goes back to the pool and is reused (the pool may check it with a
    // query of its own): neither the old nor the new scope counts that.
    let b = StatementCounter::new();
    b.scope(async {
        let conn = checkout!();
        drop(conn);
    })
    .await;
    assert_eq!((a.count(), b.count()), (2, 0));

    // Outside any scope the reused connection counts into nothing.
    let mut conn = checkout!();
    s::channels::table.count().get_result::<i64>(&mut conn).await.unwrap();
    assert_eq!((a.count(), b.count()), (2, 0));
    drop(conn);

    let (n, c) = StatementCounter::measure(async {
        let mut conn = checkout!();
        s::orders::table.count().get_result::<i64>(&mut conn).await.unwrap()
    })
    .await;
    assert_eq!((n, c.count()), (0, 1));
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_batch_insert_is_one_statement_on_the_blocking_connection() {
    // diesel-async cannot express a multi-row INSERT on SQLite; Diesel's own SQLite connection
    // can, through `spawn_blocking` on the wrapped connection. It is still counted, and still
    // inside the surrounding transaction.
    use omniman_storage::schema::sqlite as s;
    let test_db = omniman_storage::test_support::TestDb::sqlite().await;
    let counter = StatementCounter::new();
    counter
        .scope(async {
            let mut conn = test_db.get_sqlite().await.unwrap().unwrap();
            conn.transaction::<_, diesel::result::Error, _>(async |conn| {
                let rows: Vec<_> = (0..3)
                    .map(|i| {
                        (
                            s::channels::code.eq(format!("c{i}")),
                            s::channels::created_at.eq(t0()),
                            s::channels::updated_at.eq(t0()),
                        )
                    })
                    .collect();
                conn.spawn_blocking(move |sync_conn| {
                    diesel::RunQueryDsl::execute(diesel::insert_into(s::channels::table).values(rows), sync_conn)
                })
                .await
            })
            .await
            .unwrap();
        })
        .await;
    assert_eq!(counter.count(), 1, "{:#?}", counter.statements());
    let mut conn = test_db.get_sqlite().await.unwrap().unwrap();
    let n: i64 = s::channels::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(n, 3);
}
