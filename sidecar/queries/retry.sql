-- A retryable failure: back to pending after $3 ms; dead once attempts reach $5.
-- $6 = whether it counts as an attempt (a session expiry does not).
UPDATE erp_sync.outbox
SET attempts = attempts + CASE WHEN $6 THEN 1 ELSE 0 END,
    status = CASE WHEN $6 AND attempts + 1 >= $5 THEN 'dead' ELSE 'pending' END,
    next_attempt_at = now() + $3::bigint * interval '1 millisecond',
    last_error = $4,
    lease_owner = NULL,
    lease_expires_at = NULL,
    finished_at = CASE WHEN $6 AND attempts + 1 >= $5 THEN now() END,
    updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING status, attempts
