DROP TRIGGER directives_events ON directives;
DROP TRIGGER orders_events ON orders;
DROP TRIGGER sessions_events ON sessions;
DROP FUNCTION omniman_directive_events();
DROP FUNCTION omniman_order_events();
DROP FUNCTION omniman_session_events();
DROP FUNCTION omniman_new_stock_issues(JSONB, JSONB);
DROP TABLE events;
DROP FUNCTION omniman_notify_events();
