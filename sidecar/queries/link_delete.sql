-- After a create was rolled back (the ERP customer deleted): the contact has no ERP customer any
-- more. The row stays (the sidecar role may not delete); a later customer row recreates the link.
UPDATE erp_sync.customer_link
SET erp_ord = NULL, person_synced = false, assigned_tier = NULL, assigned_to = NULL,
    last_payload_hash = NULL, synced_at = now()
WHERE contact_id = $1 AND erp_ord = $2
