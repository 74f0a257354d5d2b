-- The fleet-wide login lock of one account, held until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('erp_sync.erp_login:' || $1::text, 0))
