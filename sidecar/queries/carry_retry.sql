-- Move a failed row's attempt count and backoff onto its pending twin ($1).
UPDATE erp_sync.outbox
SET attempts = greatest(attempts, $2),
    next_attempt_at = greatest(next_attempt_at, now() + $3::bigint * interval '1 millisecond'),
    last_error = $4,
    updated_at = now()
WHERE id = $1
