-- erp_sync privileges (runs last). The two roles are created in bootstrap.sql.
COMMENT ON ROLE erp_sync_worker IS 'erp_sync sidecar: drains the outbox, writes links/logs (grant it to the sidecar login)';
COMMENT ON ROLE erp_sync_reader IS 'erp_sync monitoring: status views only, mobiles masked';

-- The capture trigger writes the outbox on behalf of whatever role writes the platform table,
-- so it runs as the extension owner with a pinned search_path. Its prepared statements take
-- arrays of the statement's rows: a custom plan (the default while custom plans look cheaper,
-- i.e. forever for a 1-element array) would re-plan them on every call; the generic plans
-- (index probes per row) are right for any row count.
ALTER FUNCTION erp_sync.capture() SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET plan_cache_mode = force_generic_plan;

-- Nobody but the owner runs administrative functions by default. EXECUTE on a trigger function is
-- checked at CREATE TRIGGER only, never when it fires: revoking it keeps other roles from attaching
-- this SECURITY DEFINER function to tables of their own, and capture works for every writer.
REVOKE EXECUTE ON FUNCTION erp_sync.capture() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.track(regclass, text, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.untrack(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.track_source(regclass, jsonb) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.check_source(text, regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.check_sources() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.expand(int) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.rebuild_contact_status() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.contact_payload(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.signal_payload(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.pick_rep(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.request_sync(text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.retry_failed(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION erp_sync.resolve_in_doubt(bigint, boolean) FROM PUBLIC;

GRANT USAGE ON SCHEMA erp_sync TO erp_sync_worker, erp_sync_reader;

-- erp_sync_worker (the sidecar): least privilege.
GRANT SELECT, UPDATE ON erp_sync.outbox TO erp_sync_worker;
GRANT INSERT ON erp_sync.outbox TO erp_sync_worker;               -- 'rollback' rows
GRANT USAGE ON SEQUENCE erp_sync.outbox_id_seq TO erp_sync_worker;
GRANT SELECT, INSERT, UPDATE ON erp_sync.customer_link, erp_sync.sync_log,
    erp_sync.erp_customers, erp_sync.workers TO erp_sync_worker;
GRANT DELETE ON erp_sync.workers TO erp_sync_worker;               -- deregister on shutdown
GRANT USAGE ON SEQUENCE erp_sync.sync_log_id_seq TO erp_sync_worker;
GRANT SELECT ON erp_sync.settings, erp_sync.rejections, erp_sync.followup_templates,
    erp_sync.sales_reps, erp_sync.tracked_tables TO erp_sync_worker;
GRANT EXECUTE ON FUNCTION erp_sync.expand(int) TO erp_sync_worker;   -- claim() calls it first
GRANT EXECUTE ON FUNCTION erp_sync.contact_payload(text), erp_sync.signal_payload(bigint),
    erp_sync.pick_rep(text), erp_sync.retry_failed(text, text),
    erp_sync.resolve_in_doubt(bigint, boolean) TO erp_sync_worker;
GRANT SELECT ON erp_sync.contact_status, erp_sync.queue, erp_sync.settings_effective TO erp_sync_worker;

-- erp_sync_reader (monitoring): the views only; contact_status masks mobiles for it.
GRANT SELECT ON erp_sync.contact_status, erp_sync.queue, erp_sync.settings_effective TO erp_sync_reader;
