ALTER TABLE api_tokens DROP COLUMN IF EXISTS rate_limits;
