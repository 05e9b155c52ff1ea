//! `channels` and `api_tokens`.

/// The channel and token queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! channel_and_token_queries {
    () => {
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
    };
}
