INSERT INTO erp_sync.customer_link
    (contact_id, khid, erp_ord, customer_type, person_synced, last_payload_hash, synced_at)
VALUES ($1, $2, $3, $4, $5, $6, now())
ON CONFLICT (contact_id) DO UPDATE
SET khid = EXCLUDED.khid,
    erp_ord = EXCLUDED.erp_ord,
    customer_type = EXCLUDED.customer_type,
    person_synced = EXCLUDED.person_synced,
    last_payload_hash = coalesce(EXCLUDED.last_payload_hash, erp_sync.customer_link.last_payload_hash),
    synced_at = now()
