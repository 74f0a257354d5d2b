-- The write-back of one processed row as ONE statement (one round trip; in autocommit it is its
-- own transaction). Every part is conditioned on `ours`: the row must still be leased to this
-- worker and running, otherwise nothing is written and no row is returned (lease lost).
--   $1 outbox id, $2 worker,
--   $3 final status ('done' | 'skipped' | 'dead' | 'in_doubt'), or NULL to keep the row running (a retry: the
--      caller then moves it back to pending in the same transaction), $4 reason / last error,
--   $5 link change: 'upsert' | 'assign' | 'unlink' | NULL,
--   upsert: $6 khid, $7 erp_ord, $8 customer_type, $9 person_synced, $10 payload hash;
--   assign: $11 tier, $12 assigned_to; unlink: $13 contact id, $7 erp_ord,
--   $14 sync_log id now rolled back (or NULL), $15 jsonb array of sync_log entries
--      ({action, erp_ord, request, response, outcome, error, duration_ms, old_data}), in order.
-- The link change parts touch different rows or tables, so no row is modified twice.
-- The statement is assembled from the parts below (each from its "part" marker line to the next) by
-- `db::write_back_sql`, with only the parts a call needs: every part, even one that changes
-- nothing, costs its executor start-up (opening the table and its indexes) on every call.
-- part: ours
WITH ours AS (
    UPDATE erp_sync.outbox
    SET status = coalesce($3, status),
        last_error = CASE WHEN $3 IS NULL THEN last_error ELSE $4 END,
        lease_owner = CASE WHEN $3 IS NULL THEN lease_owner END,
        lease_expires_at = CASE WHEN $3 IS NULL THEN lease_expires_at END,
        finished_at = CASE WHEN $3 IS NULL OR $3 = 'in_doubt' THEN NULL ELSE now() END,
        updated_at = now()
    WHERE id = $1 AND lease_owner = $2 AND status = 'running'
    RETURNING id, contact_id, status
),
-- part: upsert
upsert AS (
    INSERT INTO erp_sync.customer_link
        (contact_id, khid, erp_ord, customer_type, person_synced, last_payload_hash, synced_at)
    SELECT contact_id, $6, $7, $8, $9, $10, now() FROM ours WHERE $5 = 'upsert'
    ON CONFLICT (contact_id) DO UPDATE
    SET khid = EXCLUDED.khid,
        erp_ord = EXCLUDED.erp_ord,
        customer_type = EXCLUDED.customer_type,
        person_synced = EXCLUDED.person_synced,
        last_payload_hash = coalesce(EXCLUDED.last_payload_hash, erp_sync.customer_link.last_payload_hash),
        synced_at = now()
    RETURNING contact_id
),
-- part: assign_new
-- After a customer is written back: a customer with no assignment yet gets an `assign` row (its
-- thread may have arrived while the contact was still rejected, so the trigger queued none).
assign_new AS (
    INSERT INTO erp_sync.outbox (contact_id, kind)
    SELECT o.contact_id, 'assign' FROM ours o
    WHERE $5 = 'upsert'
      AND NOT EXISTS (SELECT 1 FROM erp_sync.customer_link l
                      WHERE l.contact_id = o.contact_id AND l.assigned_tier IS NOT NULL)
      AND NOT EXISTS (SELECT 1 FROM erp_sync.outbox p  -- by contact id: see claim.sql on lower()
                      WHERE p.contact_id = o.contact_id AND p.kind = 'assign'
                        AND pg_catalog.lower(p.status) IN ('pending', 'running'))
    ON CONFLICT DO NOTHING
    RETURNING id
),
-- part: assigned
assigned AS (
    UPDATE erp_sync.customer_link l
    SET assigned_tier = $11, assigned_to = $12, synced_at = now()
    FROM ours o
    WHERE $5 = 'assign' AND l.contact_id = o.contact_id
    RETURNING l.contact_id
),
-- part: unlinked
-- After a create was rolled back (the ERP customer deleted): the contact has no ERP customer any
-- more. The row stays (the sidecar role may not delete); a later customer row recreates the link.
unlinked AS (
    UPDATE erp_sync.customer_link l
    SET erp_ord = NULL, person_synced = false, assigned_tier = NULL, assigned_to = NULL,
        last_payload_hash = NULL, synced_at = now()
    WHERE $5 = 'unlink' AND l.contact_id = $13 AND l.erp_ord = $7 AND EXISTS (SELECT 1 FROM ours)
    RETURNING l.contact_id
),
-- part: rolled
rolled AS (
    UPDATE erp_sync.sync_log s
    SET rolled_back_at = now(), outcome = 'rolled_back'
    WHERE s.id = $14 AND EXISTS (SELECT 1 FROM ours)
    RETURNING s.id
),
-- part: logged
logged AS (
    INSERT INTO erp_sync.sync_log
        (outbox_id, contact_id, action, erp_ord, request, response, outcome, error, duration_ms,
         old_data, worker)
    SELECT o.id, o.contact_id, e->>'action', (e->>'erp_ord')::bigint,
           nullif(e->'request', 'null'), nullif(e->'response', 'null'), e->>'outcome',
           e->>'error', (e->>'duration_ms')::int, nullif(e->'old_data', 'null'), $2
    FROM ours o, jsonb_array_elements($15::jsonb) WITH ORDINALITY AS x(e, n)
    ORDER BY x.n
    RETURNING id
)
-- part: result
SELECT o.status FROM ours o
