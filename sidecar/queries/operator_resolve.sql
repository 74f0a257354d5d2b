-- operator page: settle an in-doubt follow-up (sent = the operator found it in the ERP).
SELECT erp_sync.resolve_in_doubt($1, $2) AS result
