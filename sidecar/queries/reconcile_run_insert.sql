INSERT INTO erp_sync.reconcile_runs (trigger, worker) VALUES ($1, $2) RETURNING id
