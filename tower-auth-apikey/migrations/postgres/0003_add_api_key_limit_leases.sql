-- Limits shared by several instances: each leases batches of rate tokens from a GCRA kept on
-- the key's row. rate_tat_us is the GCRA's theoretical arrival time (Unix microseconds; NULL
-- before the first lease); lease_granted the rate tokens handed out by the last lease, which
-- the leasing statement returns.
ALTER TABLE tower_auth_api_keys
    ADD COLUMN rate_tat_us   BIGINT,
    ADD COLUMN lease_granted BIGINT;
