-- 0006: an event goes to every destination whose filter takes it. Each destination's
-- delivery state (phase, attempts, backoff, last outcome) is kept in the event row as a
-- JSON array, whose aggregate the event's own columns hold; NULL in rows from before it
-- means one delivery to the default destination, made of those columns. ready_at is a
-- queued delivery's own due time, which a claim's lease end hides in due_at.
ALTER TABLE events ADD COLUMN IF NOT EXISTS deliveries jsonb;
ALTER TABLE deliveries ADD COLUMN IF NOT EXISTS ready_at timestamptz;
