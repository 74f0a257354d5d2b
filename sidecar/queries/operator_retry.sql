-- operator page: dead rows of one contact back to pending; returns how many.
SELECT erp_sync.retry_failed($1, NULL) AS revived
