-- ops: the most recent failed operations (errors with mobiles masked by the view); outcome
-- failed (the sync failed) or retry (an attempt that is tried again).
SELECT f.id, extract(epoch FROM f.created_at)::float8 AS at_epoch, f.contact_id, f.action, f.error,
       f.outcome
FROM erp_sync.recent_failures f
ORDER BY f.id DESC
LIMIT $1
