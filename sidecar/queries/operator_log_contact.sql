-- operator page: the contact of one sync_log entry (an action names both; they must agree).
SELECT l.contact_id FROM erp_sync.sync_log l WHERE l.id = $1
