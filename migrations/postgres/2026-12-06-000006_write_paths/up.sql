-- A modify rewrites a session's lines, data, pricing, rev, version and updated_at. None of them
-- may be indexed, so that PostgreSQL rewrites the row in place (a HOT update, no new index
-- entries): `sessions_state_updated_idx` indexed `updated_at`. It also led the planner, on a
-- table without statistics, to find a session by `state` instead of by `id` in the write's
-- compare-and-set, reading every open session's entry on each write (docs/storage.md, "Indexes
-- and plans").
DROP INDEX sessions_state_updated_idx;
-- The idle sweep (`abandon_idle_sessions`) reads the open sessions only.
CREATE INDEX sessions_open_idx ON sessions (id) WHERE state = 'open';
-- Room in each page for the next versions of its rows, which a HOT update needs.
ALTER TABLE sessions SET (fillfactor = 70);

-- The commit is one statement outside any explicit transaction (docs/storage.md, "The commit
-- statement"). When the idempotency key turns out to be held, the statement has already updated
-- the session and inserted the order: this call fails it, which undoes it all.
CREATE FUNCTION omniman_abort(reason TEXT) RETURNS BIGINT LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'OM001', MESSAGE = reason;
END
$$;
