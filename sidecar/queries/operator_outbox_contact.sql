-- operator page: the contact and state of one outbox row (an action names both; they must agree).
SELECT o.contact_id, o.kind, o.status FROM erp_sync.outbox o WHERE o.id = $1
