-- erp_sync operations in SQL: the outbox row check, rep picking and retrying dead rows.

-- See bootstrap.sql: the outbox row rules live in erp_sync.outbox_row_check() (Rust), which
-- raises check_violation (23514) with a message naming the offending column.
ALTER TABLE erp_sync.outbox ADD CONSTRAINT outbox_row_check
    CHECK (erp_sync.outbox_row_check(kind, status, attempts, ref_id, lease_owner, lease_expires_at, last_error));

-- Least recently assigned active rep of a tier ('top' | 'regular'); NULL when there is none
-- (and always NULL for 'public', the ERP's public pool). Fair under concurrency: the candidate
-- row is locked with SKIP LOCKED, so two concurrent picks get two different reps when there are
-- two; if every candidate is locked by other pickers, wait for the least recently assigned one.
CREATE FUNCTION erp_sync.pick_rep(tier text) RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    picked text;
BEGIN
    IF tier NOT IN ('top', 'regular', 'public') THEN
        RAISE EXCEPTION 'erp_sync: unknown tier "%"', tier
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'tier must be one of: top, regular, public';
    END IF;
    IF tier = 'public' THEN
        RETURN NULL;
    END IF;
    SELECT r.erp_user_id INTO picked
    FROM erp_sync.sales_reps r
    WHERE r.tier = pick_rep.tier AND r.active
    ORDER BY r.last_assigned_at NULLS FIRST, r.erp_user_id
    LIMIT 1
    FOR UPDATE SKIP LOCKED;
    IF picked IS NULL THEN
        SELECT r.erp_user_id INTO picked
        FROM erp_sync.sales_reps r
        WHERE r.tier = pick_rep.tier AND r.active
        ORDER BY r.last_assigned_at NULLS FIRST, r.erp_user_id
        LIMIT 1
        FOR UPDATE;
    END IF;
    IF picked IS NOT NULL THEN
        UPDATE erp_sync.sales_reps
        SET last_assigned_at = clock_timestamp(), assigned_count = assigned_count + 1
        WHERE erp_user_id = picked;
    END IF;
    RETURN picked;
END
$$;

-- Dead rows back to pending (attempts 0, due now), optionally for one contact and/or kind.
-- A dead customer/assign row is left dead when a pending row of the same contact and kind
-- exists already (that one will carry the current state). Wakes the sidecar. Returns the count.
CREATE FUNCTION erp_sync.retry_failed(contact_id text DEFAULT NULL, kind text DEFAULT NULL) RETURNS int
    LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    revived int := 0;
    n int;
BEGIN
    IF kind IS NOT NULL AND kind NOT IN ('customer', 'followup', 'assign', 'rollback') THEN
        RAISE EXCEPTION 'erp_sync: unknown outbox kind "%"', kind
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'kind must be one of: customer, followup, assign, rollback (or NULL for all)';
    END IF;
    FOR r IN
        SELECT o.id, o.contact_id, o.kind
        FROM erp_sync.outbox o
        WHERE o.status = 'dead'
          AND (retry_failed.contact_id IS NULL OR o.contact_id = retry_failed.contact_id)
          AND (retry_failed.kind IS NULL OR o.kind = retry_failed.kind)
        ORDER BY o.id DESC  -- newest first: it wins the coalescing slot
    LOOP
        UPDATE erp_sync.outbox o
        SET status = 'pending', attempts = 0, next_attempt_at = now(), lease_owner = NULL,
            lease_expires_at = NULL, finished_at = NULL, updated_at = now()
        WHERE o.id = r.id
          AND NOT (r.kind IN ('customer', 'assign') AND EXISTS (
                SELECT 1 FROM erp_sync.outbox p
                WHERE p.contact_id = r.contact_id AND p.kind = r.kind AND p.status = 'pending'));
        GET DIAGNOSTICS n = ROW_COUNT;
        revived := revived + n;
    END LOOP;
    IF revived > 0 THEN
        PERFORM pg_notify(erp_sync.setting('notify.channel'), '');
    END IF;
    RETURN revived;
END
$$;

-- A follow-up in doubt (since 0.2.0): the sidecar had begun sending it (outbox.send_started_at)
-- when it died, hung past its lease, or lost the ERP's reply, so it may or may not be in the ERP.
-- With engine.in_doubt_followups = "hold" (the default) such a row waits, status in_doubt, for a
-- person who checked the ERP: sent = true ends it done, false queues it again (pending, due now,
-- attempts 0). Each decision is written to sync_log with the operator (current_user).
CREATE FUNCTION erp_sync.resolve_in_doubt(outbox_id bigint, sent boolean) RETURNS text
    LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
    SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
BEGIN
    SELECT o.id, o.contact_id, o.status, o.last_error INTO r
    FROM erp_sync.outbox o WHERE o.id = resolve_in_doubt.outbox_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'erp_sync: outbox row % does not exist', outbox_id
            USING ERRCODE = 'no_data_found',
                  HINT = 'SELECT id, contact_id FROM erp_sync.outbox WHERE status = ''in_doubt'' lists the rows in doubt';
    END IF;
    IF r.status <> 'in_doubt' THEN
        RAISE EXCEPTION 'erp_sync: outbox row % is %, not in_doubt', outbox_id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'only rows in status in_doubt wait for this decision';
    END IF;
    UPDATE erp_sync.outbox o
    SET status = CASE WHEN sent THEN 'done' ELSE 'pending' END,
        attempts = CASE WHEN sent THEN o.attempts ELSE 0 END,
        next_attempt_at = now(),
        send_started_at = NULL,
        finished_at = CASE WHEN sent THEN now() END,
        last_error = format('resolved by %s: %s (was: %s)', current_user,
                            CASE WHEN sent THEN 'it is in the ERP' ELSE 'not in the ERP, queued again' END,
                            r.last_error),
        updated_at = now()
    WHERE o.id = r.id;
    INSERT INTO erp_sync.sync_log (outbox_id, contact_id, action, outcome, error)
    VALUES (r.id, r.contact_id, 'followup', CASE WHEN sent THEN 'success' ELSE 'skipped' END,
            format('in doubt, resolved by %s: %s', current_user,
                   CASE WHEN sent THEN 'sent' ELSE 'not sent, queued again' END));
    IF NOT sent THEN
        PERFORM pg_notify(erp_sync.setting('notify.channel'), '');
    END IF;
    RETURN CASE WHEN sent THEN 'done' ELSE 'pending' END;
END
$$;
COMMENT ON FUNCTION erp_sync.resolve_in_doubt(bigint, boolean) IS
    'erp_sync: end a follow-up in doubt after checking the ERP: sent = true → done, false → queued again';
