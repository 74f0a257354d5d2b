-- Claim one period of a schedule ($1 name, $2 period key, $3 worker): a row comes back only for
-- the one sidecar that inserted it.
INSERT INTO erp_sync.schedule_runs (name, period_key, worker)
VALUES ($1, $2, $3)
ON CONFLICT (name, period_key) DO NOTHING
RETURNING started_at
