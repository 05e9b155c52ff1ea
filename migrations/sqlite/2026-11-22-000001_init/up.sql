-- Omniman initial schema (SQLite).
-- Same logical schema as the PostgreSQL migration of the same name:
--   * tables are STRICT, so column types are enforced as on PostgreSQL;
--   * ids are INTEGER PRIMARY KEY AUTOINCREMENT, so an id is never reused
--     (the orders stream relies on ids only growing);
--   * JSON documents are TEXT checked with json_valid();
--   * timestamps are TEXT in UTC, 'YYYY-MM-DD HH:MM:SS[.fff…]+00:00' (the
--     format of Diesel's TimestamptzSqlite), which sorts chronologically;
--   * booleans are INTEGER 0/1; VARCHAR(n) limits are CHECK (length(col) <= n).

CREATE TABLE channels (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    code           TEXT    NOT NULL UNIQUE CHECK (length(code) <= 64),
    name           TEXT    NOT NULL DEFAULT '' CHECK (length(name) <= 128),
    pricing_policy TEXT    NOT NULL DEFAULT 'internal'
                   CHECK (pricing_policy IN ('internal', 'external')),
    edit_policy    TEXT    NOT NULL DEFAULT 'open'
                   CHECK (edit_policy IN ('open', 'locked')),
    display_order  INTEGER NOT NULL DEFAULT 0 CHECK (display_order >= 0),
    config         TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(config)),
    is_active      INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;
CREATE INDEX channels_display_order_idx ON channels (display_order, id);

CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id     INTEGER NOT NULL REFERENCES channels (id),
    session_key    TEXT    NOT NULL CHECK (length(session_key) <= 64),
    handle_type    TEXT    CHECK (length(handle_type) <= 32),
    handle_ref     TEXT    CHECK (length(handle_ref) <= 64),
    state          TEXT    NOT NULL DEFAULT 'open'
                   CHECK (state IN ('open', 'committed', 'abandoned')),
    pricing_policy TEXT    NOT NULL DEFAULT 'internal'
                   CHECK (pricing_policy IN ('internal', 'external')),
    edit_policy    TEXT    NOT NULL DEFAULT 'open'
                   CHECK (edit_policy IN ('open', 'locked')),
    rev            INTEGER NOT NULL DEFAULT 0 CHECK (rev >= 0),
    version        INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
    items          TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(items)),
    data           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    pricing        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(pricing)),
    pricing_trace  TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(pricing_trace)),
    commit_token   TEXT    CHECK (length(commit_token) <= 128),
    opened_at      TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    committed_at   TEXT,
    CONSTRAINT sessions_channel_key_uniq UNIQUE (channel_id, session_key)
) STRICT;
-- At most one open session per (channel, handle_type, handle_ref) when both handle fields are set.
CREATE UNIQUE INDEX sessions_open_handle_uniq ON sessions (channel_id, handle_type, handle_ref)
    WHERE state = 'open' AND handle_type IS NOT NULL AND handle_ref IS NOT NULL;
CREATE INDEX sessions_channel_state_idx ON sessions (channel_id, state);
-- Addressing a session by key alone (GET without channel_code).
CREATE INDEX sessions_key_idx ON sessions (session_key);
CREATE INDEX sessions_opened_idx ON sessions (opened_at DESC, id DESC);
CREATE INDEX sessions_state_updated_idx ON sessions (state, updated_at);

CREATE TABLE orders (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ref            TEXT    NOT NULL UNIQUE CHECK (length(ref) <= 64),
    channel_id     INTEGER NOT NULL REFERENCES channels (id),
    session_key    TEXT    NOT NULL CHECK (length(session_key) <= 64),
    handle_type    TEXT    CHECK (length(handle_type) <= 32),
    handle_ref     TEXT    CHECK (length(handle_ref) <= 64),
    external_ref   TEXT    CHECK (length(external_ref) <= 128),
    status         TEXT    NOT NULL CHECK (length(status) <= 32),
    snapshot       TEXT    NOT NULL CHECK (json_valid(snapshot)),
    data           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    currency       TEXT    NOT NULL CHECK (length(currency) <= 3),
    total_q        INTEGER NOT NULL,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    confirmed_at   TEXT,
    processing_at  TEXT,
    ready_at       TEXT,
    dispatched_at  TEXT,
    delivered_at   TEXT,
    completed_at   TEXT,
    cancelled_at   TEXT,
    returned_at    TEXT
) STRICT;
CREATE INDEX orders_channel_status_idx ON orders (channel_id, status);
CREATE INDEX orders_created_idx ON orders (created_at DESC, id DESC);
CREATE INDEX orders_external_ref_idx ON orders (external_ref);
-- The order of a committed session (not unique: see the storage notes).
CREATE INDEX orders_channel_session_idx ON orders (channel_id, session_key);

CREATE TABLE order_items (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_id        TEXT    NOT NULL CHECK (length(line_id) <= 64),
    sku            TEXT    NOT NULL CHECK (length(sku) <= 64),
    name           TEXT    NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    qty_milli      INTEGER NOT NULL CHECK (qty_milli > 0),
    unit_price_q   INTEGER NOT NULL DEFAULT 0,
    line_total_q   INTEGER NOT NULL DEFAULT 0,
    meta           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(meta)),
    position       INTEGER NOT NULL,
    CONSTRAINT order_items_order_line_uniq UNIQUE (order_id, line_id)
) STRICT;

CREATE TABLE order_events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id       INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL CHECK (seq >= 0),
    type           TEXT    NOT NULL CHECK (length(type) <= 64),
    actor          TEXT    NOT NULL DEFAULT '' CHECK (length(actor) <= 128),
    payload        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    CONSTRAINT order_events_order_seq_uniq UNIQUE (order_id, seq)
) STRICT;

CREATE TABLE directives (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    topic          TEXT    NOT NULL CHECK (length(topic) <= 64),
    status         TEXT    NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'running', 'done', 'failed')),
    payload        TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(payload)),
    attempts       INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    available_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    last_error     TEXT    NOT NULL DEFAULT '',
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    started_at     TEXT
) STRICT;
CREATE INDEX directives_queued_idx ON directives (available_at, id) WHERE status = 'queued';
CREATE INDEX directives_running_idx ON directives (started_at) WHERE status = 'running';
CREATE INDEX directives_topic_status_idx ON directives (topic, status);
CREATE INDEX directives_created_idx ON directives (created_at DESC, id DESC);

CREATE TABLE idempotency_keys (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    scope          TEXT    NOT NULL CHECK (length(scope) <= 64),
    key            TEXT    NOT NULL CHECK (length(key) <= 128),
    status         TEXT    NOT NULL DEFAULT 'in_progress'
                   CHECK (status IN ('in_progress', 'done', 'failed')),
    response_code  INTEGER,
    response_body  TEXT    CHECK (json_valid(response_body)),
    session_key    TEXT    CHECK (length(session_key) <= 64),
    expires_at     TEXT,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    CONSTRAINT idempotency_keys_scope_key_uniq UNIQUE (scope, key)
) STRICT;
CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

CREATE TABLE api_tokens (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE CHECK (length(name) <= 128),
    token_hash     TEXT    NOT NULL UNIQUE CHECK (length(token_hash) <= 128),
    role           TEXT    NOT NULL CHECK (role IN ('client', 'admin')),
    channels       TEXT    CHECK (json_valid(channels)),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    revoked_at     TEXT
) STRICT;
