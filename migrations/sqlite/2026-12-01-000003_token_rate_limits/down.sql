ALTER TABLE api_tokens DROP COLUMN rate_limits;
