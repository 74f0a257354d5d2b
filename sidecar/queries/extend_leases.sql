-- Heartbeat: extend the lease of every row this worker holds.
UPDATE erp_sync.outbox
SET lease_expires_at = now() + make_interval(secs => $2::float8 / 1000.0)
WHERE lease_owner = $1 AND status = 'running'
