-- 0002: deliveries are claimed by one worker pool at a time, across replicas. A claimed
-- delivery's due_at is its lease end, so the queue scans need no second condition: it
-- is due again exactly when its lease runs out (the claiming replica died). claimed_by
-- and lease_until say who holds it (renewal, release, and for an operator's query).
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS claimed_by text;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS lease_until timestamptz;
