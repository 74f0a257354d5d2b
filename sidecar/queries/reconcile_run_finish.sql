UPDATE erp_sync.reconcile_runs SET finished_at = now(), counts = $2 WHERE id = $1
