-- Hourly sweep (read-only, cheap: partial claim index): rows due now and running rows whose lease
-- expired. Either kind is claimable, so a NOTIFY follows when there are any.
SELECT count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) AS due,
       count(*) FILTER (WHERE status = 'running' AND lease_expires_at < now()) AS expired
FROM erp_sync.outbox
WHERE status IN ('pending', 'running')
