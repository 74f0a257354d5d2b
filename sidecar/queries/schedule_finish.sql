UPDATE erp_sync.schedule_runs
SET finished_at = now(), ok = $3, summary = $4
WHERE name = $1 AND period_key = $2
