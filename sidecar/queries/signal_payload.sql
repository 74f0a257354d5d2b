SELECT erp_sync.signal_payload($1::bigint)
