-- operator page: a contact's sync_log entries, newest first (errors with mobiles masked; no
-- request or response bodies).
SELECT l.id, l.outbox_id, l.action, l.outcome, l.erp_ord, erp_sync.mask_text(l.error) AS error,
       extract(epoch FROM l.created_at)::float8 AS at_epoch,
       l.rolled_back_at IS NOT NULL AS rolled_back,
       (l.outcome = 'success' AND l.rolled_back_at IS NULL
        AND l.action IN ('create', 'update', 'supplement')) AS can_roll_back
FROM erp_sync.sync_log l
WHERE l.contact_id = $1
ORDER BY l.id DESC
LIMIT $2
