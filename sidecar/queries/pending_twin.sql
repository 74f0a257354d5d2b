-- A pending row of the same contact and coalesced kind (customer/assign) other than $3: a retry
-- of $3 must not go back to pending next to it (unique index outbox_coalesce_key).
SELECT id
FROM erp_sync.outbox
WHERE contact_id = $1 AND kind = $2 AND status = 'pending' AND id <> $3
  AND kind IN ('customer', 'assign')
LIMIT 1
FOR UPDATE
