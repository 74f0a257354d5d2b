-- Final status of a row: $3 in ('done', 'skipped', 'dead'); $4 = reason / last error.
UPDATE erp_sync.outbox
SET status = $3, last_error = $4, lease_owner = NULL, lease_expires_at = NULL,
    finished_at = now(), updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
