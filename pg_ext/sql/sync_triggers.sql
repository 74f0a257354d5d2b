-- erp_sync sync triggers (since 0.2.0): tables other than the contact/thread/signal tables whose
-- rows ask for a sync of their contact, e.g. the platform's orders or payments (spec 同步时机:
-- 客户完成首次付款/下单 → 实时同步). erp_sync.track(tbl, 'trigger', '{"contact_id": "...",
-- "condition": "..."}') writes a row here and attaches the capture trigger; an INSERT (or, with a
-- condition column, a row whose condition is or turns true) re-checks the contact's admission and
-- queues its customer row, or records the rejection — what erp_sync.request_sync() does.
CREATE TABLE erp_sync.sync_triggers (
    relid      regclass PRIMARY KEY,
    columns    jsonb NOT NULL CHECK (jsonb_typeof(columns) = 'object' AND columns ? 'contact_id'),
    tracked_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE erp_sync.sync_triggers IS 'tables whose rows ask for a sync of their contact (erp_sync.track(tbl, ''trigger'', ...))';
SELECT pg_catalog.pg_extension_config_dump('erp_sync.sync_triggers', '');
GRANT SELECT ON erp_sync.sync_triggers TO erp_sync_worker, erp_sync_reader;
