//! The event log (`events`): written by the database's triggers (see the migrations), read here.

macro_rules! event_queries {
    () => {
        /// 1 statement: up to `limit` events after `after`, each row with the transactions in
        /// flight in the same snapshot (`in_flight_xids!`).
        pub(crate) async fn read_events(
            conn: &mut Conn,
            after: i64,
            limit: i64,
        ) -> QueryResult<Vec<(crate::store::rows::LogEventRow, String)>> {
            s::events::table
                .filter(s::events::id.gt(after))
                .order(s::events::id.asc())
                .limit(limit)
                .select((
                    (
                        s::events::id,
                        s::events::type_,
                        s::events::channel_code,
                        s::events::session_key,
                        s::events::order_ref,
                        s::events::data,
                        s::events::created_at,
                    ),
                    in_flight_xids!(),
                ))
                .load(conn)
                .await
        }

        /// 1 statement (on PostgreSQL, a transaction of its own that takes a transaction id).
        pub(crate) async fn transaction_horizon(conn: &mut Conn) -> QueryResult<i64> {
            diesel::select(transaction_horizon!()).get_result(conn).await
        }

        /// 1 statement.
        pub(crate) async fn last_event_id(conn: &mut Conn) -> QueryResult<i64> {
            let max: Option<i64> = s::events::table.select(diesel::dsl::max(s::events::id)).first(conn).await?;
            Ok(max.unwrap_or(0))
        }

        /// 2 statements: deletes events written before `before`, but never the newest one (a
        /// reader resuming after it must find where the log stands).
        pub(crate) async fn prune_events(conn: &mut Conn, before: DateTime<Utc>) -> QueryResult<u64> {
            let newest = last_event_id(conn).await?;
            let deleted = diesel::delete(
                s::events::table.filter(s::events::created_at.lt(before)).filter(s::events::id.lt(newest)),
            )
            .execute(conn)
            .await?;
            Ok(deleted as u64)
        }
    };
}
