//! The query logic, written once and instantiated per backend.
//!
//! `shared_queries!()` expands into the backend modules (`pg.rs`, `sqlite.rs`). Each of them
//! first brings into scope what differs between the backends:
//!
//! * `s`: the schema module (`schema::pg` / `schema::sqlite`: SQL types of JSON and time);
//! * `Conn` and `Db`: the raw connection and the Diesel backend;
//! * `tx!(conn, async move |c| …)`: a write transaction (PostgreSQL: `BEGIN`; SQLite:
//!   `BEGIN IMMEDIATE`, so that a transaction never has to upgrade a read lock);
//! * `insert_rows!` / `insert_rows_returning!`: one multi-row `INSERT` (SQLite: through
//!   Diesel's synchronous connection, which can batch; diesel-async cannot on SQLite);
//! * `claimable!(now, topics, limit)`: the claim's `id IN (SELECT …)` condition (Diesel cannot
//!   type a subquery on the table being updated): PostgreSQL adds `FOR UPDATE SKIP LOCKED` and
//!   matches topics with `= ANY(array)`; SQLite (whose single writer already serializes claims)
//!   matches them through `json_each`;
//! * `for_update!(query)`: a `SELECT` that locks the rows it reads until the transaction ends
//!   (PostgreSQL: `FOR UPDATE`; SQLite: unchanged, the immediate transaction already holds the
//!   database's write lock).
//!
//! Every function runs exactly the statements its doc comment counts (transaction control
//! excluded); the statement-budget tests hold them to it.

/// The values of every session column but `id`, for an insert.
macro_rules! session_insert_values {
    ($v:expr) => {{
        let v = $v;
        (
            s::sessions::channel_id.eq(v.channel_id),
            s::sessions::session_key.eq(v.session_key),
            s::sessions::handle_type.eq(v.handle_type),
            s::sessions::handle_ref.eq(v.handle_ref),
            s::sessions::state.eq(v.state),
            s::sessions::pricing_policy.eq(v.pricing_policy),
            s::sessions::edit_policy.eq(v.edit_policy),
            s::sessions::rev.eq(v.rev),
            s::sessions::version.eq(v.version),
            s::sessions::items.eq(v.items),
            s::sessions::data.eq(v.data),
            s::sessions::pricing.eq(v.pricing),
            s::sessions::pricing_trace.eq(v.pricing_trace),
            s::sessions::commit_token.eq(v.commit_token),
            s::sessions::opened_at.eq(v.opened_at),
            s::sessions::updated_at.eq(v.updated_at),
            s::sessions::committed_at.eq(v.committed_at),
        )
    }};
}

/// The values of every mutable session column, for an update.
macro_rules! session_update_values {
    ($v:expr) => {{
        let v = $v;
        (
            s::sessions::handle_type.eq(v.handle_type),
            s::sessions::handle_ref.eq(v.handle_ref),
            s::sessions::state.eq(v.state),
            s::sessions::pricing_policy.eq(v.pricing_policy),
            s::sessions::edit_policy.eq(v.edit_policy),
            s::sessions::rev.eq(v.rev),
            s::sessions::version.eq(v.version),
            s::sessions::items.eq(v.items),
            s::sessions::data.eq(v.data),
            s::sessions::pricing.eq(v.pricing),
            s::sessions::pricing_trace.eq(v.pricing_trace),
            s::sessions::commit_token.eq(v.commit_token),
            s::sessions::updated_at.eq(v.updated_at),
            s::sessions::committed_at.eq(v.committed_at),
        )
    }};
}

/// Newest-first keyset paging on `($at, $id)`: filter past the cursor, order in the cursor's
/// direction, fetch one more row than the page.
macro_rules! keyset {
    ($query:expr, $page:expr, $at:expr, $id:expr) => {{
        let page: &omniman_core::page::PageRequest = $page;
        let query = $query;
        let query = match page.cursor {
            None => query.order(($at.desc(), $id.desc())),
            Some(c) if c.direction == omniman_core::page::Direction::Forward => query
                .filter($at.lt(c.created_at).or($at.eq(c.created_at).and($id.lt(c.id))))
                .order(($at.desc(), $id.desc())),
            Some(c) => query
                .filter($at.gt(c.created_at).or($at.eq(c.created_at).and($id.gt(c.id))))
                .order(($at.asc(), $id.asc())),
        };
        query.limit(i64::try_from(page.fetch_limit()).unwrap_or(i64::MAX))
    }};
}

/// The columns of an order summary (see `rows::SummaryRow`).
macro_rules! summary_columns {
    () => {
        (
            s::orders::id,
            s::orders::ref_,
            s::orders::channel_id,
            s::channels::code,
            s::orders::status,
            s::orders::currency,
            s::orders::total_q,
            diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "(SELECT COUNT(*) FROM order_items WHERE order_items.order_id = orders.id)",
            ),
            s::orders::handle_type,
            s::orders::handle_ref,
            s::orders::external_ref,
            s::orders::created_at,
            s::orders::updated_at,
        )
    };
}

