-- Per-key limits. A rate limit: rate_count requests per rate_period_ms, with bursts of up to
-- rate_burst (all three set, or none). Usage credits: credits_remaining as of
-- credits_updated_at (Unix milliseconds), reset to credits_refill_count at every
-- credits_refill_period_ms counted from created_at when both are set. Spending is written back
-- in batches; a change of limits is notified on tower_auth_api_keys like a revocation.
ALTER TABLE tower_auth_api_keys
    ADD COLUMN rate_count               BIGINT,
    ADD COLUMN rate_period_ms           BIGINT,
    ADD COLUMN rate_burst               BIGINT,
    ADD COLUMN credits_remaining        BIGINT,
    ADD COLUMN credits_updated_at       BIGINT,
    ADD COLUMN credits_refill_count     BIGINT,
    ADD COLUMN credits_refill_period_ms BIGINT;
