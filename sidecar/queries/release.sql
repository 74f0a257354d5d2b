-- Give rows back without counting an attempt (shutdown, or the rest of a chain whose earlier row
-- must wait). $2 NULL = every row this worker holds. $3: rows whose attempt the claim counted
-- (heads) and that were never processed: the attempt is given back. (Rows released at start-up or
-- abandoned at the shutdown deadline keep theirs: they may have been mid-processing.)
--
-- The capture trigger keeps at most one PENDING customer/assign row per contact (unique index
-- outbox_coalesce_key). While ours ran, a newer one may have been enqueued, or we may hold two of
-- them: then only one goes back to pending (an existing pending row wins, else our lowest) and the
-- others end 'skipped' as coalesced into it — it reads the contact's current state anyway.
WITH mine AS (
    SELECT id, contact_id, kind
    FROM erp_sync.outbox
    WHERE lease_owner = $1 AND status = 'running' AND ($2::bigint[] IS NULL OR id = ANY($2))
    FOR UPDATE
),
target AS (
    SELECT m.id,
           CASE WHEN m.kind IN ('customer', 'assign') THEN
               coalesce(
                   (SELECT p.id FROM erp_sync.outbox p
                    WHERE p.contact_id = m.contact_id AND p.kind = m.kind AND p.status = 'pending'
                    LIMIT 1),
                   (SELECT min(m2.id) FROM mine m2
                    WHERE m2.contact_id = m.contact_id AND m2.kind = m.kind))
           ELSE m.id END AS into_id
    FROM mine m
)
UPDATE erp_sync.outbox o
SET status = CASE WHEN t.into_id = o.id THEN 'pending' ELSE 'skipped' END,
    last_error = CASE WHEN t.into_id = o.id THEN o.last_error
                      ELSE 'coalesced into outbox row #' || t.into_id END,
    finished_at = CASE WHEN t.into_id = o.id THEN NULL ELSE now() END,
    attempts = CASE WHEN o.id = ANY($3::bigint[]) THEN greatest(o.attempts - 1, 0) ELSE o.attempts END,
    lease_owner = NULL,
    lease_expires_at = NULL,
    updated_at = now()
FROM target t
WHERE o.id = t.id
