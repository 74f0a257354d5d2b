SELECT erp_sync.pick_rep($1::text)
