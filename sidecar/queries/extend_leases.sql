-- Heartbeat: extend the lease of the rows this worker has in hand ($3). Rows it still owns but
-- no longer handles (a release that failed while the database was down) are left to expire and
-- be claimed again.
UPDATE erp_sync.outbox
SET lease_expires_at = now() + $2::bigint * interval '1 millisecond'
WHERE lease_owner = $1 AND status = 'running' AND id = ANY($3::bigint[])
