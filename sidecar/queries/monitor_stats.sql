-- ops: erp_sync.stats() over the window $1 (interval as text, e.g. '1 hour').
SELECT s.total, s.success, s.failed, s.success_rate::float8 AS success_rate
FROM erp_sync.stats($1::text::interval) s
