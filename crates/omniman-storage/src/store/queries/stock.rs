//! `stock_levels` and `stock_holds`.

/// The holds that count against a SKU's level at `$now`: `active` and not expired.
macro_rules! live_holds {
    ($sku:expr, $now:expr) => {
        s::stock_holds::table
            .filter(s::stock_holds::sku.eq($sku))
            .filter(s::stock_holds::status.eq(HOLD_ACTIVE))
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

/// The stock queries of one backend, expanded by `shared_queries!` (see `queries/mod.rs`).
macro_rules! stock_queries {
    () => {
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
                        s::stock_holds::status.eq(HOLD_ACTIVE),
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
                    .filter(s::stock_holds::status.eq(HOLD_ACTIVE));
                let fulfilled = (s::stock_holds::status.eq(HOLD_FULFILLED), s::stock_holds::updated_at.eq(now));
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
                    return Ok(status.as_deref() == Some(HOLD_FULFILLED));
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
                    .filter(s::stock_holds::status.eq(HOLD_ACTIVE)),
            )
            .set((s::stock_holds::status.eq(HOLD_RELEASED), s::stock_holds::updated_at.eq(now)))
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
                    .filter(s::stock_holds::status.eq(HOLD_ACTIVE)),
            )
            .set((s::stock_holds::status.eq(HOLD_RELEASED), s::stock_holds::updated_at.eq(now)))
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
