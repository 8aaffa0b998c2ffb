-- 0005: each partner's requests per UTC day by outcome and reason (the partner API's
-- key usage), added in batches by every replica.
CREATE TABLE IF NOT EXISTS daily_counts (
    partner_key text COLLATE "C" NOT NULL,
    day         date NOT NULL,
    outcome     text NOT NULL,
    reason      text NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (partner_key, day, outcome, reason)
);
