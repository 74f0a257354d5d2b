-- operator page: undo one sync_log entry (queues a rollback row); returns its outbox id.
SELECT erp_sync.rollback($1) AS outbox_id
