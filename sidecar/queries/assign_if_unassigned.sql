-- After a customer is written back: a customer with no assignment yet gets an `assign` row (its
-- thread may have arrived while the contact was still rejected, so the trigger queued none).
INSERT INTO erp_sync.outbox (contact_id, kind)
SELECT $1::bigint, 'assign'
WHERE NOT EXISTS (SELECT 1 FROM erp_sync.customer_link
                  WHERE contact_id = $1 AND assigned_tier IS NOT NULL)
  AND NOT EXISTS (SELECT 1 FROM erp_sync.outbox
                  WHERE contact_id = $1 AND kind = 'assign' AND status IN ('pending', 'running'))
ON CONFLICT DO NOTHING
