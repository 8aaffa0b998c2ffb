-- 0001: the receiver's event store. Every statement is idempotent (IF NOT EXISTS), so
-- that a migration interrupted before its schema_migrations row was written can run again.
--
-- Keys that the receiver compares or orders by (uuids, partner and endpoint keys, queue
-- keys) use the "C" collation: byte order, as the embedded store has, whatever the
-- database's default collation.

-- One row per stored event: every field of store.Event, plus the partner and endpoint
-- keys it is looked up by and the payload's length (for the per-partner usage).
CREATE TABLE IF NOT EXISTS events (
    uuid               text COLLATE "C" PRIMARY KEY,
    partner_key        text COLLATE "C" NOT NULL,
    endpoint_key       text COLLATE "C" NOT NULL,
    event_id           text COLLATE "C" NOT NULL,
    type               text NOT NULL DEFAULT '',
    partner_namespace  text NOT NULL,
    partner            text NOT NULL,
    endpoint_namespace text NOT NULL,
    endpoint           text NOT NULL,
    received_at        timestamptz NOT NULL,
    payload_sha256     text NOT NULL DEFAULT '',
    size_bytes         bigint NOT NULL DEFAULT 0,
    content_type       text NOT NULL DEFAULT '',
    phase              text NOT NULL,
    attempts           integer NOT NULL DEFAULT 0,
    last_attempt_at    timestamptz,
    next_attempt_at    timestamptz,
    last_response_code integer NOT NULL DEFAULT 0,
    last_error         text NOT NULL DEFAULT '',
    delivered_at       timestamptz,
    attempt_base       integer NOT NULL DEFAULT 0,
    version            bigint NOT NULL,
    payload_bytes      bigint NOT NULL DEFAULT 0
);

-- FindByEventID: a partner's latest event with an event id.
CREATE INDEX IF NOT EXISTS events_by_event_id ON events (partner_key, event_id, uuid);
-- Prune: finished events in receipt order.
CREATE INDEX IF NOT EXISTS events_finished ON events (received_at, uuid)
    WHERE phase IN ('Delivered', 'Failed', 'Stored');
-- RequeueFailed: an endpoint's failed events.
CREATE INDEX IF NOT EXISTS events_failed ON events (endpoint_key) WHERE phase = 'Failed';

-- The raw bodies, apart from the records so that reading records never reads bodies.
CREATE TABLE IF NOT EXISTS payloads (
    uuid text COLLATE "C" PRIMARY KEY REFERENCES events (uuid) ON DELETE CASCADE,
    body bytea NOT NULL
);

-- Deduplication keys (partner \x00 endpoint \x00 event id: bytea, since text cannot hold
-- NUL) with the end of their window and the event they name. A key outlives its event
-- when retention is shorter than the window.
CREATE TABLE IF NOT EXISTS dedup (
    key        bytea PRIMARY KEY,
    expires_at timestamptz NOT NULL,
    uuid       text COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS dedup_expiry ON dedup (expires_at);

-- Deliveries waiting, due or not: one row per event and destination queue. An event
-- has one destination today (its endpoint's, store.QueueKey); delivering one event to
-- several destinations adds rows, not columns.
CREATE TABLE IF NOT EXISTS deliveries (
    uuid   text COLLATE "C" NOT NULL REFERENCES events (uuid) ON DELETE CASCADE,
    queue  text COLLATE "C" NOT NULL,
    due_at timestamptz NOT NULL,
    PRIMARY KEY (uuid, queue)
);
-- Due (one queue, oldest due first) and DueQueues (each queue's oldest due).
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (queue, due_at, uuid);

-- Delivery attempts, by event, queue (destination) and number.
CREATE TABLE IF NOT EXISTS attempts (
    uuid          text COLLATE "C" NOT NULL REFERENCES events (uuid) ON DELETE CASCADE,
    queue         text COLLATE "C" NOT NULL,
    number        integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ns   bigint NOT NULL,
    response_code integer NOT NULL DEFAULT 0,
    error         text NOT NULL DEFAULT '',
    PRIMARY KEY (uuid, queue, number)
);

-- Events whose newest version the status reflector has not written yet.
CREATE TABLE IF NOT EXISTS reflect (
    uuid    text COLLATE "C" PRIMARY KEY REFERENCES events (uuid) ON DELETE CASCADE,
    version bigint NOT NULL
);

-- Small named values (handled redelivery annotations).
CREATE TABLE IF NOT EXISTS tokens (
    name  text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);

-- Payload bytes stored per partner (partner key), for the stored-bytes quota.
CREATE TABLE IF NOT EXISTS usage (
    partner_key text COLLATE "C" PRIMARY KEY,
    bytes       bigint NOT NULL
);
