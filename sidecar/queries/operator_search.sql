-- operator page: contacts whose khid, id, mobile (any notation) or name matches $1, at most $2;
-- the mobile masked for the page whatever role reads it.
SELECT s.contact_id, s.khid, s.name,
       erp_sync.mask_mobile(s.mobile) AS mobile, s.sync_state, s.erp_ord, s.last_error,
       s.admission_reasons
FROM erp_sync.contact_status s
WHERE s.khid = $1
   OR s.contact_id = $1
   OR (erp_sync.normalize_mobile($1) IS NOT NULL
       AND erp_sync.normalize_mobile(s.mobile) = erp_sync.normalize_mobile($1))
   OR (length($1) >= 2 AND s.name ILIKE '%' || replace(replace(replace($1, '\', '\\'), '%', '\%'), '_', '\_') || '%')
ORDER BY s.khid
LIMIT $2
