-- The rules on the columns that every request writes, as domains instead of table CHECK
-- constraints: the same values are allowed, and a value outside them fails the same way
-- (SQLSTATE 23514, check_violation). PostgreSQL reads a table's CHECK constraints back from
-- their stored text and prepares them again for every statement that writes the table, all of
-- them whatever columns it sets; it keeps a domain's check prepared, and runs it for the
-- columns a statement sets. Every request writes `sessions`, a commit `idempotency_keys`
-- (docs/storage.md, "Indexes and plans").

CREATE DOMAIN omniman_session_state AS VARCHAR(16) CHECK (VALUE IN ('open', 'committed', 'abandoned'));
CREATE DOMAIN omniman_pricing_policy AS VARCHAR(16) CHECK (VALUE IN ('internal', 'external'));
CREATE DOMAIN omniman_edit_policy AS VARCHAR(16) CHECK (VALUE IN ('open', 'locked'));
CREATE DOMAIN omniman_key_status AS VARCHAR(16) CHECK (VALUE IN ('in_progress', 'done', 'failed'));
CREATE DOMAIN omniman_count AS BIGINT CHECK (VALUE >= 0);

ALTER TABLE sessions
    DROP CONSTRAINT sessions_state_check,
    DROP CONSTRAINT sessions_pricing_policy_check,
    DROP CONSTRAINT sessions_edit_policy_check,
    DROP CONSTRAINT sessions_rev_check,
    DROP CONSTRAINT sessions_version_check,
    ALTER COLUMN state TYPE omniman_session_state,
    ALTER COLUMN pricing_policy TYPE omniman_pricing_policy,
    ALTER COLUMN edit_policy TYPE omniman_edit_policy,
    ALTER COLUMN rev TYPE omniman_count,
    ALTER COLUMN version TYPE omniman_count;

ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_status_check,
    ALTER COLUMN status TYPE omniman_key_status;
