-- 0003: what destination filters and metadata headers read of an event besides its type
-- (its sub-topic and tenant), and why an event no destination took is Stored.
ALTER TABLE events ADD COLUMN IF NOT EXISTS sub_type text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN IF NOT EXISTS tenant text NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN IF NOT EXISTS reason text NOT NULL DEFAULT '';
