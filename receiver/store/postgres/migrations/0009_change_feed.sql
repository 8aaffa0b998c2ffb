-- 0009: the events API's watches (kubectl get -w) follow every change of an event, on
-- every replica. Each row written carries the id of the transaction that wrote it, set
-- by a trigger whatever statement writes it; a replica reads the rows of transactions
-- that have all ended (below its snapshot's xmin) in xid order, so that no change is
-- missed and none waits on a lock: no NOTIFY, whose database-wide lock would serialise
-- the commits of ingest and delivery batches.
ALTER TABLE events ADD COLUMN IF NOT EXISTS change_xid xid8;

CREATE OR REPLACE FUNCTION hookgate_note_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS events_note_change ON events;
CREATE TRIGGER events_note_change BEFORE INSERT OR UPDATE ON events
    FOR EACH ROW EXECUTE FUNCTION hookgate_note_change();

CREATE INDEX IF NOT EXISTS events_change_xid ON events (change_xid);
