-- First statement of a write-back transaction: the row must still be ours.
SELECT 1 FROM erp_sync.outbox
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
FOR UPDATE
