DROP TABLE IF EXISTS webhook_dispatch;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhooks;
