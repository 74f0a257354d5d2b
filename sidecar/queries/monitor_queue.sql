-- ops: queue depth by kind and status (erp_sync.queue); age of the oldest pending row in seconds.
SELECT q.kind, q.status, q.rows::bigint AS rows,
       extract(epoch FROM q.oldest_pending_age)::float8 AS oldest_pending_s
FROM erp_sync.queue q
ORDER BY q.kind, q.status
