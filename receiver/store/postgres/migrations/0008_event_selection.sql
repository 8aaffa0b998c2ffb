-- 0008: the events API lists a namespace's events newest first, narrowed by endpoint or
-- by phase, each from an index of its own (a partner's list uses events_partner_uuid).
CREATE INDEX IF NOT EXISTS events_namespace_uuid ON events (partner_namespace, uuid);
CREATE INDEX IF NOT EXISTS events_endpoint_uuid ON events (endpoint_key, uuid);
CREATE INDEX IF NOT EXISTS events_namespace_phase_uuid ON events (partner_namespace, phase, uuid);
