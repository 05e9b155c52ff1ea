//! `orders`, with their `order_items` and `order_events`.

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

/// The timestamp of each status an order has reached (`t`: its `OrderTimestamps`), as column
/// values for an insert or an update.
macro_rules! status_timestamps {
    ($t:expr) => {
        (
            s::orders::confirmed_at.eq(ts_opt($t.confirmed_at)),
            s::orders::processing_at.eq(ts_opt($t.processing_at)),
            s::orders::ready_at.eq(ts_opt($t.ready_at)),
            s::orders::dispatched_at.eq(ts_opt($t.dispatched_at)),
            s::orders::delivered_at.eq(ts_opt($t.delivered_at)),
            s::orders::completed_at.eq(ts_opt($t.completed_at)),
            s::orders::cancelled_at.eq(ts_opt($t.cancelled_at)),
            s::orders::returned_at.eq(ts_opt($t.returned_at)),
        )
    };
}

/// The order queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! order_queries {
    () => {
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
                    status_timestamps!(t),
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
    };
}

/// The commit as one statement per table (SQLite, where a statement is a function call): see
/// `pg::commit` for PostgreSQL's single statement, which writes the same rows under the same
/// conditions (`session_cas!`, `key_rule`).
macro_rules! commit_in_statements {
    () => {
        /// An order line binds 9 values.
        const ITEM_ROWS_PER_INSERT: usize = crate::store::queries::rows_per_insert(9);
        /// A directive binds 8 values (`insert_directives`).
        const DIRECTIVE_ROWS_PER_INSERT: usize = crate::store::queries::rows_per_insert(8);

        /// One transaction of at most 6 statements: conditional session update, order insert,
        /// one multi-row item insert, the `created` event, one multi-row directive insert (when
        /// there are directives) and the idempotency upsert. Returns the new order's id.
        ///
        /// Items and directives past what one statement may bind (`rows_per_insert`: 3,640 lines
        /// of 9 values, 4,095 directives of 8) take one more insert per such chunk.
        pub(crate) async fn commit(conn: &mut Conn, plan: std::sync::Arc<CommitPlan>) -> Result<i64, CommitAbort> {
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
                for (n, lines) in plan.order.items.chunks(ITEM_ROWS_PER_INSERT).enumerate() {
                    let first = n * ITEM_ROWS_PER_INSERT;
                    let rows: Vec<_> = lines
                        .iter()
                        .enumerate()
                        .map(|(i, line)| {
                            (
                                s::order_items::order_id.eq(order_id),
                                s::order_items::line_id.eq(line.line_id.clone()),
                                s::order_items::sku.eq(line.sku.clone()),
                                s::order_items::name.eq(line.name.clone()),
                                s::order_items::qty_milli.eq(line.qty.millis()),
                                s::order_items::unit_price_q.eq(line.unit_price_q),
                                s::order_items::line_total_q.eq(line.line_total_q),
                                s::order_items::meta.eq(Value::Object(line.meta.clone())),
                                s::order_items::position.eq(i32::try_from(first + i).unwrap_or(i32::MAX)),
                            )
                        })
                        .collect();
                    insert_rows!(c, s::order_items::table, rows)?;
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
                for chunk in plan.directives.chunks(DIRECTIVE_ROWS_PER_INSERT) {
                    insert_directives(c, crate::store::rows::directive_values(chunk, plan.now)).await?;
                }
                let record = IdempotencyValues::new(&plan.idempotency_record(order_id));
                if upsert_idempotency(c, record, KeyRule::Claim).await? == 0 {
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
                    status_timestamps!(t),
                ))
                .returning(s::orders::id)
                .get_result(conn)
                .await
        }
    };
}
