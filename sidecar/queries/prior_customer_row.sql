-- The latest customer row of a contact before outbox row $2 (why a follow-up has no ERP customer).
SELECT status, last_error
FROM erp_sync.outbox
WHERE contact_id = $1 AND kind = 'customer' AND id < $2
ORDER BY id DESC
LIMIT 1
