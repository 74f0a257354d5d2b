-- ops: one retention batch per table; returns {"outbox": n, "sync_log": m, "more": bool}.
SELECT erp_sync.cleanup($1::int4)
