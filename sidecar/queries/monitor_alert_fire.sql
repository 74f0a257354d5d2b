-- ops: record a notified alert ($1 code, $2 level, $3 message, $4 value, $5 worker).
INSERT INTO erp_sync.alert_state (code, level, message, value, fired_at, notified_by)
VALUES ($1, $2, $3, $4::float8::numeric, now(), $5)
ON CONFLICT (code) DO UPDATE
SET level = EXCLUDED.level, message = EXCLUDED.message, value = EXCLUDED.value,
    fired_at = EXCLUDED.fired_at, notified_by = EXCLUDED.notified_by
