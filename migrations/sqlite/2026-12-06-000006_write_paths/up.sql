-- As on PostgreSQL: no index on a column every modify changes (`updated_at`), so a modify
-- updates the row and no index; the idle sweep reads the open sessions only.
DROP INDEX sessions_state_updated_idx;
CREATE INDEX sessions_open_idx ON sessions (id) WHERE state = 'open';
