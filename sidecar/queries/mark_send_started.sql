-- A follow-up's send begins now (before the ERP call, in its own transaction): a row found so
-- by a later claim, with no result, was perhaps sent (claim.sql: in_doubt).
UPDATE erp_sync.outbox
SET send_started_at = now(), updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
