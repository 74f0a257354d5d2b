-- status page: contacts rejected at admission, newest first, with their reasons (masked), and
-- how many there are.
SELECT r.contact_id, erp_sync.khid(r.contact_id) AS khid,
       erp_sync.mask_jsonb(r.reasons) AS reasons,
       extract(epoch FROM r.rejected_at)::float8 AS at_epoch,
       count(*) OVER () AS total
FROM erp_sync.rejections r
ORDER BY r.rejected_at DESC, r.contact_id
LIMIT $1
