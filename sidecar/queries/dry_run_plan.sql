-- Dry run: rows that are due now (what a claim would take next), read without locking or changing
-- anything. $1 = highest id already planned by this process, $2 = page size.
SELECT o.id, o.contact_id, o.kind, o.ref_id, o.template_id, o.attempts
FROM erp_sync.outbox o
WHERE o.status IN ('pending', 'running')
  AND ((o.status = 'pending' AND o.next_attempt_at <= now())
    OR (o.status = 'running' AND coalesce(o.lease_expires_at, '-infinity') < now()))
  AND o.id > $1
ORDER BY o.id
LIMIT $2
