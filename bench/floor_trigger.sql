-- Baseline (e) of the write-path benchmark: the floor, a lower bound of any capture. One
-- statement-level trigger per event with a transition table; each statement appends ONE row to
-- an unindexed table holding its transaction id and the array of the ids it changed. Nothing is
-- checked or copied: a consumer would still have to read the rows and decide what to send.
-- (PostgreSQL allows a transition table only on a trigger for a single event, hence two triggers
-- sharing one function.)
CREATE TABLE mp.floor_log (
  txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  ids  bigint[] NOT NULL
);

CREATE FUNCTION mp.floor_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO mp.floor_log (ids) SELECT array_agg(id) FROM new_rows HAVING count(*) > 0;
  RETURN NULL;
END $$;

CREATE TRIGGER floor_capture_ins AFTER INSERT ON mp.contacts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mp.floor_capture();
CREATE TRIGGER floor_capture_upd AFTER UPDATE ON mp.contacts
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION mp.floor_capture();
