-- Omniman initial schema (PostgreSQL).
-- The SQLite migration of the same name holds the same logical schema.
-- Timestamps are timestamptz, JSON documents are jsonb, ids are bigserial.
-- Only PostgreSQL has the NOTIFY trigger on directives (idle workers LISTEN for it).

CREATE TABLE channels (
    id             BIGSERIAL    PRIMARY KEY,
    code           VARCHAR(64)  NOT NULL UNIQUE,
    name           VARCHAR(128) NOT NULL DEFAULT '',
    pricing_policy VARCHAR(16)  NOT NULL DEFAULT 'internal'
                   CHECK (pricing_policy IN ('internal', 'external')),
    edit_policy    VARCHAR(16)  NOT NULL DEFAULT 'open'
                   CHECK (edit_policy IN ('open', 'locked')),
    display_order  INTEGER      NOT NULL DEFAULT 0 CHECK (display_order >= 0),
    config         JSONB        NOT NULL DEFAULT '{}',
    is_active      BOOLEAN      NOT NULL DEFAULT TRUE,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX channels_display_order_idx ON channels (display_order, id);

CREATE TABLE sessions (
    id             BIGSERIAL    PRIMARY KEY,
    channel_id     BIGINT       NOT NULL REFERENCES channels (id),
    session_key    VARCHAR(64)  NOT NULL,
    handle_type    VARCHAR(32),
    handle_ref     VARCHAR(64),
    state          VARCHAR(16)  NOT NULL DEFAULT 'open'
                   CHECK (state IN ('open', 'committed', 'abandoned')),
    pricing_policy VARCHAR(16)  NOT NULL DEFAULT 'internal'
                   CHECK (pricing_policy IN ('internal', 'external')),
    edit_policy    VARCHAR(16)  NOT NULL DEFAULT 'open'
                   CHECK (edit_policy IN ('open', 'locked')),
    rev            BIGINT       NOT NULL DEFAULT 0 CHECK (rev >= 0),
    version        BIGINT       NOT NULL DEFAULT 0 CHECK (version >= 0),
    items          JSONB        NOT NULL DEFAULT '[]',
    data           JSONB        NOT NULL DEFAULT '{}',
    pricing        JSONB        NOT NULL DEFAULT '{}',
    pricing_trace  JSONB        NOT NULL DEFAULT '[]',
    commit_token   VARCHAR(128),
    opened_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    committed_at   TIMESTAMPTZ,
    CONSTRAINT sessions_channel_key_uniq UNIQUE (channel_id, session_key)
);
-- At most one open session per (channel, handle_type, handle_ref) when both handle fields are set.
CREATE UNIQUE INDEX sessions_open_handle_uniq ON sessions (channel_id, handle_type, handle_ref)
    WHERE state = 'open' AND handle_type IS NOT NULL AND handle_ref IS NOT NULL;
CREATE INDEX sessions_channel_state_idx ON sessions (channel_id, state);
-- Addressing a session by key alone (GET without channel_code).
CREATE INDEX sessions_key_idx ON sessions (session_key);
CREATE INDEX sessions_opened_idx ON sessions (opened_at DESC, id DESC);
CREATE INDEX sessions_state_updated_idx ON sessions (state, updated_at);

CREATE TABLE orders (
    id             BIGSERIAL    PRIMARY KEY,
    ref            VARCHAR(64)  NOT NULL UNIQUE,
    channel_id     BIGINT       NOT NULL REFERENCES channels (id),
    session_key    VARCHAR(64)  NOT NULL,
    handle_type    VARCHAR(32),
    handle_ref     VARCHAR(64),
    external_ref   VARCHAR(128),
    status         VARCHAR(32)  NOT NULL,
    snapshot       JSONB        NOT NULL,
    data           JSONB        NOT NULL DEFAULT '{}',
    currency       VARCHAR(3)   NOT NULL,
    total_q        BIGINT       NOT NULL,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    confirmed_at   TIMESTAMPTZ,
    processing_at  TIMESTAMPTZ,
    ready_at       TIMESTAMPTZ,
    dispatched_at  TIMESTAMPTZ,
    delivered_at   TIMESTAMPTZ,
    completed_at   TIMESTAMPTZ,
    cancelled_at   TIMESTAMPTZ,
    returned_at    TIMESTAMPTZ
);
CREATE INDEX orders_channel_status_idx ON orders (channel_id, status);
CREATE INDEX orders_created_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_external_ref_idx ON orders (external_ref);
-- The order of a committed session (not unique: see the storage notes).
CREATE INDEX orders_channel_session_idx ON orders (channel_id, session_key);

CREATE TABLE order_items (
    id             BIGSERIAL    PRIMARY KEY,
    order_id       BIGINT       NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_id        VARCHAR(64)  NOT NULL,
    sku            VARCHAR(64)  NOT NULL,
    name           VARCHAR(200) NOT NULL DEFAULT '',
    qty_milli      BIGINT       NOT NULL CHECK (qty_milli > 0),
    unit_price_q   BIGINT       NOT NULL DEFAULT 0,
    line_total_q   BIGINT       NOT NULL DEFAULT 0,
    meta           JSONB        NOT NULL DEFAULT '{}',
    position       INTEGER      NOT NULL,
    CONSTRAINT order_items_order_line_uniq UNIQUE (order_id, line_id)
);

CREATE TABLE order_events (
    id             BIGSERIAL    PRIMARY KEY,
    order_id       BIGINT       NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq            INTEGER      NOT NULL CHECK (seq >= 0),
    type           VARCHAR(64)  NOT NULL,
    actor          VARCHAR(128) NOT NULL DEFAULT '',
    payload        JSONB        NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT order_events_order_seq_uniq UNIQUE (order_id, seq)
);

CREATE TABLE directives (
    id             BIGSERIAL    PRIMARY KEY,
    topic          VARCHAR(64)  NOT NULL,
    status         VARCHAR(16)  NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload        JSONB        NOT NULL DEFAULT '{}',
    attempts       INTEGER      NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    last_error     TEXT         NOT NULL DEFAULT '',
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    started_at     TIMESTAMPTZ
);
CREATE INDEX directives_queued_idx ON directives (available_at, id) WHERE status = 'queued';
CREATE INDEX directives_running_idx ON directives (started_at) WHERE status = 'running';
CREATE INDEX directives_topic_status_idx ON directives (topic, status);
CREATE INDEX directives_created_idx ON directives (created_at DESC, id DESC);

-- Wake idle workers (LISTEN omniman_directives) once per INSERT statement, inside the inserting
-- transaction: the notification is delivered on commit and dropped on rollback, and enqueueing
-- costs no extra statement.
CREATE FUNCTION omniman_notify_directives() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('omniman_directives', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER directives_notify
    AFTER INSERT ON directives
    FOR EACH STATEMENT EXECUTE FUNCTION omniman_notify_directives();

CREATE TABLE idempotency_keys (
    id             BIGSERIAL    PRIMARY KEY,
    scope          VARCHAR(64)  NOT NULL,
    key            VARCHAR(128) NOT NULL,
    status         VARCHAR(16)  NOT NULL DEFAULT 'in_progress'
                   CHECK (status IN ('in_progress', 'done', 'failed')),
    response_code  INTEGER,
    response_body  JSONB,
    session_key    VARCHAR(64),
    expires_at     TIMESTAMPTZ,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_scope_key_uniq UNIQUE (scope, key)
);
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

CREATE TABLE api_tokens (
    id             BIGSERIAL    PRIMARY KEY,
    name           VARCHAR(128) NOT NULL UNIQUE,
    token_hash     VARCHAR(128) NOT NULL UNIQUE,
    role           VARCHAR(16)  NOT NULL CHECK (role IN ('client', 'admin')),
    channels       JSONB,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now(),
    revoked_at     TIMESTAMPTZ
);
