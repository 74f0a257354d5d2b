-- ops: success rate per hour over the window $1 (interval as text), oldest first.
SELECT extract(epoch FROM h.hour)::bigint AS hour_epoch, h.total, h.success, h.failed,
       h.success_rate::float8 AS success_rate
FROM erp_sync.stats_hourly($1::text::interval) h
ORDER BY h.hour
