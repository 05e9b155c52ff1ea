-- The event log (docs/events.md). The SQLite migration of the same name holds the same log,
-- written under the same conditions; the storage tests compare the two.
--
-- Triggers write each event in the transaction of the change it reports: it exists exactly
-- when the change does, no write path can leave one out, and a request pays no round trip for
-- it. Ids are drawn at insert and seen at commit, so a reader may see 42 before 41; readers
-- follow the log with omniman_core::events::EventCursor, which waits for such a hole until the
-- transactions in flight when it was seen have ended.

CREATE TABLE events (
    id             BIGSERIAL   PRIMARY KEY,
    type           VARCHAR(32) NOT NULL,
    -- Copied, not referenced: a directive's payload names them as text, and the log outlives
    -- what it reports.
    channel_code   TEXT,
    session_key    TEXT,
    order_ref      TEXT,
    data           JSONB       NOT NULL DEFAULT '{}',
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX events_created_idx ON events (created_at);

-- No NOTIFY here: a transaction that notifies holds a cluster-wide lock through its commit, so
-- every write would commit one at a time. Readers poll, and wake up at once on their own
-- process's writes.

-- The stock issues of `issues` that `before` does not hold (by issue id), as shortage lines;
-- NULL when there is none.
CREATE FUNCTION omniman_new_stock_issues(issues JSONB, before JSONB) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_agg(jsonb_build_object(
               'issue_id', i -> 'id',
               'line_id', i #> '{context,line_id}',
               'sku', i #> '{context,sku}',
               'requested_qty', i #> '{context,requested_qty}',
               'available_qty', i #> '{context,available_qty}'))
    FROM jsonb_array_elements(CASE jsonb_typeof(issues) WHEN 'array' THEN issues ELSE '[]' END) AS i
    WHERE i ->> 'source' = 'stock'
      AND NOT EXISTS (
          SELECT 1
          FROM jsonb_array_elements(CASE jsonb_typeof(before) WHEN 'array' THEN before ELSE '[]' END) AS o
          WHERE o -> 'id' = i -> 'id')
$$;

CREATE FUNCTION omniman_session_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT := (SELECT code FROM channels WHERE id = NEW.channel_id);
    shortage JSONB;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (type, channel_code, session_key, data)
        VALUES ('session.opened', channel, NEW.session_key, jsonb_build_object('rev', NEW.rev));
        RETURN NULL;
    END IF;
    IF NEW.state = 'open' AND NEW.rev <> OLD.rev THEN
        INSERT INTO events (type, channel_code, session_key, data)
        VALUES ('session.modified', channel, NEW.session_key, jsonb_build_object('rev', NEW.rev));
    END IF;
    IF NEW.state = 'abandoned' AND OLD.state <> 'abandoned' THEN
        INSERT INTO events (type, channel_code, session_key, data)
        VALUES ('session.abandoned', channel, NEW.session_key, jsonb_build_object('rev', NEW.rev));
    END IF;
    -- Only a check result (which keeps the rev) adds issues: a modify (a new rev) is spared
    -- reading both documents.
    IF NEW.state = 'open' AND NEW.rev = OLD.rev
       AND (NEW.data -> 'issues') IS DISTINCT FROM (OLD.data -> 'issues') THEN
        shortage := omniman_new_stock_issues(NEW.data -> 'issues', OLD.data -> 'issues');
        IF shortage IS NOT NULL THEN
            INSERT INTO events (type, channel_code, session_key, data)
            VALUES ('stock.shortage', channel, NEW.session_key,
                    jsonb_build_object('rev', NEW.rev, 'issues', shortage));
        END IF;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER sessions_events
    AFTER INSERT OR UPDATE ON sessions
    FOR EACH ROW EXECUTE FUNCTION omniman_session_events();

-- An order is created by committing its session: both events, in this order.
CREATE FUNCTION omniman_order_events() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    channel TEXT := (SELECT code FROM channels WHERE id = NEW.channel_id);
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (type, channel_code, session_key, order_ref, data)
        VALUES ('session.committed', channel, NEW.session_key, NEW.ref, '{}'),
               ('order.created', channel, NEW.session_key, NEW.ref,
                jsonb_build_object('status', NEW.status, 'total_q', NEW.total_q, 'currency', NEW.currency));
    ELSIF NEW.status <> OLD.status THEN
        INSERT INTO events (type, channel_code, session_key, order_ref, data)
        VALUES ('order.status_changed', channel, NEW.session_key, NEW.ref,
                jsonb_build_object('from', OLD.status, 'to', NEW.status));
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER orders_events
    AFTER INSERT OR UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION omniman_order_events();

CREATE FUNCTION omniman_directive_events() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (type, channel_code, session_key, order_ref, data)
    VALUES ('directive.failed', NEW.payload ->> 'channel_code', NEW.payload ->> 'session_key',
            NEW.payload ->> 'order_ref',
            jsonb_build_object('directive_id', NEW.id, 'topic', NEW.topic, 'attempts', NEW.attempts,
                               'last_error', NEW.last_error));
    RETURN NULL;
END;
$$;
CREATE TRIGGER directives_events
    AFTER UPDATE ON directives
    FOR EACH ROW WHEN (NEW.status = 'failed' AND OLD.status <> 'failed')
    EXECUTE FUNCTION omniman_directive_events();
