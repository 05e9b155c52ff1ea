//! `sessions`.

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

/// The compare-and-set condition of a session write: the row as the service read it
/// (`version`), still open.
macro_rules! session_cas {
    ($id:expr, $expected_version:expr) => {
        s::sessions::id
            .eq($id)
            .and(s::sessions::version.eq($expected_version))
            .and(s::sessions::state.eq(SessionState::Open.as_str()))
    };
}

/// The session queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! session_queries {
    () => {
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
                .filter(s::sessions::state.eq(SessionState::Open.as_str()))
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
            use diesel::query_builder::AsChangeset;
            /// Names the statement in the connection's cache.
            struct SessionWrite;
            crate::store::fixed::FixedUpdate::<SessionWrite, _, _>::new(
                "sessions",
                session_update_values!(v).as_changeset(),
                session_cas!(id, expected_version),
            )
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
            // `state = 'open'` as a literal, not a bound value: it is the condition of the
            // partial index `sessions_open_idx`, which a plan may use only if it can see it.
            diesel::update(
                s::sessions::table
                    .filter(diesel::dsl::sql::<diesel::sql_types::Bool>("state = 'open'"))
                    .filter(s::sessions::updated_at.lt(idle_since)),
            )
            .set((
                s::sessions::state.eq(SessionState::Abandoned.as_str()),
                s::sessions::version.eq(s::sessions::version + 1),
                s::sessions::updated_at.eq(ts(now)),
            ))
            .execute(conn)
            .await
        }
    };
}
