//! `webhooks`, `webhook_deliveries` and `webhook_dispatch`.

/// The webhook queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! webhook_queries {
    () => {
        use crate::store::rows::{DISPATCHER, DeliveryRow, DeliveryValues, WebhookRow, WebhookValues};

        /// 1 statement: the insert, `start_after` read from the event log in the same statement.
        pub(crate) async fn create_webhook(conn: &mut Conn, v: WebhookValues) -> QueryResult<WebhookRow> {
            let log_end = diesel::dsl::sql::<diesel::sql_types::BigInt>("(SELECT COALESCE(MAX(id), 0) FROM events)");
            diesel::insert_into(s::webhooks::table)
                .values((
                    s::webhooks::url.eq(v.url),
                    s::webhooks::secret.eq(v.secret),
                    s::webhooks::events.eq(v.events),
                    s::webhooks::channels.eq(v.channels),
                    s::webhooks::active.eq(v.active),
                    s::webhooks::start_after.eq(log_end),
                    s::webhooks::created_at.eq(v.created_at),
                    s::webhooks::updated_at.eq(v.updated_at),
                ))
                .returning(s::webhooks::all_columns)
                .get_result(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn webhook(conn: &mut Conn, id: i64) -> QueryResult<Option<WebhookRow>> {
            s::webhooks::table.find(id).select(s::webhooks::all_columns).first(conn).await.optional()
        }

        /// 1 statement.
        pub(crate) async fn list_webhooks(conn: &mut Conn, page: PageRequest) -> QueryResult<Vec<WebhookRow>> {
            let query = s::webhooks::table.select(s::webhooks::all_columns).into_boxed::<Db>();
            keyset!(query, &page, s::webhooks::created_at, s::webhooks::id).load(conn).await
        }

        /// 1 statement.
        pub(crate) async fn active_webhooks(conn: &mut Conn) -> QueryResult<Vec<WebhookRow>> {
            s::webhooks::table
                .filter(s::webhooks::active.eq(true))
                .select(s::webhooks::all_columns)
                .order(s::webhooks::id.asc())
                .load(conn)
                .await
        }

        /// 1 statement.
        pub(crate) async fn update_webhook(conn: &mut Conn, v: WebhookValues) -> QueryResult<bool> {
            let changed = diesel::update(s::webhooks::table.find(v.id))
                .set((
                    s::webhooks::url.eq(v.url),
                    s::webhooks::events.eq(v.events),
                    s::webhooks::channels.eq(v.channels),
                    s::webhooks::active.eq(v.active),
                    s::webhooks::updated_at.eq(v.updated_at),
                ))
                .execute(conn)
                .await?;
            Ok(changed == 1)
        }

        /// 1 statement (its delivery records go with it: `ON DELETE CASCADE`).
        pub(crate) async fn delete_webhook(conn: &mut Conn, id: i64) -> QueryResult<bool> {
            Ok(diesel::delete(s::webhooks::table.find(id)).execute(conn).await? == 1)
        }

        /// 2 statements per `rows_per_insert(8)` deliveries: the directives, then their records.
        /// Runs inside the caller's transaction.
        async fn insert_deliveries(conn: &mut Conn, v: DeliveryValues) -> QueryResult<Vec<i64>> {
            let mut all = Vec::with_capacity(v.directives.len());
            let chunk = crate::store::queries::rows_per_insert(8);
            for (directives, records) in v.directives.chunks(chunk).zip(v.records.chunks(chunk)) {
                let ids = insert_directives(conn, directives.to_vec()).await?;
                let rows: Vec<_> = ids
                    .iter()
                    .zip(records)
                    .map(|(id, (webhook_id, event_id, event_type))| {
                        (
                            s::webhook_deliveries::directive_id.eq(*id),
                            s::webhook_deliveries::webhook_id.eq(*webhook_id),
                            s::webhook_deliveries::event_id.eq(*event_id),
                            s::webhook_deliveries::event_type.eq(event_type.clone()),
                            s::webhook_deliveries::created_at.eq(v.created_at),
                        )
                    })
                    .collect();
                let _: Vec<i64> = insert_rows_returning!(
                    conn,
                    s::webhook_deliveries::table,
                    rows,
                    s::webhook_deliveries::directive_id
                )?;
                all.extend(ids);
            }
            Ok(all)
        }

        /// One transaction: 2 statements (the directives, then their records).
        pub(crate) async fn enqueue_deliveries(conn: &mut Conn, v: DeliveryValues) -> QueryResult<Vec<i64>> {
            if v.directives.is_empty() {
                return Ok(Vec::new());
            }
            tx!(conn, async move |c| -> QueryResult<Vec<i64>> { insert_deliveries(c, v).await })
        }

        /// 1 statement: a subscription's deliveries with their directives' state, newest first.
        pub(crate) async fn list_deliveries(
            conn: &mut Conn,
            webhook_id: i64,
            page: PageRequest,
        ) -> QueryResult<Vec<DeliveryRow>> {
            use s::webhook_deliveries as w;
            let query = w::table
                .inner_join(s::directives::table)
                .filter(w::webhook_id.eq(webhook_id))
                .select((
                    w::directive_id,
                    w::webhook_id,
                    w::event_id,
                    w::event_type,
                    w::created_at,
                    s::directives::status,
                    s::directives::attempts,
                    s::directives::last_error,
                    s::directives::available_at,
                    s::directives::updated_at,
                ))
                .into_boxed::<Db>();
            keyset!(query, &page, w::created_at, w::directive_id).load(conn).await
        }

        /// 1 statement.
        pub(crate) async fn dispatch_position(conn: &mut Conn) -> QueryResult<i64> {
            let position: Option<i64> = s::webhook_dispatch::table
                .find(DISPATCHER)
                .select(s::webhook_dispatch::position)
                .first(conn)
                .await
                .optional()?;
            Ok(position.unwrap_or(0))
        }

        /// One transaction: the compare-and-set of the position (1 statement), then, when it
        /// applied and there are deliveries, their inserts (2 statements). A lost
        /// compare-and-set writes nothing.
        pub(crate) async fn advance_dispatch(
            conn: &mut Conn,
            from: i64,
            to: i64,
            v: DeliveryValues,
            now: DateTime<Utc>,
        ) -> QueryResult<bool> {
            tx!(conn, async move |c| -> QueryResult<bool> {
                let moved = diesel::update(
                    s::webhook_dispatch::table
                        .filter(s::webhook_dispatch::name.eq(DISPATCHER))
                        .filter(s::webhook_dispatch::position.eq(from)),
                )
                .set((s::webhook_dispatch::position.eq(to), s::webhook_dispatch::updated_at.eq(ts(now))))
                .execute(c)
                .await?;
                if moved == 0 {
                    return Ok(false);
                }
                if !v.directives.is_empty() {
                    insert_deliveries(c, v).await?;
                }
                Ok(true)
            })
        }
    };
}
