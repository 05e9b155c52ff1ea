//! The queries on SQLite (see `queries/mod.rs` for what differs per backend).

use crate::schema::sqlite as s;

/// The raw connection.
pub(crate) type Conn = crate::pool::AsyncSqliteConnection;
type Db = diesel::sqlite::Sqlite;

/// A write transaction (see [`immediate`]).
macro_rules! tx {
    ($conn:expr, $body:expr) => {
        $crate::store::sqlite::immediate($conn, $body).await
    };
}

/// Runs `body` in a write transaction: `BEGIN IMMEDIATE` takes the write lock first, so a
/// transaction never has to upgrade a read lock (which SQLite refuses with `SQLITE_BUSY` instead
/// of waiting); `COMMIT`, or `ROLLBACK` when `body` fails. (diesel-async's
/// `immediate_transaction` does the same on its default spawner only.)
pub(crate) async fn immediate<R, E, F>(conn: &mut Conn, body: F) -> Result<R, E>
where
    F: for<'c> AsyncFnOnce(&'c mut Conn) -> Result<R, E>,
    E: From<diesel::result::Error>,
{
    use diesel_async::TransactionManager as _;
    type Manager = <Conn as diesel_async::AsyncConnection>::TransactionManager;
    conn.spawn_blocking(|c| diesel::connection::AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE"))
        .await?;
    match body(&mut *conn).await {
        Ok(value) => {
            Manager::commit_transaction(conn).await?;
            Ok(value)
        }
        Err(e) => {
            Manager::rollback_transaction(conn).await?;
            Err(e)
        }
    }
}

/// One multi-row `INSERT`, run by Diesel's synchronous SQLite connection (diesel-async cannot
/// build a multi-row insert for SQLite); it runs on the same connection and transaction.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let rows = $rows;
        $conn.spawn_blocking(move |c| diesel::RunQueryDsl::execute(diesel::insert_into($table).values(rows), c)).await
    }};
}

/// One multi-row `INSERT … RETURNING $col` (see `insert_rows!`).
macro_rules! insert_rows_returning {
    ($conn:expr, $table:expr, $rows:expr, $col:expr) => {{
        let rows = $rows;
        $conn
            .spawn_blocking(move |c| {
                diesel::RunQueryDsl::get_results(diesel::insert_into($table).values(rows).returning($col), c)
            })
            .await
    }};
}

/// The `SELECT` unchanged: SQLite has no row locks, and the immediate transaction it runs in
/// already holds the database's write lock.
macro_rules! for_update {
    ($query:expr) => {
        $query
    };
}

/// No transaction is ever in flight for a reader: SQLite's one writer commits ids in order.
macro_rules! in_flight_xids {
    () => {
        diesel::dsl::sql::<diesel::sql_types::Text>("''")
    };
}

/// Never asked for (nothing is in flight); 0.
macro_rules! transaction_horizon {
    () => {
        diesel::dsl::sql::<diesel::sql_types::BigInt>("0")
    };
}

/// The claim condition: the oldest ready rows (SQLite has one writer at a time, so a claim,
/// one `UPDATE`, cannot interleave with another).
macro_rules! claimable {
    ($now:expr, $topics:expr, $limit:expr) => {{
        use diesel::sql_types::{BigInt, Bool, Text, TimestamptzSqlite};
        let topics: Option<Vec<String>> = $topics;
        let all = topics.is_none();
        let topics = serde_json::to_string(&topics.unwrap_or_default()).unwrap_or_else(|_| "[]".to_owned());
        diesel::dsl::sql::<Bool>("id IN (SELECT id FROM directives WHERE status = 'queued' AND available_at <= ")
            .bind::<TimestamptzSqlite, _>($now)
            .sql(" AND (")
            .bind::<Bool, _>(all)
            .sql(" OR topic IN (SELECT value FROM json_each(")
            .bind::<Text, _>(topics)
            .sql("))) ORDER BY available_at, id LIMIT ")
            .bind::<BigInt, _>($limit)
            .sql(")")
    }};
}

shared_queries!();
commit_in_statements!();

/// One immediate transaction: per update, the conditional `UPDATE`, preceded by a read of the
/// payload when there is a patch to merge (the merge is done here, key by key, so that it
/// replaces top-level keys and keeps `null`s exactly like PostgreSQL's `payload || patch`;
/// SQLite's `json_patch` would merge nested objects and delete `null` keys).
pub(crate) async fn finish(conn: &mut Conn, updates: Vec<DirectiveUpdate>, now: DateTime<Utc>) -> QueryResult<usize> {
    let now = ts(now);
    tx!(conn, async move |c| -> QueryResult<usize> {
        let mut changed = 0;
        for u in updates {
            let target = s::directives::table
                .filter(s::directives::id.eq(u.id))
                .filter(s::directives::status.eq(DirectiveStatus::Running.as_str()))
                .filter(s::directives::attempts.eq(u.claimed_attempts));
            let common = (
                s::directives::status.eq(u.status.as_str()),
                s::directives::attempts.eq(u.attempts),
                s::directives::available_at.eq(ts(u.available_at)),
                s::directives::last_error.eq(u.last_error),
                s::directives::updated_at.eq(now),
            );
            if u.payload_patch.is_empty() {
                changed += diesel::update(target).set(common).execute(c).await?;
                continue;
            }
            let current: Option<Value> = target.select(s::directives::payload).first(c).await.optional()?;
            let Some(current) = current else { continue };
            let mut payload = match current {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            };
            payload.extend(u.payload_patch);
            changed += diesel::update(target)
                .set((common, s::directives::payload.eq(Value::Object(payload))))
                .execute(c)
                .await?;
        }
        Ok(changed)
    })
}
