SELECT count(*) FROM erp_sync.outbox WHERE status IN ('pending', 'running')
