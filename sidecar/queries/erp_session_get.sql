-- The fleet's shared ERP session of one account ($1 = "user@base_url"): token, generation, age (ms).
SELECT token, generation, (extract(epoch FROM now() - obtained_at) * 1000)::bigint AS age_ms
FROM erp_sync.erp_session
WHERE account = $1
