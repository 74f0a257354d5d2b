-- After a complete pull: rows the pass did not list ($1: every ord it saw) are gone.
UPDATE erp_sync.erp_customers
SET gone_at = now()
WHERE gone_at IS NULL
  AND NOT (erp_ord = ANY ($1::bigint[]))
