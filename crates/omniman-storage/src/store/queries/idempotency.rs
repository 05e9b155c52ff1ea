//! `idempotency_keys`.

/// The idempotency queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! idempotency_queries {
    () => {
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

        /// The condition under which a write may replace the existing record of its key (see
        /// [`KeyRule`]), evaluated on that record; `at` and `session_key` are the new record's.
        pub(crate) fn key_rule(
            rule: KeyRule,
            at: DateTime<Utc>,
            session_key: Option<String>,
        ) -> Box<
            dyn diesel::expression::BoxableExpression<
                    s::idempotency_keys::table,
                    Db,
                    SqlType = diesel::sql_types::Nullable<diesel::sql_types::Bool>,
                >,
        > {
            use diesel::NullableExpressionMethods;
            use s::idempotency_keys::dsl as k;
            match rule {
                KeyRule::UnlessDone => Box::new(k::status.ne(IdempotencyStatus::Done.as_str()).nullable()),
                // `omniman_core::idempotency::replaceable`, in SQL.
                KeyRule::Claim => Box::new(
                    k::status.eq(IdempotencyStatus::Failed.as_str()).nullable().or(k::status
                        .eq(IdempotencyStatus::InProgress.as_str())
                        .and(k::expires_at.le(at))
                        .and(k::session_key.is_null().or(k::session_key.eq(session_key)))),
                ),
            }
        }

        /// 1 statement: inserts the record or replaces the existing one when `rule` lets it go;
        /// 0 rows when the existing record holds the key.
        pub(crate) async fn upsert_idempotency(
            conn: &mut Conn,
            v: IdempotencyValues,
            rule: KeyRule,
        ) -> QueryResult<usize> {
            use s::idempotency_keys::dsl as k;
            let replaceable = key_rule(rule, v.created_at, v.session_key.clone());
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
            diesel::query_dsl::methods::FilterDsl::filter(upsert, replaceable).execute(conn).await
        }

        /// 1 statement.
        pub(crate) async fn delete_expired_idempotency(conn: &mut Conn, now: DateTime<Utc>) -> QueryResult<usize> {
            diesel::delete(s::idempotency_keys::table.filter(s::idempotency_keys::expires_at.le(now)))
                .execute(conn)
                .await
        }
    };
}
