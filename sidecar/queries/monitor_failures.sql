-- ops: the most recent failed operations (errors with mobiles masked by the view).
SELECT f.id, extract(epoch FROM f.created_at)::float8 AS at_epoch, f.contact_id, f.action, f.error
FROM erp_sync.recent_failures f
ORDER BY f.id DESC
LIMIT $1
