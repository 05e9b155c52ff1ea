-- Webhook subscriptions (docs/webhooks.md). `secret` is kept as is: every delivery is signed
-- with it. `start_after`: the subscription receives events with a higher id only (the log's end
-- when it was created).
CREATE TABLE webhooks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    url            TEXT    NOT NULL CHECK (length(url) <= 2048),
    secret         TEXT    NOT NULL CHECK (length(secret) <= 128),
    events         TEXT    NOT NULL CHECK (json_valid(events)),
    channels       TEXT    CHECK (json_valid(channels)),
    active         INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
    start_after    INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now')),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;
CREATE INDEX webhooks_active_idx ON webhooks (id) WHERE active;

-- One row per delivery: its directive (whose id is the delivery id) carries the event and its
-- status; this row says which subscription and event it is for, so they can be listed.
CREATE TABLE webhook_deliveries (
    directive_id   INTEGER PRIMARY KEY REFERENCES directives (id) ON DELETE CASCADE,
    webhook_id     INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id       INTEGER,
    event_type     TEXT    NOT NULL CHECK (length(event_type) <= 64),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at, directive_id);

-- The dispatcher's position in the event log: every event up to `position` has had its
-- deliveries enqueued. Moved by compare-and-set in the transaction that enqueues them.
CREATE TABLE webhook_dispatch (
    name           TEXT    PRIMARY KEY CHECK (length(name) <= 64),
    position       INTEGER NOT NULL CHECK (position >= 0),
    updated_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;
INSERT INTO webhook_dispatch (name, position) VALUES ('webhooks', 0);
