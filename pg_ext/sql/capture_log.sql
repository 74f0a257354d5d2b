-- erp_sync capture log (since 0.2.0; used with the setting capture.mode = 'log', see
-- src/capture/log.rs): the capture trigger writes one narrow row per statement and kind of work,
-- erp_sync.expand() (called by erp_sync.claim()) turns committed rows into outbox rows.
--
-- Rows go to capture_log_0 or capture_log_1 by their transaction id (capture.log_rotate_xids ids
-- per turn); reading capture_log reads both. A table whose rows are all expanded and that no
-- writer holds is truncated by expand(): append-only, no DELETE, no dead rows. The only index is
-- the one expansion reads by (txid).
CREATE TABLE erp_sync.capture_log (
    txid      xid8 NOT NULL DEFAULT pg_catalog.pg_current_xact_id(),
    source    oid NOT NULL,                 -- the captured table (regclass)
    op        "char" NOT NULL,              -- c: resync, a: resync + assign, f: follow-up
    keys      text[] NOT NULL,              -- contact keys
    refs      bigint[],                     -- a: thread ids, f: signal ids (per key)
    templates int[],                        -- f: follow-up templates (per key)
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE erp_sync.capture_log_0 () INHERITS (erp_sync.capture_log);
CREATE TABLE erp_sync.capture_log_1 () INHERITS (erp_sync.capture_log);
CREATE INDEX capture_log_0_txid_idx ON erp_sync.capture_log_0 (txid);
CREATE INDEX capture_log_1_txid_idx ON erp_sync.capture_log_1 (txid);
COMMENT ON TABLE erp_sync.capture_log IS 'captured statements waiting for expansion into the outbox (capture.mode = log)';

-- The snapshot of the last expansion: a log row is expanded once its transaction is visible in
-- it. One row; expand() locks it SKIP LOCKED (one expansion at a time across sidecars).
CREATE TABLE erp_sync.capture_cursor (
    id          int PRIMARY KEY CHECK (id = 1),
    last        pg_snapshot NOT NULL,
    expanded_at timestamptz
);
INSERT INTO erp_sync.capture_cursor (id, last) VALUES (1, pg_catalog.pg_current_snapshot());

-- What is captured and not expanded yet, one row per key (the queue view and contact_status
-- count it as pending).
CREATE VIEW erp_sync.captured AS
SELECT k.key AS contact_id,
       CASE l.op WHEN 'f' THEN 'followup' ELSE 'customer' END AS kind,
       l.at AS captured_at
FROM erp_sync.capture_log l
CROSS JOIN erp_sync.capture_cursor c
CROSS JOIN LATERAL unnest(l.keys) AS k(key)
WHERE l.txid >= pg_catalog.pg_snapshot_xmin(c.last)
  AND NOT pg_catalog.pg_visible_in_snapshot(l.txid, c.last);
