-- Platform side of a reconciliation: every linked contact with its current payload (NULL when the
-- contact row is gone).
SELECT l.contact_id, l.khid, l.erp_ord, erp_sync.contact_payload(l.contact_id) AS payload
FROM erp_sync.customer_link l
ORDER BY l.contact_id
