-- Webhook subscriptions (docs/webhooks.md). `secret` is kept as is: every delivery is signed
-- with it. `start_after`: the subscription receives events with a higher id only (the log's end
-- when it was created).
CREATE TABLE webhooks (
    id             BIGSERIAL     PRIMARY KEY,
    url            VARCHAR(2048) NOT NULL,
    secret         VARCHAR(128)  NOT NULL,
    events         JSONB         NOT NULL,
    channels       JSONB,
    active         BOOLEAN       NOT NULL DEFAULT TRUE,
    start_after    BIGINT        NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ   NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ   NOT NULL DEFAULT now()
);
CREATE INDEX webhooks_active_idx ON webhooks (id) WHERE active;

-- One row per delivery: its directive (whose id is the delivery id) carries the event and its
-- status; this row says which subscription and event it is for, so they can be listed.
CREATE TABLE webhook_deliveries (
    directive_id   BIGINT       PRIMARY KEY REFERENCES directives (id) ON DELETE CASCADE,
    webhook_id     BIGINT       NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id       BIGINT,
    event_type     VARCHAR(64)  NOT NULL,
    created_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at, directive_id);

-- The dispatcher's position in the event log: every event up to `position` has had its
-- deliveries enqueued. Moved by compare-and-set in the transaction that enqueues them.
CREATE TABLE webhook_dispatch (
    name           VARCHAR(64)  PRIMARY KEY,
    position       BIGINT       NOT NULL CHECK (position >= 0),
    updated_at     TIMESTAMPTZ  NOT NULL DEFAULT now()
);
INSERT INTO webhook_dispatch (name, position) VALUES ('webhooks', 0);
