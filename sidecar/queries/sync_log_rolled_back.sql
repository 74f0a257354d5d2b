UPDATE erp_sync.sync_log SET rolled_back_at = now(), outcome = 'rolled_back' WHERE id = $1
