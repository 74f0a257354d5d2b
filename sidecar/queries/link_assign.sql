UPDATE erp_sync.customer_link
SET assigned_tier = $2, assigned_to = $3, synced_at = now()
WHERE contact_id = $1
