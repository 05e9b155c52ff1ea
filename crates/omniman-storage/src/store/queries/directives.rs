//! `directives`.

/// The directive queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! directive_queries {
    () => {
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
                        s::directives::status.eq(DirectiveStatus::Queued.as_str()),
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
                    s::directives::status.eq(DirectiveStatus::Running.as_str()),
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

        /// 1 statement: `running` rows whose claim was last written (claimed or renewed) before
        /// the cut.
        pub(crate) async fn stuck_directives(
            conn: &mut Conn,
            seen_before: DateTime<Utc>,
        ) -> QueryResult<Vec<DirectiveRow>> {
            s::directives::table
                .filter(s::directives::status.eq(DirectiveStatus::Running.as_str()))
                .filter(s::directives::updated_at.lt(ts(seen_before)))
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
                    .filter(s::directives::status.ne(DirectiveStatus::Running.as_str())),
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
    };
}
