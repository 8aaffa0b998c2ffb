-- 0004: the partner API lists a partner's events newest first, page by page.
CREATE INDEX IF NOT EXISTS events_partner_uuid ON events (partner_key, uuid);
