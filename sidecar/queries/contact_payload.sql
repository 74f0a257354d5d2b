SELECT erp_sync.contact_payload($1::text)