/// The holds that count against a SKU's level at `$now`: `active` and not expired.
macro_rules! live_holds {
    ($sku:expr, $now:expr) => {
        s::stock_holds::table
            .filter(s::stock_holds::sku.eq($sku))
            .filter(s::stock_holds::status.eq("active"))
            .filter(s::stock_holds::expires_at.is_null().or(s::stock_holds::expires_at.gt($now)))
    };
}

/// `SUM(qty_milli)` of the selected holds, 0 when there are none. PostgreSQL sums `bigint`
/// into `numeric`: the cast brings it back to `bigint` on both backends.
macro_rules! held_sum {
    () => {
        diesel::dsl::sql::<diesel::sql_types::BigInt>("CAST(COALESCE(SUM(qty_milli), 0) AS BIGINT)")
    };
}

/// Expands into the query functions of one backend (see the module documentation).
macro_rules! shared_queries {
    () => {
        use chrono::{DateTime, Utc};
        use diesel::upsert::excluded;
        use diesel::{BoolExpressionMethods, ExpressionMethods, IntoSql, OptionalExtension, QueryDsl, QueryResult};
        use diesel_async::RunQueryDsl;
        use omniman_core::commit::CommitPlan;
        use omniman_core::directive::DirectiveUpdate;
        use omniman_core::order::{NewEvent, TransitionPlan};
        use omniman_core::page::PageRequest;
        use omniman_core::ports::{DirectiveFilter, OrderFilter, SessionFilter};
        use serde_json::Value;

        use crate::store::CommitAbort;
        use crate::store::rows::{
            ChannelRow, ChannelValues, DirectiveRow, DirectiveValues, EventRow, HoldValues, IdempotencyRow,
            IdempotencyValues, OrderRow, SessionRow, SessionValues, SummaryRow, TokenRow, TokenValues, ts, ts_opt,
            violates,
        };

        // ----- channels -----------------------------------------------------------------

        /// 1 statement.
        pub(crate) async fn channel_by_code(conn: &mut Conn, code: &str) -> QueryResult<Option<ChannelRow>> {
            s::channels::table
                .filter(s::channels::code.eq(code))
                .select(s::channels::all_columns)
                .first(conn)
                .await
                .optional()
        }

        /// 1 statement.
        pub(crate) async fn list_channels(conn: &mut Conn) -> QueryResult<Vec<ChannelRow>> {
            s::channels::table
                .select(s::channels::all_columns)
                .order((s::channels::display_order.asc(), s::channels::id.asc()))
                .load(conn)
                .await
        }

        /// 1 statement: `INSERT … ON CONFLICT (code) DO UPDATE … RETURNING`.
        pub(crate) async fn upsert_channel(conn: &mut Conn, v: ChannelValues) -> QueryResult<ChannelRow> {
            use s::channels::dsl as c;
            diesel::insert_into(c::channels)
                .values((
                    c::code.eq(v.code),
                    c::name.eq(v.name),
                    c::pricing_policy.eq(v.pricing_policy),
                    c::edit_policy.eq(v.edit_policy),
                    c::display_order.eq(v.display_order),
                    c::config.eq(v.config),
                    c::is_active.eq(v.is_active),
                    c::created_at.eq(v.now),
                    c::updated_at.eq(v.now),
                ))
                .on_conflict(c::code)
                .do_update()
                .set((
                    c::name.eq(excluded(c::name)),
                    c::pricing_policy.eq(excluded(c::pricing_policy)),
                    c::edit_policy.eq(excluded(c::edit_policy)),
                    c::display_order.eq(excluded(c::display_order)),
                    c::config.eq(excluded(c::config)),
                    c::is_active.eq(excluded(c::is_active)),
                    c::updated_at.eq(excluded(c::updated_at)),
                ))
                .returning(s::channels::all_columns)
                .get_result(conn)
                .await
        }

        // ----- sessions -----------------------------------------------------------------

        /// 1 statement (sessions JOIN channels).
        pub(crate) async fn load_session(
            conn: &mut Conn,
            channel_code: &str,
            session_key: &str,
        ) -> QueryResult<Option<(ChannelRow, SessionRow)>> {
            s::sessions::table
                .inner_join(s::channels::table)
                .filter(s::channels::code.eq(channel_code))
                .filter(s::sessions::session_key.eq(session_key))
                .select((s::channels::all_columns, s::sessions::all_columns))
                .first(conn)
                .await
                .optional()
        }

        /// 1 statement.
        pub(crate) async fn sessions_by_key(
            conn: &mut Conn,
            session_key: &str,
        ) -> QueryResult<Vec<(SessionRow, String)>> {
            s::sessions::table
                .inner_join(s::channels::table)
                .filter(s::sessions::session_key.eq(session_key))
                .select((s::sessions::all_columns, s::channels::code))
                .order(s::sessions::id.asc())
                .load(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn open_session_by_handle(
            conn: &mut Conn,
            channel_id: i64,
            handle_type: &str,
            handle_ref: &str,
        ) -> QueryResult<Option<(SessionRow, String)>> {
            s::sessions::table
                .inner_join(s::channels::table)
                .filter(s::sessions::channel_id.eq(channel_id))
                .filter(s::sessions::state.eq("open"))
                .filter(s::sessions::handle_type.eq(handle_type))
                .filter(s::sessions::handle_ref.eq(handle_ref))
                .select((s::sessions::all_columns, s::channels::code))
                .first(conn)
                .await
                .optional()
        }

        /// 1 statement: the new id.
        pub(crate) async fn insert_session(conn: &mut Conn, v: SessionValues) -> QueryResult<i64> {
            diesel::insert_into(s::sessions::table)
                .values(session_insert_values!(v))
                .returning(s::sessions::id)
                .get_result(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn session_key_exists(
            conn: &mut Conn,
            channel_id: i64,
            session_key: &str,
        ) -> QueryResult<bool> {
            diesel::select(diesel::dsl::exists(
                s::sessions::table
                    .filter(s::sessions::channel_id.eq(channel_id))
                    .filter(s::sessions::session_key.eq(session_key)),
            ))
            .get_result(conn)
            .await
        }

        /// 1 statement: the compare-and-set on `version` and `state = 'open'`.
        async fn update_session_row(
            conn: &mut Conn,
            id: i64,
            expected_version: i64,
            v: SessionValues,
        ) -> QueryResult<usize> {
            diesel::update(
                s::sessions::table
                    .filter(s::sessions::id.eq(id))
                    .filter(s::sessions::version.eq(expected_version))
                    .filter(s::sessions::state.eq("open")),
            )
            .set(session_update_values!(v))
            .execute(conn)
            .await
        }

        /// 1 statement, plus 1 multi-row insert when there are directives (in one transaction).
        pub(crate) async fn update_session(
            conn: &mut Conn,
            id: i64,
            expected_version: i64,
            v: SessionValues,
            directives: Vec<DirectiveValues>,
        ) -> QueryResult<bool> {
            if directives.is_empty() {
                return Ok(update_session_row(conn, id, expected_version, v).await? == 1);
            }
            tx!(conn, async move |c| -> QueryResult<bool> {
                if update_session_row(c, id, expected_version, v).await? == 0 {
                    return Ok(false);
                }
                insert_directives(c, directives).await?;
                Ok(true)
            })
        }

        /// 1 statement.
        pub(crate) async fn list_sessions(
            conn: &mut Conn,
            filter: SessionFilter,
            page: PageRequest,
        ) -> QueryResult<Vec<(SessionRow, String)>> {
            let mut query = s::sessions::table
                .inner_join(s::channels::table)
                .select((s::sessions::all_columns, s::channels::code))
                .into_boxed::<Db>();
            if let Some(ids) = filter.channel_ids {
                query = query.filter(s::sessions::channel_id.eq_any(ids));
            }
            if let Some(state) = filter.state {
                query = query.filter(s::sessions::state.eq(state.as_str()));
            }
            if let Some(handle_type) = filter.handle_type {
                query = query.filter(s::sessions::handle_type.eq(handle_type));
            }
            if let Some(handle_ref) = filter.handle_ref {
                query = query.filter(s::sessions::handle_ref.eq(handle_ref));
            }
            keyset!(query, &page, s::sessions::opened_at, s::sessions::id).load(conn).await
        }

        /// 1 statement.
        pub(crate) async fn abandon_idle_sessions(
            conn: &mut Conn,
            idle_since: DateTime<Utc>,
            now: DateTime<Utc>,
        ) -> QueryResult<usize> {
            diesel::update(
                s::sessions::table.filter(s::sessions::state.eq("open")).filter(s::sessions::updated_at.lt(idle_since)),
            )
            .set((
                s::sessions::state.eq("abandoned"),
                s::sessions::version.eq(s::sessions::version + 1),
                s::sessions::updated_at.eq(ts(now)),
            ))
            .execute(conn)
            .await
        }

        // ----- orders -------------------------------------------------------------------

        /// One transaction of at most 6 statements: conditional session update, order insert,
        /// one multi-row item insert, the `created` event, one multi-row directive insert (when
        /// there are directives) and the idempotency upsert. Returns the new order's id.
        pub(crate) async fn commit(conn: &mut Conn, plan: CommitPlan) -> Result<i64, CommitAbort> {
            tx!(conn, async move |c| -> Result<i64, CommitAbort> {
                let session = SessionValues::new(&plan.session);
                if update_session_row(c, plan.session.id, plan.expected_version, session).await? == 0 {
                    return Err(CommitAbort::SessionChanged);
                }
                let order_id = match insert_order(c, &plan).await {
                    Ok(id) => id,
                    Err(e) if violates(&e, "orders_ref_key", "orders.ref") => return Err(CommitAbort::RefTaken),
                    Err(e) => return Err(e.into()),
                };
                let items: Vec<_> = plan
                    .order
                    .items
                    .iter()
                    .enumerate()
                    .map(|(position, i)| {
                        (
                            s::order_items::order_id.eq(order_id),
                            s::order_items::line_id.eq(i.line_id.clone()),
                            s::order_items::sku.eq(i.sku.clone()),
                            s::order_items::name.eq(i.name.clone()),
                            s::order_items::qty_milli.eq(i.qty.millis()),
                            s::order_items::unit_price_q.eq(i.unit_price_q),
                            s::order_items::line_total_q.eq(i.line_total_q),
                            s::order_items::meta.eq(Value::Object(i.meta.clone())),
                            s::order_items::position.eq(i32::try_from(position).unwrap_or(i32::MAX)),
                        )
                    })
                    .collect();
                if !items.is_empty() {
                    insert_rows!(c, s::order_items::table, items)?;
                }
                diesel::insert_into(s::order_events::table)
                    .values((
                        s::order_events::order_id.eq(order_id),
                        s::order_events::seq.eq(0),
                        s::order_events::type_.eq(plan.event.event_type.clone()),
                        s::order_events::actor.eq(plan.event.actor.clone()),
                        s::order_events::payload.eq(Value::Object(plan.event.payload.clone())),
                        s::order_events::created_at.eq(ts(plan.event.created_at)),
                    ))
                    .execute(c)
                    .await?;
                let directives = crate::store::rows::directive_values(&plan.directives, plan.now);
                if !directives.is_empty() {
                    insert_directives(c, directives).await?;
                }
                let record = IdempotencyValues::new(&plan.idempotency_record(order_id));
                if upsert_idempotency(c, record).await? == 0 {
                    return Err(CommitAbort::KeyTaken);
                }
                Ok(order_id)
            })
        }

        /// 1 statement: the new id.
        async fn insert_order(conn: &mut Conn, plan: &CommitPlan) -> QueryResult<i64> {
            let o = &plan.order;
            let t = &o.timestamps;
            diesel::insert_into(s::orders::table)
                .values((
                    s::orders::ref_.eq(o.reference.clone()),
                    s::orders::channel_id.eq(o.channel_id),
                    s::orders::session_key.eq(o.session_key.clone()),
                    s::orders::handle_type.eq(o.handle_type.clone()),
                    s::orders::handle_ref.eq(o.handle_ref.clone()),
                    s::orders::external_ref.eq(o.external_ref.clone()),
                    s::orders::status.eq(o.status.clone()),
                    s::orders::snapshot.eq(o.snapshot.clone()),
                    s::orders::data.eq(Value::Object(o.data.clone())),
                    s::orders::currency.eq(o.currency.clone()),
                    s::orders::total_q.eq(o.total_q),
                    s::orders::created_at.eq(ts(o.created_at)),
                    s::orders::updated_at.eq(ts(o.updated_at)),
                    (
                        s::orders::confirmed_at.eq(ts_opt(t.confirmed_at)),
                        s::orders::processing_at.eq(ts_opt(t.processing_at)),
                        s::orders::ready_at.eq(ts_opt(t.ready_at)),
                        s::orders::dispatched_at.eq(ts_opt(t.dispatched_at)),
                        s::orders::delivered_at.eq(ts_opt(t.delivered_at)),
                        s::orders::completed_at.eq(ts_opt(t.completed_at)),
                        s::orders::cancelled_at.eq(ts_opt(t.cancelled_at)),
                        s::orders::returned_at.eq(ts_opt(t.returned_at)),
                    ),
                ))
                .returning(s::orders::id)
                .get_result(conn)
                .await
        }

        /// 1 statement (orders JOIN channels; the lines come from the snapshot).
        pub(crate) async fn order_by_ref(
            conn: &mut Conn,
            order_ref: &str,
        ) -> QueryResult<Option<(ChannelRow, OrderRow)>> {
            s::orders::table
                .inner_join(s::channels::table)
                .filter(s::orders::ref_.eq(order_ref))
                .select((s::channels::all_columns, s::orders::all_columns))
                .first(conn)
                .await
                .optional()
        }

        /// 1 statement.
        pub(crate) async fn order_for_session(
            conn: &mut Conn,
            channel_id: i64,
            session_key: &str,
        ) -> QueryResult<Option<(OrderRow, String)>> {
            s::orders::table
                .inner_join(s::channels::table)
                .filter(s::orders::channel_id.eq(channel_id))
                .filter(s::orders::session_key.eq(session_key))
                .select((s::orders::all_columns, s::channels::code))
                .order(s::orders::id.asc())
                .first(conn)
                .await
                .optional()
        }

        /// One transaction of 2 statements: the update conditional on the status as read, and
        /// the event.
        pub(crate) async fn transition(conn: &mut Conn, plan: TransitionPlan) -> QueryResult<bool> {
            tx!(conn, async move |c| -> QueryResult<bool> {
                let o = &plan.order;
                let t = &o.timestamps;
                let changed = diesel::update(
                    s::orders::table
                        .filter(s::orders::id.eq(o.id))
                        .filter(s::orders::status.eq(plan.expected_status.clone())),
                )
                .set((
                    s::orders::status.eq(o.status.clone()),
                    s::orders::updated_at.eq(ts(o.updated_at)),
                    s::orders::confirmed_at.eq(ts_opt(t.confirmed_at)),
                    s::orders::processing_at.eq(ts_opt(t.processing_at)),
                    s::orders::ready_at.eq(ts_opt(t.ready_at)),
                    s::orders::dispatched_at.eq(ts_opt(t.dispatched_at)),
                    s::orders::delivered_at.eq(ts_opt(t.delivered_at)),
                    s::orders::completed_at.eq(ts_opt(t.completed_at)),
                    s::orders::cancelled_at.eq(ts_opt(t.cancelled_at)),
                    s::orders::returned_at.eq(ts_opt(t.returned_at)),
                ))
                .execute(c)
                .await?;
                if changed == 0 {
                    return Ok(false);
                }
                append_event(c, o.id, plan.event.clone()).await?;
                Ok(true)
            })
        }

        /// 1 statement: `INSERT … SELECT COALESCE(MAX(seq) + 1, 0) … RETURNING seq`.
        pub(crate) async fn append_event(conn: &mut Conn, order_id: i64, event: NewEvent) -> QueryResult<i32> {
            let next = s::order_events::table.filter(s::order_events::order_id.eq(order_id)).select((
                order_id.into_sql::<diesel::sql_types::BigInt>(),
                diesel::dsl::sql::<diesel::sql_types::Integer>("COALESCE(MAX(seq) + 1, 0)"),
                event.event_type.into_sql::<diesel::sql_types::Text>(),
                event.actor.into_sql::<diesel::sql_types::Text>(),
                Value::Object(event.payload).into_sql::<s::JsonDoc>(),
                ts(event.created_at).into_sql::<s::Ts>(),
            ));
            diesel::insert_into(s::order_events::table)
                .values(next)
                .into_columns((
                    s::order_events::order_id,
                    s::order_events::seq,
                    s::order_events::type_,
                    s::order_events::actor,
                    s::order_events::payload,
                    s::order_events::created_at,
                ))
                .returning(s::order_events::seq)
                .get_result(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn list_events(conn: &mut Conn, order_id: i64) -> QueryResult<Vec<EventRow>> {
            s::order_events::table
                .filter(s::order_events::order_id.eq(order_id))
                .select(s::order_events::all_columns)
                .order(s::order_events::seq.asc())
                .load(conn)
                .await
        }

        /// 1 statement (items counted by a correlated subquery).
        pub(crate) async fn list_orders(
            conn: &mut Conn,
            filter: OrderFilter,
            page: PageRequest,
        ) -> QueryResult<Vec<SummaryRow>> {
            let mut query =
                s::orders::table.inner_join(s::channels::table).select(summary_columns!()).into_boxed::<Db>();
            if let Some(ids) = filter.channel_ids {
                query = query.filter(s::orders::channel_id.eq_any(ids));
            }
            if let Some(status) = filter.status {
                query = query.filter(s::orders::status.eq(status));
            }
            if let Some(handle_type) = filter.handle_type {
                query = query.filter(s::orders::handle_type.eq(handle_type));
            }
            if let Some(handle_ref) = filter.handle_ref {
                query = query.filter(s::orders::handle_ref.eq(handle_ref));
            }
            if let Some(external_ref) = filter.external_ref {
                query = query.filter(s::orders::external_ref.eq(external_ref));
            }
            if let Some(after) = filter.created_after {
                query = query.filter(s::orders::created_at.ge(after));
            }
            if let Some(before) = filter.created_before {
                query = query.filter(s::orders::created_at.lt(before));
            }
            keyset!(query, &page, s::orders::created_at, s::orders::id).load(conn).await
        }

        /// 1 statement.
        pub(crate) async fn orders_after(conn: &mut Conn, since: i64, limit: i64) -> QueryResult<Vec<SummaryRow>> {
            s::orders::table
                .inner_join(s::channels::table)
                .filter(s::orders::id.gt(since))
                .select(summary_columns!())
                .order(s::orders::id.asc())
                .limit(limit)
                .load(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn max_order_id(conn: &mut Conn) -> QueryResult<i64> {
            let max: Option<i64> = s::orders::table.select(diesel::dsl::max(s::orders::id)).first(conn).await?;
            Ok(max.unwrap_or(0))
        }

        // ----- directives ---------------------------------------------------------------

        /// 1 statement (one multi-row insert); the ids in the order given.
        pub(crate) async fn insert_directives(
            conn: &mut Conn,
            directives: Vec<DirectiveValues>,
        ) -> QueryResult<Vec<i64>> {
            let rows: Vec<_> = directives
                .into_iter()
                .map(|d| {
                    (
                        s::directives::topic.eq(d.topic),
                        s::directives::status.eq("queued"),
                        s::directives::payload.eq(d.payload),
                        s::directives::attempts.eq(0),
                        s::directives::available_at.eq(d.available_at),
                        s::directives::last_error.eq(""),
                        s::directives::created_at.eq(d.created_at),
                        s::directives::updated_at.eq(d.created_at),
                    )
                })
                .collect();
            let mut ids: Vec<i64> = insert_rows_returning!(conn, s::directives::table, rows, s::directives::id)?;
            // Ids grow in VALUES order within one statement; RETURNING order is not promised.
            ids.sort_unstable();
            Ok(ids)
        }

        /// 1 statement: `UPDATE … WHERE id IN (SELECT … [FOR UPDATE SKIP LOCKED]) RETURNING *`.
        pub(crate) async fn claim(
            conn: &mut Conn,
            topics: Option<Vec<String>>,
            limit: i64,
            now: DateTime<Utc>,
        ) -> QueryResult<Vec<DirectiveRow>> {
            let now = ts(now);
            let ready = claimable!(now, topics, limit);
            let mut claimed: Vec<DirectiveRow> = diesel::update(s::directives::table.filter(ready))
                .set((
                    s::directives::status.eq("running"),
                    s::directives::attempts.eq(s::directives::attempts + 1),
                    s::directives::started_at.eq(Some(now)),
                    s::directives::updated_at.eq(now),
                ))
                .returning(s::directives::all_columns)
                .get_results(conn)
                .await?;
            claimed.sort_by_key(|d| (d.available_at, d.id));
            Ok(claimed)
        }

        /// 1 statement.
        pub(crate) async fn stuck_directives(
            conn: &mut Conn,
            started_before: DateTime<Utc>,
        ) -> QueryResult<Vec<DirectiveRow>> {
            s::directives::table
                .filter(s::directives::status.eq("running"))
                .filter(s::directives::started_at.lt(started_before))
                .select(s::directives::all_columns)
                .order(s::directives::id.asc())
                .load(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn requeue(conn: &mut Conn, update: DirectiveUpdate, now: DateTime<Utc>) -> QueryResult<bool> {
            let changed = diesel::update(
                s::directives::table
                    .filter(s::directives::id.eq(update.id))
                    .filter(s::directives::status.ne("running")),
            )
            .set((
                s::directives::status.eq(update.status.as_str()),
                s::directives::available_at.eq(ts(update.available_at)),
                s::directives::updated_at.eq(ts(now)),
            ))
            .execute(conn)
            .await?;
            Ok(changed == 1)
        }

        /// 1 statement.
        pub(crate) async fn directive(conn: &mut Conn, id: i64) -> QueryResult<Option<DirectiveRow>> {
            s::directives::table.find(id).select(s::directives::all_columns).first(conn).await.optional()
        }

        /// 1 statement.
        pub(crate) async fn list_directives(
            conn: &mut Conn,
            filter: DirectiveFilter,
            page: PageRequest,
        ) -> QueryResult<Vec<DirectiveRow>> {
            let mut query = s::directives::table.select(s::directives::all_columns).into_boxed::<Db>();
            if let Some(topic) = filter.topic {
                query = query.filter(s::directives::topic.eq(topic));
            }
            if let Some(status) = filter.status {
                query = query.filter(s::directives::status.eq(status.as_str()));
            }
            keyset!(query, &page, s::directives::created_at, s::directives::id).load(conn).await
        }

        /// 1 statement.
        pub(crate) async fn directive_counts(conn: &mut Conn) -> QueryResult<Vec<(String, i64)>> {
            s::directives::table
                .group_by(s::directives::status)
                .select((s::directives::status, diesel::dsl::count_star()))
                .order(s::directives::status.asc())
                .load(conn)
                .await
        }

        // ----- idempotency --------------------------------------------------------------

        /// 1 statement.
        pub(crate) async fn idempotency_record(
            conn: &mut Conn,
            scope: &str,
            key: &str,
        ) -> QueryResult<Option<IdempotencyRow>> {
            s::idempotency_keys::table
                .filter(s::idempotency_keys::scope.eq(scope))
                .filter(s::idempotency_keys::key.eq(key))
                .select(s::idempotency_keys::all_columns)
                .first(conn)
                .await
                .optional()
        }

        /// 1 statement: inserts the record or replaces one that is not `done`; 0 rows when a
        /// `done` record holds the key.
        pub(crate) async fn upsert_idempotency(conn: &mut Conn, v: IdempotencyValues) -> QueryResult<usize> {
            use s::idempotency_keys::dsl as k;
            let upsert = diesel::insert_into(k::idempotency_keys)
                .values((
                    k::scope.eq(v.scope),
                    k::key.eq(v.key),
                    k::status.eq(v.status),
                    k::response_code.eq(v.response_code),
                    k::response_body.eq(v.response_body),
                    k::session_key.eq(v.session_key),
                    k::expires_at.eq(v.expires_at),
                    k::created_at.eq(v.created_at),
                    k::updated_at.eq(v.created_at),
                ))
                .on_conflict((k::scope, k::key))
                .do_update()
                .set((
                    k::status.eq(excluded(k::status)),
                    k::response_code.eq(excluded(k::response_code)),
                    k::response_body.eq(excluded(k::response_body)),
                    k::session_key.eq(excluded(k::session_key)),
                    k::expires_at.eq(excluded(k::expires_at)),
                    k::created_at.eq(excluded(k::created_at)),
                    k::updated_at.eq(excluded(k::updated_at)),
                ));
            diesel::query_dsl::methods::FilterDsl::filter(upsert, k::status.ne("done")).execute(conn).await
        }

        /// 1 statement.
        pub(crate) async fn delete_expired_idempotency(conn: &mut Conn, now: DateTime<Utc>) -> QueryResult<usize> {
            diesel::delete(s::idempotency_keys::table.filter(s::idempotency_keys::expires_at.le(now)))
                .execute(conn)
                .await
        }

        // ----- tokens -------------------------------------------------------------------

        /// 1 statement.
        pub(crate) async fn create_token(conn: &mut Conn, v: TokenValues) -> QueryResult<usize> {
            diesel::insert_into(s::api_tokens::table)
                .values((
                    s::api_tokens::name.eq(v.name),
                    s::api_tokens::token_hash.eq(v.token_hash),
                    s::api_tokens::role.eq(v.role),
                    s::api_tokens::channels.eq(v.channels),
                    s::api_tokens::created_at.eq(v.created_at),
                    s::api_tokens::revoked_at.eq(v.revoked_at),
                    s::api_tokens::rate_limits.eq(v.rate_limits),
                ))
                .execute(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn token_by_hash(conn: &mut Conn, token_hash: &str) -> QueryResult<Option<TokenRow>> {
            s::api_tokens::table
                .filter(s::api_tokens::token_hash.eq(token_hash))
                .filter(s::api_tokens::revoked_at.is_null())
                .select(s::api_tokens::all_columns)
                .first(conn)
                .await
                .optional()
        }

        /// 1 statement.
        pub(crate) async fn list_tokens(conn: &mut Conn) -> QueryResult<Vec<TokenRow>> {
            s::api_tokens::table.select(s::api_tokens::all_columns).order(s::api_tokens::name.asc()).load(conn).await
        }

        /// 1 statement.
        pub(crate) async fn revoke_token(conn: &mut Conn, name: &str, now: DateTime<Utc>) -> QueryResult<bool> {
            let changed = diesel::update(
                s::api_tokens::table.filter(s::api_tokens::name.eq(name)).filter(s::api_tokens::revoked_at.is_null()),
            )
            .set(s::api_tokens::revoked_at.eq(Some(ts(now))))
            .execute(conn)
            .await?;
            Ok(changed == 1)
        }

        // ----- stock --------------------------------------------------------------------

        /// 1 statement: a SKU's quantity on hand (`None`: no level, i.e. nothing on hand) and
        /// the quantity its live holds take at `now`, read together (one snapshot).
        pub(crate) async fn stock_of(
            conn: &mut Conn,
            sku: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<(Option<i64>, i64)> {
            let on_hand =
                s::stock_levels::table.filter(s::stock_levels::sku.eq(sku)).select(s::stock_levels::on_hand_milli);
            let held = live_holds!(sku, now).select(held_sum!());
            let (on_hand, held): (Option<i64>, Option<i64>) =
                diesel::select((on_hand.single_value(), held.single_value())).get_result(conn).await?;
            Ok((on_hand, held.unwrap_or(0)))
        }

        /// One write transaction of 3 statements (2 when not enough is left, 1 for a SKU without
        /// a level: nothing is on hand): the SKU's level is read with `for_update!`, so that holds
        /// on one SKU are decided one at a time (across processes too); the live holds are summed
        /// by a statement of their own, which on PostgreSQL takes its snapshot after the lock was
        /// granted and so sees every hold a previous holder of the lock committed (a subquery of
        /// the locking statement would not); then the insert. Returns whether it was inserted.
        pub(crate) async fn create_hold(conn: &mut Conn, v: HoldValues) -> QueryResult<bool> {
            tx!(conn, async move |c| -> QueryResult<bool> {
                let on_hand: Option<i64> = for_update!(
                    s::stock_levels::table
                        .filter(s::stock_levels::sku.eq(&v.sku))
                        .select(s::stock_levels::on_hand_milli)
                )
                .first(c)
                .await
                .optional()?;
                let Some(on_hand) = on_hand else { return Ok(false) };
                let held: i64 = live_holds!(&v.sku, v.now).select(held_sum!()).first(c).await?;
                if on_hand.saturating_sub(held) < v.qty_milli {
                    return Ok(false);
                }
                diesel::insert_into(s::stock_holds::table)
                    .values((
                        s::stock_holds::hold_id.eq(&v.hold_id),
                        s::stock_holds::sku.eq(&v.sku),
                        s::stock_holds::qty_milli.eq(v.qty_milli),
                        s::stock_holds::reference.eq(&v.reference),
                        s::stock_holds::status.eq("active"),
                        s::stock_holds::expires_at.eq(v.expires_at),
                        s::stock_holds::created_at.eq(v.now),
                        s::stock_holds::updated_at.eq(v.now),
                    ))
                    .execute(c)
                    .await?;
                Ok(true)
            })
        }

        /// One write transaction: `active → fulfilled` (conditional update, setting the
        /// reference when one is given) and, when it applied, the level lowered by the hold's
        /// quantity (an upsert: a SKU without a level starts at 0), 2 statements; otherwise 1
        /// more reading the hold's status. `true` when the hold is (now or already) fulfilled.
        pub(crate) async fn fulfill_hold(
            conn: &mut Conn,
            hold_id: String,
            reference: Option<String>,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            tx!(conn, async move |c| -> QueryResult<bool> {
                let target = s::stock_holds::table
                    .filter(s::stock_holds::hold_id.eq(&hold_id))
                    .filter(s::stock_holds::status.eq("active"));
                let fulfilled = (s::stock_holds::status.eq("fulfilled"), s::stock_holds::updated_at.eq(now));
                let columns = (s::stock_holds::sku, s::stock_holds::qty_milli);
                let taken: Option<(String, i64)> = match reference {
                    Some(r) => diesel::update(target)
                        .set((fulfilled, s::stock_holds::reference.eq(Some(r))))
                        .returning(columns)
                        .get_result(c)
                        .await
                        .optional()?,
                    None => diesel::update(target).set(fulfilled).returning(columns).get_result(c).await.optional()?,
                };
                let Some((sku, qty_milli)) = taken else {
                    let status: Option<String> = s::stock_holds::table
                        .filter(s::stock_holds::hold_id.eq(&hold_id))
                        .select(s::stock_holds::status)
                        .first(c)
                        .await
                        .optional()?;
                    return Ok(status.as_deref() == Some("fulfilled"));
                };
                diesel::insert_into(s::stock_levels::table)
                    .values((
                        s::stock_levels::sku.eq(sku),
                        s::stock_levels::on_hand_milli.eq(-qty_milli),
                        s::stock_levels::updated_at.eq(now),
                    ))
                    .on_conflict(s::stock_levels::sku)
                    .do_update()
                    .set((
                        s::stock_levels::on_hand_milli
                            .eq(s::stock_levels::on_hand_milli + excluded(s::stock_levels::on_hand_milli)),
                        s::stock_levels::updated_at.eq(excluded(s::stock_levels::updated_at)),
                    ))
                    .execute(c)
                    .await?;
                Ok(true)
            })
        }

        /// 1 statement: `active → released` for one hold.
        pub(crate) async fn release_hold(conn: &mut Conn, hold_id: &str, now: DateTime<Utc>) -> QueryResult<usize> {
            diesel::update(
                s::stock_holds::table
                    .filter(s::stock_holds::hold_id.eq(hold_id))
                    .filter(s::stock_holds::status.eq("active")),
            )
            .set((s::stock_holds::status.eq("released"), s::stock_holds::updated_at.eq(now)))
            .execute(conn)
            .await
        }

        /// 1 statement: `active → released` for every hold made under `reference`.
        pub(crate) async fn release_holds_for_reference(
            conn: &mut Conn,
            reference: &str,
            now: DateTime<Utc>,
        ) -> QueryResult<usize> {
            diesel::update(
                s::stock_holds::table
                    .filter(s::stock_holds::reference.eq(reference))
                    .filter(s::stock_holds::status.eq("active")),
            )
            .set((s::stock_holds::status.eq("released"), s::stock_holds::updated_at.eq(now)))
            .execute(conn)
            .await
        }

        /// 1 statement: `INSERT … ON CONFLICT (sku) DO UPDATE` of the quantity on hand.
        pub(crate) async fn set_stock_level(
            conn: &mut Conn,
            sku: &str,
            on_hand_milli: i64,
            now: DateTime<Utc>,
        ) -> QueryResult<usize> {
            diesel::insert_into(s::stock_levels::table)
                .values((
                    s::stock_levels::sku.eq(sku),
                    s::stock_levels::on_hand_milli.eq(on_hand_milli),
                    s::stock_levels::updated_at.eq(now),
                ))
                .on_conflict(s::stock_levels::sku)
                .do_update()
                .set((
                    s::stock_levels::on_hand_milli.eq(excluded(s::stock_levels::on_hand_milli)),
                    s::stock_levels::updated_at.eq(excluded(s::stock_levels::updated_at)),
                ))
                .execute(conn)
                .await
        }

        /// 1 statement: every level by SKU, with what its live holds take at `now` (a
        /// correlated `SUM`).
        pub(crate) async fn stock_levels(conn: &mut Conn, now: DateTime<Utc>) -> QueryResult<Vec<(String, i64, i64)>> {
            let held = diesel::dsl::sql::<diesel::sql_types::BigInt>(
                "CAST(COALESCE((SELECT SUM(h.qty_milli) FROM stock_holds h WHERE h.sku = stock_levels.sku \
                 AND h.status = 'active' AND (h.expires_at IS NULL OR h.expires_at > ",
            )
            .bind::<s::Ts, _>(now)
            .sql(")), 0) AS BIGINT)");
            s::stock_levels::table
                .select((s::stock_levels::sku, s::stock_levels::on_hand_milli, held))
                .order(s::stock_levels::sku.asc())
                .load(conn)
                .await
        }
    };
}
