DELETE FROM erp_sync.workers WHERE worker_id = $1
