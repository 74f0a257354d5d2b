-- ops: active alerts, most severe first.
SELECT a.code, a.level, a.message, a.message_en, a.value::float8 AS value,
       a.threshold::float8 AS threshold, a.unit
FROM erp_sync.alerts a
ORDER BY CASE a.level WHEN 'critical' THEN 0 WHEN 'warning' THEN 1 ELSE 2 END, a.code
