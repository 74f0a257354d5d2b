-- Baseline (d) of the write-path benchmark: PgQ, the queue behind Londiste (Debian's
-- postgresql-15-pgq3). pgq.logutriga is its C row trigger: for every row it URL-encodes the
-- row's columns and calls pgq.insert_event (a C function too) into the queue's current event
-- table (pgq.event_N_M, inherited tables with an index on ev_txid). No ticker runs: the bench
-- measures what the writer pays, not delivery. No admission rules, no NOTIFY: a consumer polls.
CREATE EXTENSION pgq;
SELECT pgq.create_queue('erp_sync_bench');

CREATE TRIGGER pgq_capture AFTER INSERT OR UPDATE ON mp.contacts
  FOR EACH ROW EXECUTE FUNCTION pgq.logutriga('erp_sync_bench');
