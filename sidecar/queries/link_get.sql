SELECT khid, erp_ord, customer_type, coalesce(person_synced, false), assigned_tier, assigned_to, last_payload_hash
FROM erp_sync.customer_link
WHERE contact_id = $1
