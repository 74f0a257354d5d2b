-- erp_sync rollback: the operator's undo of one ERP write (executed by the sidecar's rollback
-- handler, sidecar/src/engine/handlers.rs).

-- Undo one successful create/update/supplement of sync_log: enqueues an outbox 'rollback' row
-- (ref_id = the sync_log id) that the sidecar executes (a create deletes the ERP customer, an
-- update restores old_data) before marking the entry rolled_back. Returns the outbox id.
CREATE FUNCTION erp_sync.rollback(sync_log_id bigint) RETURNS bigint
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    e record;
    pending bigint;
    new_id bigint;
BEGIN
    SELECT l.id, l.action, l.outcome, l.erp_ord, l.contact_id, l.old_data, l.rolled_back_at
    INTO e
    FROM erp_sync.sync_log l
    WHERE l.id = rollback.sync_log_id
    FOR UPDATE;  -- serialises concurrent rollback() calls of one entry
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erp_sync: sync_log entry % does not exist', rollback.sync_log_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'see erp_sync.sync_log for ids';
    END IF;
    IF e.rolled_back_at IS NOT NULL OR e.outcome = 'rolled_back' THEN
        RAISE EXCEPTION 'erp_sync: sync_log entry % is already rolled back', rollback.sync_log_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('rolled back at %s', coalesce(e.rolled_back_at::text, 'unknown')),
                  HINT = 'nothing to do: the ERP change was already undone';
    END IF;
    IF e.action NOT IN ('create', 'update', 'supplement') THEN
        RAISE EXCEPTION 'erp_sync: sync_log entry % is a % entry: nothing to undo', rollback.sync_log_id, e.action
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'only create, update and supplement entries can be rolled back';
    END IF;
    IF e.outcome <> 'success' THEN
        RAISE EXCEPTION 'erp_sync: sync_log entry % has outcome %: nothing to undo', rollback.sync_log_id, e.outcome
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'only successful entries changed the ERP';
    END IF;
    IF e.erp_ord IS NULL OR e.contact_id IS NULL THEN
        RAISE EXCEPTION 'erp_sync: sync_log entry % has no ERP ord or contact', rollback.sync_log_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'the entry does not say which ERP customer to undo';
    END IF;
    IF e.action <> 'create' AND e.old_data IS NULL THEN
        RAISE EXCEPTION 'erp_sync: sync_log entry % has no old data to restore', rollback.sync_log_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'the ERP customer''s previous fields were not recorded';
    END IF;
    SELECT o.id INTO pending
    FROM erp_sync.outbox o
    WHERE o.kind = 'rollback' AND o.ref_id = rollback.sync_log_id
      AND o.status IN ('pending', 'running')
    LIMIT 1;
    IF pending IS NOT NULL THEN
        RAISE EXCEPTION 'erp_sync: a rollback of sync_log entry % is already pending (outbox %)', rollback.sync_log_id, pending
            USING ERRCODE = 'object_in_use',
                  HINT = 'wait for that outbox row to finish (erp_sync.queue)';
    END IF;
    INSERT INTO erp_sync.outbox (contact_id, kind, ref_id)
    VALUES (e.contact_id, 'rollback', rollback.sync_log_id)
    RETURNING id INTO new_id;
    PERFORM pg_notify(erp_sync.setting('notify.channel'), '');
    RETURN new_id;
END
$$;

-- Operators (the extension owner, or roles it grants) run rollback().
REVOKE EXECUTE ON FUNCTION erp_sync.rollback(bigint) FROM PUBLIC;
