INSERT INTO erp_sync.sync_log
    (outbox_id, contact_id, action, erp_ord, request, response, outcome, error, duration_ms, old_data, worker)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
