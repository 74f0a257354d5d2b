-- operator page: what operators did to a contact, newest first.
SELECT a.id, extract(epoch FROM a.at)::float8 AS at_epoch, a.operator, a.action, a.target, a.ok, a.result
FROM erp_sync.operator_actions a
WHERE a.contact_id = $1
ORDER BY a.id DESC
LIMIT $2
