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

/// The transactions in flight in the statement's snapshot: `xmax;xip,xip,…` (every transaction
/// from `xmax` on, and those listed).
macro_rules! in_flight_xids {
    () => {
        diesel::dsl::sql::<diesel::sql_types::Text>(
            "(SELECT pg_snapshot_xmax(s)::text || ';' || coalesce((SELECT string_agg(x::text, ',') \
             FROM pg_snapshot_xip(s) AS x), '') FROM pg_current_snapshot() AS s)",
        )
    };
}

/// The next transaction id to be assigned, or a later one: the statement's own (it assigns one).
macro_rules! transaction_horizon {
    () => {
        diesel::dsl::sql::<diesel::sql_types::BigInt>("pg_current_xact_id()::text::bigint")
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

/// The commit as one statement (see [`CommitStatement`]), sent alone: PostgreSQL runs a statement
/// outside an explicit transaction as a transaction of its own, so the commit is one round trip
/// whatever the number of lines and directives. The statement undoes itself when the key is held
/// (`omniman_abort`); when the session changed it wrote nothing. Returns the new order's id.
pub(crate) async fn commit(conn: &mut Conn, plan: std::sync::Arc<CommitPlan>) -> Result<i64, CommitAbort> {
    // Two texts: without directives, no `INSERT INTO directives` at all, since its
    // statement-level trigger would notify the directive workers for nothing.
    let answer = if plan.directives.is_empty() {
        CommitStatement::<false>::new(&plan).get_result(conn).await
    } else {
        CommitStatement::<true>::new(&plan).get_result(conn).await
    };
    let (updated, order_id): (i64, Option<i64>) = match answer {
        Ok(row) => row,
        Err(e) if violates(&e, "orders_ref_key", "orders.ref") => return Err(CommitAbort::RefTaken),
        Err(diesel::result::Error::DatabaseError(_, info)) if info.message() == KEY_TAKEN => {
            return Err(CommitAbort::KeyTaken);
        }
        Err(e) => return Err(e.into()),
    };
    match (updated, order_id) {
        (0, _) => Err(CommitAbort::SessionChanged),
        (_, Some(id)) => Ok(id),
        (_, None) => Err(CommitAbort::Db(diesel::result::Error::NotFound)),
    }
}

/// The message of the error that undoes a commit whose idempotency key is held.
const KEY_TAKEN: &str = "omniman: the idempotency key is held";

/// Every row of a commit in one statement of data-modifying CTEs, each conditional on the one
/// before through the rows it returns:
///
/// * `s`: the session's compare-and-set (`session_cas!`, `session_update_values!`: the same
///   condition and values as a modify);
/// * `o`: the order, one row per updated session (none if the session changed);
/// * `i`, `e`, `d`: its lines, its `created` event and the post-commit directives, from arrays
///   (`unnest`: one bind per column whatever the number of rows); `d` only when `DIRECTIVES`
///   (an insert of no rows would still fire the table's statement-level `NOTIFY` trigger);
/// * `k`: the idempotency record, claimed under `key_rule(KeyRule::Claim, …)` (the rule of
///   `upsert_idempotency`); its answer is the plan's with the new order's id.
///
/// It returns how many sessions were updated and the order's id. When an order was made but the
/// key was not claimed, it fails instead (`omniman_abort(KEY_TAKEN)`), which undoes the session
/// update and the inserts: a statement sent alone is its own transaction. The text depends only on `DIRECTIVES`, so
/// PostgreSQL prepares each of the two once per connection (a static query id, one per
/// `DIRECTIVES`, puts them in the connection's statement cache).
struct CommitStatement<const DIRECTIVES: bool> {
    set: Box<dyn diesel::query_builder::QueryFragment<Db> + Send>,
    cas: Box<dyn diesel::query_builder::QueryFragment<Db> + Send>,
    claim: Box<dyn diesel::query_builder::QueryFragment<Db> + Send>,
    order: OrderValues,
    lines: LineArrays,
    event: (String, String, Value, DateTime<Utc>),
    directives: (Vec<String>, Vec<Value>, Vec<DateTime<Utc>>),
    now: DateTime<Utc>,
    key: IdempotencyValues,
}

/// The order's columns, as bound.
struct OrderValues {
    reference: String,
    channel_id: i64,
    session_key: String,
    handle_type: Option<String>,
    handle_ref: Option<String>,
    external_ref: Option<String>,
    status: String,
    snapshot: Value,
    data: Value,
    currency: String,
    total_q: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// `confirmed_at` … `returned_at`, in column order.
    stamps: [Option<DateTime<Utc>>; 8],
}

/// The order lines, one array per column.
#[derive(Default)]
struct LineArrays {
    line_id: Vec<String>,
    sku: Vec<String>,
    name: Vec<String>,
    qty_milli: Vec<i64>,
    unit_price_q: Vec<i64>,
    line_total_q: Vec<i64>,
    meta: Vec<Value>,
    position: Vec<i32>,
}

impl<const DIRECTIVES: bool> CommitStatement<DIRECTIVES> {
    fn new(plan: &CommitPlan) -> Self {
        use diesel::query_builder::AsChangeset;
        let o = &plan.order;
        let t = &o.timestamps;
        let mut lines = LineArrays::default();
        for (i, line) in o.items.iter().enumerate() {
            lines.line_id.push(line.line_id.clone());
            lines.sku.push(line.sku.clone());
            lines.name.push(line.name.clone());
            lines.qty_milli.push(line.qty.millis());
            lines.unit_price_q.push(line.unit_price_q);
            lines.line_total_q.push(line.line_total_q);
            lines.meta.push(Value::Object(line.meta.clone()));
            lines.position.push(i32::try_from(i).unwrap_or(i32::MAX));
        }
        let directives = crate::store::rows::directive_values(&plan.directives, plan.now);
        let mut d = (
            Vec::with_capacity(directives.len()),
            Vec::with_capacity(directives.len()),
            Vec::with_capacity(directives.len()),
        );
        for v in directives {
            d.0.push(v.topic);
            d.1.push(v.payload);
            d.2.push(v.available_at);
        }
        // The answer is completed with the order's id in SQL (`|| jsonb_build_object(…)`).
        let key = IdempotencyValues::new(&plan.idempotency_record(0));
        CommitStatement {
            set: Box::new(session_update_values!(SessionValues::new(&plan.session)).as_changeset()),
            cas: Box::new(session_cas!(plan.session.id, plan.expected_version)),
            claim: Box::new(key_rule(KeyRule::Claim, key.created_at, key.session_key.clone())),
            order: OrderValues {
                reference: o.reference.clone(),
                channel_id: o.channel_id,
                session_key: o.session_key.clone(),
                handle_type: o.handle_type.clone(),
                handle_ref: o.handle_ref.clone(),
                external_ref: o.external_ref.clone(),
                status: o.status.clone(),
                snapshot: o.snapshot.clone(),
                data: Value::Object(o.data.clone()),
                currency: o.currency.clone(),
                total_q: o.total_q,
                created_at: ts(o.created_at),
                updated_at: ts(o.updated_at),
                stamps: [
                    t.confirmed_at,
                    t.processing_at,
                    t.ready_at,
                    t.dispatched_at,
                    t.delivered_at,
                    t.completed_at,
                    t.cancelled_at,
                    t.returned_at,
                ]
                .map(ts_opt),
            },
            lines,
            event: (
                plan.event.event_type.clone(),
                plan.event.actor.clone(),
                Value::Object(plan.event.payload.clone()),
                ts(plan.event.created_at),
            ),
            directives: d,
            now: ts(plan.now),
            key,
        }
    }
}

impl<const DIRECTIVES: bool> diesel::query_builder::QueryId for CommitStatement<DIRECTIVES> {
    type QueryId = Self;
    // The text is the same for every commit: prepared once per connection.
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const DIRECTIVES: bool> diesel::query_builder::Query for CommitStatement<DIRECTIVES> {
    type SqlType = (diesel::sql_types::BigInt, diesel::sql_types::Nullable<diesel::sql_types::BigInt>);
}

impl<const DIRECTIVES: bool> diesel::query_builder::QueryFragment<Db> for CommitStatement<DIRECTIVES> {
    fn walk_ast<'b>(&'b self, mut out: diesel::query_builder::AstPass<'_, 'b, Db>) -> QueryResult<()> {
        use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
        let o = &self.order;
        out.push_sql("WITH s AS (UPDATE sessions SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.cas.walk_ast(out.reborrow())?;
        out.push_sql(
            " RETURNING id), \
             o AS (INSERT INTO orders (ref, channel_id, session_key, handle_type, handle_ref, external_ref, \
             status, snapshot, data, currency, total_q, created_at, updated_at, confirmed_at, processing_at, \
             ready_at, dispatched_at, delivered_at, completed_at, cancelled_at, returned_at) SELECT ",
        );
        out.push_bind_param::<Text, _>(&o.reference)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&o.channel_id)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&o.session_key)?;
        for v in [&o.handle_type, &o.handle_ref, &o.external_ref] {
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Text>, _>(v)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&o.status)?;
        for v in [&o.snapshot, &o.data] {
            out.push_sql(", ");
            out.push_bind_param::<Jsonb, _>(v)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&o.currency)?;
        out.push_sql(", ");
        out.push_bind_param::<BigInt, _>(&o.total_q)?;
        for v in [&o.created_at, &o.updated_at] {
            out.push_sql(", ");
            out.push_bind_param::<Timestamptz, _>(v)?;
        }
        for v in &o.stamps {
            out.push_sql(", ");
            out.push_bind_param::<Nullable<Timestamptz>, _>(v)?;
        }
        out.push_sql(
            " FROM s RETURNING id), \
             i AS (INSERT INTO order_items (order_id, line_id, sku, name, qty_milli, unit_price_q, line_total_q, \
             meta, position) SELECT o.id, u.* FROM o, unnest(",
        );
        let l = &self.lines;
        for (n, v) in [&l.line_id, &l.sku, &l.name].into_iter().enumerate() {
            if n > 0 {
                out.push_sql(", ");
            }
            out.push_bind_param::<Array<Text>, _>(v)?;
        }
        for v in [&l.qty_milli, &l.unit_price_q, &l.line_total_q] {
            out.push_sql(", ");
            out.push_bind_param::<Array<BigInt>, _>(v)?;
        }
        out.push_sql(", ");
        out.push_bind_param::<Array<Jsonb>, _>(&l.meta)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Integer>, _>(&l.position)?;
        out.push_sql(
            ") AS u), \
             e AS (INSERT INTO order_events (order_id, seq, type, actor, payload, created_at) SELECT o.id, 0, ",
        );
        let (event_type, actor, payload, at) = &self.event;
        out.push_bind_param::<Text, _>(event_type)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(actor)?;
        out.push_sql(", ");
        out.push_bind_param::<Jsonb, _>(payload)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(at)?;
        out.push_sql(" FROM o), ");
        if DIRECTIVES {
            out.push_sql(
                "d AS (INSERT INTO directives (topic, status, payload, attempts, available_at, last_error, \
                 created_at, updated_at) SELECT u.topic, ",
            );
            out.push_bind_param::<Text, _>(DirectiveStatus::Queued.as_str())?;
            out.push_sql(", u.payload, 0, u.available_at, '', ");
            out.push_bind_param::<Timestamptz, _>(&self.now)?;
            out.push_sql(", ");
            out.push_bind_param::<Timestamptz, _>(&self.now)?;
            out.push_sql(" FROM o, unnest(");
            let (topics, payloads, available) = &self.directives;
            out.push_bind_param::<Array<Text>, _>(topics)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Jsonb>, _>(payloads)?;
            out.push_sql(", ");
            out.push_bind_param::<Array<Timestamptz>, _>(available)?;
            out.push_sql(") WITH ORDINALITY AS u(topic, payload, available_at, n) ORDER BY u.n), ");
        }
        out.push_sql(
            "k AS (INSERT INTO idempotency_keys (scope, key, status, response_code, response_body, session_key, \
             expires_at, created_at, updated_at) SELECT ",
        );
        let k = &self.key;
        out.push_bind_param::<Text, _>(&k.scope)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(&k.key)?;
        out.push_sql(", ");
        out.push_bind_param::<Text, _>(k.status)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Integer>, _>(&k.response_code)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Jsonb>, _>(&k.response_body)?;
        out.push_sql(" || jsonb_build_object('order_id', o.id), ");
        out.push_bind_param::<Nullable<Text>, _>(&k.session_key)?;
        out.push_sql(", ");
        out.push_bind_param::<Nullable<Timestamptz>, _>(&k.expires_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&k.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<Timestamptz, _>(&k.created_at)?;
        out.push_sql(
            " FROM o ON CONFLICT (scope, key) DO UPDATE SET status = excluded.status, \
             response_code = excluded.response_code, response_body = excluded.response_body, \
             session_key = excluded.session_key, expires_at = excluded.expires_at, \
             created_at = excluded.created_at, updated_at = excluded.updated_at WHERE ",
        );
        self.claim.walk_ast(out.reborrow())?;
        // `CASE` evaluates `omniman_abort` (volatile) only when its branch is taken.
        out.push_sql(
            " RETURNING 1) \
             SELECT (SELECT count(*) FROM s), CASE WHEN NOT EXISTS (SELECT 1 FROM o) OR EXISTS (SELECT 1 FROM k) \
             THEN (SELECT id FROM o) ELSE omniman_abort('",
        );
        out.push_sql(KEY_TAKEN);
        out.push_sql("') END");
        Ok(())
    }
}
