-- operator page: "sync now" (erp_sync.request_sync re-checks admission, queues or rejects).
SELECT erp_sync.request_sync($1) AS result
