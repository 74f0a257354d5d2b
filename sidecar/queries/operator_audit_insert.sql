-- operator page: the audit row of one action (same transaction as the action when it worked).
INSERT INTO erp_sync.operator_actions (operator, action, contact_id, target, ok, result, worker)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id
