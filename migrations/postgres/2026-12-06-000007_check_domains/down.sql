ALTER TABLE idempotency_keys
    ALTER COLUMN status TYPE VARCHAR(16),
    ADD CONSTRAINT idempotency_keys_status_check CHECK (status IN ('in_progress', 'done', 'failed'));

ALTER TABLE sessions
    ALTER COLUMN state TYPE VARCHAR(16),
    ALTER COLUMN pricing_policy TYPE VARCHAR(16),
    ALTER COLUMN edit_policy TYPE VARCHAR(16),
    ALTER COLUMN rev TYPE BIGINT,
    ALTER COLUMN version TYPE BIGINT,
    ADD CONSTRAINT sessions_state_check CHECK (state IN ('open', 'committed', 'abandoned')),
    ADD CONSTRAINT sessions_pricing_policy_check CHECK (pricing_policy IN ('internal', 'external')),
    ADD CONSTRAINT sessions_edit_policy_check CHECK (edit_policy IN ('open', 'locked')),
    ADD CONSTRAINT sessions_rev_check CHECK (rev >= 0),
    ADD CONSTRAINT sessions_version_check CHECK (version >= 0);

DROP DOMAIN omniman_count;
DROP DOMAIN omniman_key_status;
DROP DOMAIN omniman_edit_policy;
DROP DOMAIN omniman_pricing_policy;
DROP DOMAIN omniman_session_state;
