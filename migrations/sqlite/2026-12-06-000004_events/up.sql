-- The event log (docs/events.md). Same log as the PostgreSQL migration of the same name,
-- written under the same conditions and in the same order; the storage tests compare the two.
-- Triggers write each event in the transaction of the change it reports. SQLite has one writer
-- at a time, so ids become visible in order and a reader never sees a hole it must wait for.

CREATE TABLE events (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    type           TEXT    NOT NULL CHECK (length(type) <= 32),
    channel_code   TEXT,
    session_key    TEXT,
    order_ref      TEXT,
    data           TEXT    NOT NULL DEFAULT '{}' CHECK (json_valid(data)),
    created_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f+00:00', 'now'))
) STRICT;
CREATE INDEX events_created_idx ON events (created_at);

CREATE TRIGGER sessions_opened_events AFTER INSERT ON sessions
BEGIN
    INSERT INTO events (type, channel_code, session_key, data)
    VALUES ('session.opened', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key,
            json_object('rev', NEW.rev));
END;

-- One trigger for every update, so that its events come in the PostgreSQL function's order.
CREATE TRIGGER sessions_changed_events AFTER UPDATE ON sessions
BEGIN
    INSERT INTO events (type, channel_code, session_key, data)
    SELECT 'session.modified', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key,
           json_object('rev', NEW.rev)
    WHERE NEW.state = 'open' AND NEW.rev <> OLD.rev;

    INSERT INTO events (type, channel_code, session_key, data)
    SELECT 'session.abandoned', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key,
           json_object('rev', NEW.rev)
    WHERE NEW.state = 'abandoned' AND OLD.state <> 'abandoned';

    INSERT INTO events (type, channel_code, session_key, data)
    SELECT 'stock.shortage', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key,
           json_object('rev', NEW.rev, 'issues', json(shortage.lines))
    FROM (
        SELECT count(*) AS n, json_group_array(json_object(
                   'issue_id', json_extract(i.value, '$.id'),
                   'line_id', json_extract(i.value, '$.context.line_id'),
                   'sku', json_extract(i.value, '$.context.sku'),
                   'requested_qty', json_extract(i.value, '$.context.requested_qty'),
                   'available_qty', json_extract(i.value, '$.context.available_qty'))) AS lines
        FROM json_each(CASE json_type(NEW.data, '$.issues') WHEN 'array' THEN json_extract(NEW.data, '$.issues')
                       ELSE '[]' END) AS i
        WHERE json_extract(i.value, '$.source') = 'stock'
          AND NOT EXISTS (
              SELECT 1
              FROM json_each(CASE json_type(OLD.data, '$.issues') WHEN 'array' THEN json_extract(OLD.data, '$.issues')
                             ELSE '[]' END) AS o
              WHERE json_extract(o.value, '$.id') IS json_extract(i.value, '$.id'))
    ) AS shortage
    -- Only a check result (which keeps the rev) adds issues.
    WHERE NEW.state = 'open' AND NEW.rev = OLD.rev
      AND json_extract(NEW.data, '$.issues') IS NOT json_extract(OLD.data, '$.issues')
      AND shortage.n > 0;
END;

-- An order is created by committing its session: both events, in this order.
CREATE TRIGGER orders_created_events AFTER INSERT ON orders
BEGIN
    INSERT INTO events (type, channel_code, session_key, order_ref, data)
    VALUES ('session.committed', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key,
            NEW.ref, '{}'),
           ('order.created', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key, NEW.ref,
            json_object('status', NEW.status, 'total_q', NEW.total_q, 'currency', NEW.currency));
END;

CREATE TRIGGER orders_status_events AFTER UPDATE OF status ON orders
WHEN NEW.status <> OLD.status
BEGIN
    INSERT INTO events (type, channel_code, session_key, order_ref, data)
    VALUES ('order.status_changed', (SELECT code FROM channels WHERE id = NEW.channel_id), NEW.session_key,
            NEW.ref, json_object('from', OLD.status, 'to', NEW.status));
END;

CREATE TRIGGER directives_events AFTER UPDATE OF status ON directives
WHEN NEW.status = 'failed' AND OLD.status <> 'failed'
BEGIN
    INSERT INTO events (type, channel_code, session_key, order_ref, data)
    VALUES ('directive.failed', json_extract(NEW.payload, '$.channel_code') || '',
            json_extract(NEW.payload, '$.session_key') || '', json_extract(NEW.payload, '$.order_ref') || '',
            json_object('directive_id', NEW.id, 'topic', NEW.topic, 'attempts', NEW.attempts,
                        'last_error', NEW.last_error));
END;
