//! The queries on PostgreSQL (see `queries.rs` for what differs per backend).

use crate::schema::pg as s;

/// The raw connection.
pub(crate) type Conn = diesel_async::AsyncPgConnection;
type Db = diesel::pg::Pg;

/// A write transaction (`BEGIN` … `COMMIT`, `ROLLBACK` on error).
macro_rules! tx {
    ($conn:expr, $body:expr) => {
        diesel_async::AsyncConnection::transaction($conn, $body).await
    };
}

/// One multi-row `INSERT`.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {
        diesel::insert_into($table).values($rows).execute($conn).await
    };
}

/// One multi-row `INSERT … RETURNING $col`.
macro_rules! insert_rows_returning {
    ($conn:expr, $table:expr, $rows:expr, $col:expr) => {
        diesel::insert_into($table).values($rows).returning($col).get_results($conn).await
    };
}

/// A `SELECT … FOR UPDATE`: the rows read stay locked until the transaction ends.
macro_rules! for_update {
    ($query:expr) => {
        $query.for_update()
    };
}

/// The claim condition: the oldest ready rows no other claimer holds.
macro_rules! claimable {
    ($now:expr, $topics:expr, $limit:expr) => {{
        use diesel::sql_types::{Array, BigInt, Bool, Text, Timestamptz};
        let topics: Option<Vec<String>> = $topics;
        diesel::dsl::sql::<Bool>("id IN (SELECT id FROM directives WHERE status = 'queued' AND available_at <= ")
            .bind::<Timestamptz, _>($now)
            .sql(" AND (")
            .bind::<Bool, _>(topics.is_none())
            .sql(" OR topic = ANY(")
            .bind::<Array<Text>, _>(topics.unwrap_or_default())
            .sql(")) ORDER BY available_at, id LIMIT ")
            .bind::<BigInt, _>($limit)
            .sql(" FOR UPDATE SKIP LOCKED)")
    }};
}

shared_queries!();

/// One transaction, one statement per update: conditional on `running` and the claim's
/// attempts; the patch is merged key by key with `payload || patch`.
pub(crate) async fn finish(conn: &mut Conn, updates: Vec<DirectiveUpdate>, now: DateTime<Utc>) -> QueryResult<usize> {
    use diesel::PgJsonbExpressionMethods;
    let now = ts(now);
    tx!(conn, async move |c| -> QueryResult<usize> {
        let mut changed = 0;
        for u in updates {
            let target = s::directives::table
                .filter(s::directives::id.eq(u.id))
                .filter(s::directives::status.eq("running"))
                .filter(s::directives::attempts.eq(u.claimed_attempts));
            let common = (
                s::directives::status.eq(u.status.as_str()),
                s::directives::attempts.eq(u.attempts),
                s::directives::available_at.eq(ts(u.available_at)),
                s::directives::last_error.eq(u.last_error),
                s::directives::updated_at.eq(now),
            );
            changed += if u.payload_patch.is_empty() {
                diesel::update(target).set(common).execute(c).await?
            } else {
                let merged = s::directives::payload.concat(Value::Object(u.payload_patch));
                diesel::update(target).set((common, s::directives::payload.eq(merged))).execute(c).await?
            };
        }
        Ok(changed)
    })
}
