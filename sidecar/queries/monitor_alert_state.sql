-- ops: alert states last notified, per code.
SELECT s.code, s.level FROM erp_sync.alert_state s
