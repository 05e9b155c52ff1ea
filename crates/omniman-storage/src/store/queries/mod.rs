//! The query logic, written once and instantiated per backend, one file per table group.
//!
//! `shared_queries!()` expands into the backend modules (`pg.rs`, `sqlite.rs`). Each of them
//! first brings into scope what differs between the backends:
//!
//! * `s`: the schema module (`schema::pg` / `schema::sqlite`: SQL types of JSON and time);
//! * `Conn` and `Db`: the raw connection and the Diesel backend;
//! * `tx!(conn, async move |c| …)`: a write transaction (PostgreSQL: `BEGIN`; SQLite:
//!   `BEGIN IMMEDIATE`, so that a transaction never has to upgrade a read lock);
//! * `insert_rows_returning!`: one multi-row `INSERT … RETURNING` (SQLite: through Diesel's
//!   synchronous connection, which can batch; diesel-async cannot on SQLite);
//! * `claimable!(now, topics, limit)`: the claim's `id IN (SELECT …)` condition (Diesel cannot
//!   type a subquery on the table being updated): PostgreSQL adds `FOR UPDATE SKIP LOCKED` and
//!   matches topics with `= ANY(array)`; SQLite (whose single writer already serializes claims)
//!   matches them through `json_each`;
//! * `for_update!(query)`: a `SELECT` that locks the rows it reads until the transaction ends
//!   (PostgreSQL: `FOR UPDATE`; SQLite: unchanged, the immediate transaction already holds the
//!   database's write lock);
//! * `in_flight_xids!()`: a text column listing the transactions in flight in the statement's
//!   snapshot (PostgreSQL: `pg_current_snapshot()`'s, comma-separated; SQLite: always empty,
//!   its one writer commits ids in order).
//!
//! Every function runs exactly the statements its doc comment counts (transaction control
//! excluded); the statement-budget tests hold them to it.
//!
//! Each file of this module defines the `macro_rules!` of one table group; `shared_queries!()`
//! brings the imports they share into scope once and expands them all into the same backend
//! module, so the queries of every group are one source for both backends and call each other
//! as before.
//!
//! The commit is the exception: on SQLite, `commit_in_statements!()` (in `orders.rs`) writes one
//! statement per table in an immediate transaction, reusing the session update, the directive
//! insert and the idempotency upsert; on PostgreSQL, `pg::commit` writes the same rows in one
//! statement (data-modifying CTEs) built from the same pieces: the session's compare-and-set
//! (`session_cas!`, `session_update_values!`) and the key's claim rule (`key_rule`).

// `#[macro_use]`: the group macros are expanded where `shared_queries!()` is, in the backend
// modules declared after this one.
#[macro_use]
mod channels;
#[macro_use]
mod directives;
#[macro_use]
mod events;
#[macro_use]
mod idempotency;
#[macro_use]
mod orders;
#[macro_use]
mod sessions;
#[macro_use]
mod stock;
#[macro_use]
mod webhooks;

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

/// The most values one statement may bind on both backends: SQLite's default limit
/// (`SQLITE_MAX_VARIABLE_NUMBER`, 32,766); PostgreSQL's is 65,535. A multi-row insert that can
/// grow with its input is split into statements of at most `MAX_BIND_VALUES / columns` rows.
pub(crate) const MAX_BIND_VALUES: usize = 32_766;

/// Rows of `columns` bound values each that one statement can insert (see [`MAX_BIND_VALUES`]).
pub(crate) const fn rows_per_insert(columns: usize) -> usize {
    MAX_BIND_VALUES / columns
}

/// Expands into the query functions of one backend (see the module documentation).
macro_rules! shared_queries {
    () => {
        use chrono::{DateTime, Utc};
        use diesel::upsert::excluded;
        use diesel::{BoolExpressionMethods, ExpressionMethods, IntoSql, OptionalExtension, QueryDsl, QueryResult};
        use diesel_async::RunQueryDsl;
        use omniman_core::commit::CommitPlan;
        use omniman_core::directive::{DirectiveStatus, DirectiveUpdate};
        use omniman_core::idempotency::IdempotencyStatus;
        use omniman_core::order::{NewEvent, TransitionPlan};
        use omniman_core::page::PageRequest;
        use omniman_core::ports::{DirectiveFilter, OrderFilter, SessionFilter};
        use omniman_core::session::SessionState;
        use serde_json::Value;

        use crate::store::rows::{
            ChannelRow, ChannelValues, DirectiveRow, DirectiveValues, EventRow, HOLD_ACTIVE, HOLD_FULFILLED,
            HOLD_RELEASED, HoldValues, IdempotencyRow, IdempotencyValues, OrderRow, SessionRow, SessionValues,
            SummaryRow, TokenRow, TokenValues, ts, ts_opt, violates,
        };
        use crate::store::{CommitAbort, KeyRule};

        channel_and_token_queries!();
        session_queries!();
        order_queries!();
        directive_queries!();
        event_queries!();
        idempotency_queries!();
        stock_queries!();
        webhook_queries!();
    };
}
