DROP FUNCTION omniman_abort(TEXT);
ALTER TABLE sessions RESET (fillfactor);
DROP INDEX sessions_open_idx;
CREATE INDEX sessions_state_updated_idx ON sessions (state, updated_at);
