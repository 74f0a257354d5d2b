SELECT action, erp_ord, old_data, contact_id, rolled_back_at IS NOT NULL, outcome
FROM erp_sync.sync_log
WHERE id = $1
