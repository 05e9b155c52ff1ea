DROP TRIGGER directives_events;
DROP TRIGGER orders_status_events;
DROP TRIGGER orders_created_events;
DROP TRIGGER sessions_changed_events;
DROP TRIGGER sessions_opened_events;
DROP TABLE events;
