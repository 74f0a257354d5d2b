-- Move a failed row's attempt count and backoff onto its pending twin ($1).
UPDATE erp_sync.outbox
SET attempts = greatest(attempts, $2),
    next_attempt_at = greatest(next_attempt_at, now() + make_interval(secs => $3::float8 / 1000.0)),
    last_error = $4,
    updated_at = now()
WHERE id = $1
