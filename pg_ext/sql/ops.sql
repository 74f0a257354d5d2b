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
CREATE FUNCTION erp_sync.retry_failed(contact_id bigint DEFAULT NULL, kind text DEFAULT NULL) RETURNS int
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
