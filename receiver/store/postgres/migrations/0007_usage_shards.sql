-- 0007: a partner's stored bytes without a row that every ingest locks. Each ingest
-- committer adds its batches' bytes to a row of its own (writer), and pruning subtracts
-- under writer 'prune'; a partner's usage is its usage row plus its shards, and pruning
-- folds the shards into usage once a run. Additive: a receiver of the previous release
-- keeps writing usage, which the sum still counts.
CREATE TABLE IF NOT EXISTS usage_shards (
    partner_key text COLLATE "C" NOT NULL,
    writer      text COLLATE "C" NOT NULL,
    bytes       bigint NOT NULL,
    PRIMARY KEY (partner_key, writer)
);
