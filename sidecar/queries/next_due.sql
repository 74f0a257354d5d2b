-- Milliseconds until the earliest pending row waiting for a retry becomes due (NULL when none):
-- the engine sleeps no longer than that, so a retry is not delayed to the next poll. Rows already
-- due but blocked behind another worker's running row are left to that worker's next claim.
SELECT (extract(epoch FROM (min(next_attempt_at) - now())) * 1000)::bigint
FROM erp_sync.outbox
WHERE status = 'pending' AND next_attempt_at > now()
