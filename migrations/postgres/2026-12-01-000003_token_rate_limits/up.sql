-- A token's own rate limits (`modify=300/min,commit=60/min`), overriding the server's
-- defaults class by class. NULL: the server's defaults apply.
ALTER TABLE api_tokens ADD COLUMN rate_limits VARCHAR(256);
