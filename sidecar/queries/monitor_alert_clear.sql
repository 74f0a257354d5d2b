-- ops: forget a resolved alert ($1 code) once its resolution was notified.
DELETE FROM erp_sync.alert_state WHERE code = $1
