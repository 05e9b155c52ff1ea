//! The queries on PostgreSQL (see `queries/mod.rs` for what differs per backend).

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

/// 1 statement for the whole batch: `UPDATE … FROM unnest(…)`, each row conditional on
/// `running` and its claim's attempts; the patch is merged key by key with `payload || patch`
/// (an empty patch leaves the payload as it is). One statement instead of one per directive is
/// what lets a worker record 100 outcomes in one round trip.
pub(crate) async fn finish(conn: &mut Conn, updates: Vec<DirectiveUpdate>, now: DateTime<Utc>) -> QueryResult<usize> {
    use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Text, Timestamptz};
    // `UPDATE … FROM` would apply one of several rows for an id, unspecified which; the port
    // (and the other stores) apply updates in order, so the first for an id wins.
    let mut seen = std::collections::HashSet::with_capacity(updates.len());
    let updates: Vec<DirectiveUpdate> = updates.into_iter().filter(|u| seen.insert(u.id)).collect();
    if updates.is_empty() {
        return Ok(0);
    }
    let n = updates.len();
    let (mut ids, mut claimed, mut statuses, mut attempts) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut available, mut errors, mut patches) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for u in updates {
        ids.push(u.id);
        claimed.push(u.claimed_attempts);
        statuses.push(u.status.as_str());
        attempts.push(u.attempts);
        available.push(ts(u.available_at));
        errors.push(u.last_error);
        patches.push(Value::Object(u.payload_patch));
    }
    diesel::sql_query(
        "UPDATE directives AS d SET status = u.status, attempts = u.attempts, \
         available_at = u.available_at, last_error = u.last_error, updated_at = $1, \
         payload = d.payload || u.patch \
         FROM unnest($2, $3, $4, $5, $6, $7, $8) \
         AS u(id, claimed, status, attempts, available_at, last_error, patch) \
         WHERE d.id = u.id AND d.status = 'running' AND d.attempts = u.claimed",
    )
    .bind::<Timestamptz, _>(ts(now))
    .bind::<Array<BigInt>, _>(ids)
    .bind::<Array<Integer>, _>(claimed)
    .bind::<Array<Text>, _>(statuses)
    .bind::<Array<Integer>, _>(attempts)
    .bind::<Array<Timestamptz>, _>(available)
    .bind::<Array<Text>, _>(errors)
    .bind::<Array<Jsonb>, _>(patches)
    .execute(conn)
    .await
}
