-- operator page: a contact's outbox rows, newest first (errors with mobiles masked).
SELECT o.id, o.kind, o.ref_id, o.status, o.attempts, erp_sync.mask_text(o.last_error) AS last_error,
       extract(epoch FROM o.created_at)::float8 AS created_epoch,
       extract(epoch FROM o.finished_at)::float8 AS finished_epoch,
       o.send_started_at IS NOT NULL AS send_started
FROM erp_sync.outbox o
WHERE o.contact_id = $1
ORDER BY o.id DESC
LIMIT $2
