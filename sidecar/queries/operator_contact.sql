-- operator page: one contact's state (mobile masked for the page).
SELECT s.contact_id, s.khid, s.name,
       erp_sync.mask_mobile(s.mobile) AS mobile, s.sync_state, s.erp_ord, s.last_error,
       s.admission_reasons, extract(epoch FROM s.last_synced_at)::float8 AS last_synced_epoch
FROM erp_sync.contact_status s
WHERE s.contact_id = $1
