-- A retryable failure: back to pending after $3 ms; dead once attempts reach $5.
-- $6 = whether it counts as an attempt (a session expiry, a refused login or a database outage
-- does not); $7 = whether the claim already counted it (the row was its contact's head): then a
-- failure that does not count gives that attempt back.
UPDATE erp_sync.outbox
SET attempts = greatest(attempts + CASE WHEN $6 AND NOT $7 THEN 1
                                        WHEN NOT $6 AND $7 THEN -1 ELSE 0 END, 0),
    status = CASE WHEN $6 AND attempts + CASE WHEN $7 THEN 0 ELSE 1 END >= $5
                  THEN 'dead' ELSE 'pending' END,
    next_attempt_at = now() + $3::bigint * interval '1 millisecond',
    last_error = $4,
    -- a failure that is retried was certainly not processed (or the operator chose resend)
    send_started_at = NULL,
    lease_owner = NULL,
    lease_expires_at = NULL,
    finished_at = CASE WHEN $6 AND attempts + CASE WHEN $7 THEN 0 ELSE 1 END >= $5
                       THEN now() END,
    updated_at = now()
WHERE id = $1 AND lease_owner = $2 AND status = 'running'
RETURNING status, attempts
