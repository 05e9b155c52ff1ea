-- Nothing changes on SQLite: it compiles a table's CHECK constraints into each statement when
-- it prepares it, once per connection (see the PostgreSQL migration of the same name).
SELECT 1;
