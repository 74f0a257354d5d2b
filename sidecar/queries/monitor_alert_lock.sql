-- ops: one sidecar at a time compares alerts with erp_sync.alert_state (held until commit).
SELECT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('erp_sync.alerts'))
