//! Statements whose SQL text never changes, prepared once per connection.

use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::QueryResult;

/// `UPDATE <table> SET <set> WHERE <filter>`, which the connection prepares once and runs again.
///
/// Diesel never caches an `UPDATE` it builds: a changeset may skip `None` fields, which changes
/// the text, so every run was parsed and planned again, and on PostgreSQL prepared in a round
/// trip of its own (one more per modify). The changesets given here (tuples of `column.eq(…)`)
/// write every column they name, so the text depends only on their types; `Tag`, one type per
/// call site, names the statement in the connection's cache.
pub(crate) struct FixedUpdate<Tag, S, W> {
    table: &'static str,
    set: S,
    filter: W,
    tag: PhantomData<Tag>,
}

impl<Tag, S, W> FixedUpdate<Tag, S, W> {
    /// `table` is the table's name as written in SQL; `set` a changeset (`AsChangeset::as_changeset`
    /// of a tuple of `column.eq(value)`), `filter` the `WHERE` condition.
    pub(crate) fn new(table: &'static str, set: S, filter: W) -> Self {
        FixedUpdate { table, set, filter, tag: PhantomData }
    }
}

impl<Tag: 'static, S, W> QueryId for FixedUpdate<Tag, S, W> {
    type QueryId = Tag;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<DB: Backend, Tag, S: QueryFragment<DB>, W: QueryFragment<DB>> QueryFragment<DB> for FixedUpdate<Tag, S, W> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        out.push_sql("UPDATE ");
        out.push_identifier(self.table)?;
        out.push_sql(" SET ");
        self.set.walk_ast(out.reborrow())?;
        out.push_sql(" WHERE ");
        self.filter.walk_ast(out.reborrow())
    }
}
