-- Per-key limits. A rate limit: rate_count requests per rate_period_ms, with bursts of up to
-- rate_burst (all three set, or none). Usage credits: credits_remaining as of
-- credits_updated_at (Unix milliseconds), reset to credits_refill_count at every
-- credits_refill_period_ms counted from created_at when both are set. Spending is written back
-- in batches; a change of limits is logged in tower_auth_api_key_changes as 'updated'.
ALTER TABLE tower_auth_api_keys ADD COLUMN rate_count INTEGER;
ALTER TABLE tower_auth_api_keys ADD COLUMN rate_period_ms INTEGER;
ALTER TABLE tower_auth_api_keys ADD COLUMN rate_burst INTEGER;
ALTER TABLE tower_auth_api_keys ADD COLUMN credits_remaining INTEGER;
ALTER TABLE tower_auth_api_keys ADD COLUMN credits_updated_at INTEGER;
ALTER TABLE tower_auth_api_keys ADD COLUMN credits_refill_count INTEGER;
ALTER TABLE tower_auth_api_keys ADD COLUMN credits_refill_period_ms INTEGER;
